"""Alerts: threshold crossing, escalation, resolution, deduplication and hysteresis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sluiceway.monitor.alerts import AlertManager
from sluiceway.testing import ManualClock

WARNING, CRITICAL, H = 70.0, 90.0, 0.1


def manager() -> tuple[AlertManager, ManualClock]:
    clock = ManualClock()
    return AlertManager(hysteresis=H, clock=clock), clock


def test_lifecycle_raise_escalate_ease_resolve() -> None:
    """One alert goes raised (warning) → escalated (critical) → eased (warning) → resolved, keeping its id."""
    alerts, clock = manager()
    assert alerts.evaluate("cpu", 50.0, warning=WARNING, critical=CRITICAL) is None
    clock.advance(1)
    raised = alerts.evaluate("cpu", 75.0, warning=WARNING, critical=CRITICAL)
    assert raised is not None and raised.level == "WARNING" and raised.raised_at == 1.0
    clock.advance(1)
    escalated = alerts.evaluate("cpu", 95.0, warning=WARNING, critical=CRITICAL)
    assert escalated is raised and raised.level == "CRITICAL" and raised.peak_level == "CRITICAL"
    clock.advance(1)
    eased = alerts.evaluate("cpu", 75.0, warning=WARNING, critical=CRITICAL)
    assert eased is raised and raised.level == "WARNING" and raised.peak_level == "CRITICAL"
    clock.advance(1)
    resolved = alerts.evaluate("cpu", 50.0, warning=WARNING, critical=CRITICAL)
    assert resolved is raised and raised.resolved_at == 4.0 and not raised.active
    assert alerts.alerts() == []
    assert alerts.alerts(active_only=False) == [raised]


def test_repeated_crossings_are_deduplicated() -> None:
    """A metric staying above its threshold for many checks keeps a single active alert."""
    alerts, _ = manager()
    for value in (75.0, 80.0, 72.0, 79.0):
        alerts.evaluate("cpu", value, warning=WARNING, critical=CRITICAL)
    assert len(alerts.alerts()) == 1
    assert alerts.alerts()[0].value == 79.0


def test_hovering_at_threshold_does_not_flap() -> None:
    """A metric oscillating just around the warning level raises once and never resolves inside the band."""
    alerts, _ = manager()
    changes = [
        alerts.evaluate("cpu", v, warning=WARNING, critical=CRITICAL) for v in (70.5, 69.0, 70.2, 65.0, 71.0, 64.0)
    ]
    assert [c is not None for c in changes] == [True, False, False, False, False, False]
    assert alerts.evaluate("cpu", 62.9, warning=WARNING, critical=CRITICAL) is not None
    assert alerts.alerts() == []


def test_critical_holds_until_below_its_band() -> None:
    """A critical alert eases only once the metric falls hysteresis below the critical level."""
    alerts, _ = manager()
    alerts.evaluate("cpu", 91.0, warning=WARNING, critical=CRITICAL)
    alerts.evaluate("cpu", 82.0, warning=WARNING, critical=CRITICAL)
    assert alerts.alerts()[0].level == "CRITICAL"
    alerts.evaluate("cpu", 80.0, warning=WARNING, critical=CRITICAL)
    assert alerts.alerts()[0].level == "WARNING"


def test_metrics_are_independent() -> None:
    """Alerts on different metrics do not affect each other."""
    alerts, _ = manager()
    alerts.evaluate("cpu", 95.0, warning=WARNING, critical=CRITICAL)
    alerts.evaluate("memory", 80.0, warning=75.0, critical=90.0)
    alerts.evaluate("cpu", 10.0, warning=WARNING, critical=CRITICAL)
    assert [a.metric for a in alerts.alerts()] == ["memory"]


@given(st.lists(st.floats(min_value=0.0, max_value=120.0), max_size=60))
def test_matches_schmitt_trigger_model(values: list[float]) -> None:
    """After every check the alert level equals a declarative two-level Schmitt-trigger model."""
    alerts, _ = manager()
    model: str | None = None
    for v in values:
        alerts.evaluate("m", v, warning=WARNING, critical=CRITICAL)
        if v >= CRITICAL or (model == "CRITICAL" and v >= CRITICAL * (1 - H)):
            model = "CRITICAL"
        elif v >= WARNING or (model is not None and v >= WARNING * (1 - H)):
            model = "WARNING"
        else:
            model = None
        active = alerts.active("m")
        assert (active.level if active else None) == model


@given(st.lists(st.floats(min_value=0.0, max_value=120.0), max_size=60))
def test_every_raise_needs_a_real_crossing(values: list[float]) -> None:
    """Alerts raised never outnumber upward crossings of the warning level from below its band."""
    alerts, _ = manager()
    crossings, armed = 0, True
    for v in values:
        alerts.evaluate("m", v, warning=WARNING, critical=CRITICAL)
        if armed and v >= WARNING:
            crossings, armed = crossings + 1, False
        elif v < WARNING * (1 - H):
            armed = True
    assert len(alerts.alerts(active_only=False)) <= crossings
