"""Threshold alerts with a lifecycle: raised, escalated (warning → critical), de-escalated, resolved.

One alert at most is active per metric (deduplication); re-crossing a level while the
alert is active updates it instead of raising another. Leaving a level needs the
metric to fall ``hysteresis`` (a fraction of the level) below it, so a metric that
hovers at a threshold raises one alert, not one per check.
"""

from __future__ import annotations

import enum
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable

import msgspec

#: Resolved alerts kept for ``alerts(active_only=False)`` and the report.
RESOLVED_ALERTS_KEPT = 200

log = logging.getLogger("sluiceway.monitor")


class AlertLevel(enum.IntEnum):
    """How bad a metric is; the order matters (``CRITICAL > WARNING``)."""

    WARNING = 1
    CRITICAL = 2


class Alert(msgspec.Struct, kw_only=True):
    """One alert's lifecycle; ``resolved_at`` is ``None`` while it is active."""

    id: int
    metric: str
    level: str
    value: float
    threshold: float
    raised_at: float
    updated_at: float
    peak_level: str
    resolved_at: float | None = None

    @property
    def active(self) -> bool:
        return self.resolved_at is None


class AlertManager:
    """Evaluates metrics against warning/critical levels and keeps the alerts they cause.

    Example::

        alerts = AlertManager(hysteresis=0.1, clock=clock)
        alerts.evaluate("cpu_percent", 93.0, warning=70.0, critical=90.0)  # raised, critical
        alerts.evaluate("cpu_percent", 85.0, warning=70.0, critical=90.0)  # still critical (> 81)
        alerts.evaluate("cpu_percent", 60.0, warning=70.0, critical=90.0)  # resolved (< 63)
    """

    def __init__(self, hysteresis: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= hysteresis < 1:
            raise ValueError(f"hysteresis must be in [0, 1), got {hysteresis!r}")
        self._hysteresis = hysteresis
        self._clock = clock
        self._active: dict[str, Alert] = {}
        self._resolved: deque[Alert] = deque(maxlen=RESOLVED_ALERTS_KEPT)
        self._ids = itertools.count(1)

    def level_for(self, metric: str, value: float, warning: float, critical: float) -> AlertLevel | None:
        """The level ``metric`` is at given its current alert (hysteresis applied); ``None`` = fine."""
        current = self._active.get(metric)
        held = AlertLevel[current.level] if current is not None else None
        keep = 1.0 - self._hysteresis
        if value >= critical or (held is AlertLevel.CRITICAL and value >= critical * keep):
            return AlertLevel.CRITICAL
        if value >= warning or (held is not None and value >= warning * keep):
            return AlertLevel.WARNING
        return None

    def evaluate(self, metric: str, value: float, *, warning: float, critical: float) -> Alert | None:
        """Move ``metric``'s alert through its lifecycle for ``value``; returns the alert it changed."""
        level = self.level_for(metric, value, warning, critical)
        now = self._clock()
        current = self._active.get(metric)
        threshold = critical if level is AlertLevel.CRITICAL else warning
        if current is None:
            if level is None:
                return None
            alert = Alert(
                id=next(self._ids),
                metric=metric,
                level=level.name,
                value=value,
                threshold=threshold,
                raised_at=now,
                updated_at=now,
                peak_level=level.name,
            )
            self._active[metric] = alert
            log.warning("alert raised: %s %s = %g (threshold %g)", level.name, metric, value, threshold)
            return alert
        current.value = value
        if level is None:
            current.resolved_at = current.updated_at = now
            del self._active[metric]
            self._resolved.append(current)
            log.warning("alert resolved: %s = %g", metric, value)
            return current
        if level.name != current.level:
            log.warning(
                "alert %s: %s → %s, %s = %g",
                "escalated" if level is AlertLevel.CRITICAL else "eased",
                current.level,
                level.name,
                metric,
                value,
            )
            current.level, current.threshold, current.updated_at = level.name, threshold, now
            if level > AlertLevel[current.peak_level]:
                current.peak_level = level.name
            return current
        return None

    def alerts(self, active_only: bool = True) -> list[Alert]:
        """Active alerts (oldest first), followed by the resolved ones when ``active_only`` is false."""
        active = sorted(self._active.values(), key=lambda a: a.raised_at)
        return active if active_only else active + list(self._resolved)

    def active(self, metric: str) -> Alert | None:
        """The active alert on ``metric``, if any."""
        return self._active.get(metric)
