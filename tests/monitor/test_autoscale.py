"""The autoscaling policy on scripted metric streams."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sluiceway.monitor.autoscale import AutoscalePolicy, ScalingDecision, ScalingInputs
from sluiceway.monitor.config import AutoscaleConfig

CONFIG = AutoscaleConfig(
    backlog_per_worker=100,
    target_drain_time=10.0,
    scale_up_sustain=10.0,
    scale_up_cooldown=30.0,
    cpu_ceiling_percent=85.0,
    idle_sustain=60.0,
    scale_down_cooldown=60.0,
)


def policy(min_workers: int = 2, max_workers: int = 16) -> AutoscalePolicy:
    return AutoscalePolicy(CONFIG, min_workers=min_workers, max_workers=max_workers, latency_warning=0.5)


def run(p: AutoscalePolicy, stream: list[dict[str, float]], workers: int) -> list[ScalingDecision]:
    """Feed samples every 5 s, applying each decision to the worker count."""
    decisions = []
    for i, fields in enumerate(stream):
        sample = ScalingInputs(now=5.0 * i, workers=workers, concurrency=4, **fields)  # type: ignore[arg-type]
        decision = p.decide(sample)
        if decision is not None:
            decisions.append(decision)
            workers = decision.new
    return decisions


def test_sustained_growing_backlog_scales_up() -> None:
    """A backlog that keeps growing with CPU to spare adds workers after the sustain period."""
    stream = [{"backlog": 1000 + 200 * i, "in_flight": 8, "cpu_percent": 40.0} for i in range(5)]
    decisions = run(policy(), stream, workers=2)
    assert [(d.old, d.new, d.at) for d in decisions] == [(2, 3, 10.0)]
    assert "backlog" in decisions[0].reason


def test_short_burst_does_not_scale() -> None:
    """A backlog that lasts less than scale_up_sustain is absorbed by the queue."""
    stream = [{"backlog": 5000, "in_flight": 8, "cpu_percent": 40.0}, {"backlog": 5000, "in_flight": 8, "cpu_percent": 40.0}]
    stream += [{"backlog": 0, "in_flight": 2, "cpu_percent": 20.0}] * 3
    assert run(policy(), stream, workers=2) == []


def test_no_scale_up_when_cpu_saturated() -> None:
    """Under backlog, a machine at the CPU ceiling gets no more workers."""
    stream = [{"backlog": 5000 + 100 * i, "in_flight": 8, "cpu_percent": 97.0} for i in range(20)]
    assert run(policy(), stream, workers=2) == []


def test_backlog_draining_fast_enough_needs_no_help() -> None:
    """A large backlog shrinking quickly enough to clear within target_drain_time does not scale up."""
    stream = [{"backlog": int(3000 * 0.6**i), "in_flight": 8, "cpu_percent": 40.0} for i in range(8)]
    assert run(policy(), stream, workers=2) == []


def test_slow_handlers_with_queue_scale_up() -> None:
    """p95 latency at the warning threshold while messages wait scales up, even under the backlog bar."""
    stream = [{"backlog": 20, "in_flight": 8, "latency_p95": 0.8, "cpu_percent": 30.0} for _ in range(4)]
    decisions = run(policy(), stream, workers=2)
    assert len(decisions) == 1 and "latency" in decisions[0].reason


def test_cooldown_between_scale_ups() -> None:
    """Consecutive scale-ups are at least scale_up_cooldown apart."""
    stream = [{"backlog": 10_000 + 500 * i, "in_flight": 8, "cpu_percent": 40.0} for i in range(40)]
    decisions = run(policy(), stream, workers=2)
    assert len(decisions) >= 3
    assert all(b.at - a.at >= CONFIG.scale_up_cooldown for a, b in zip(decisions, decisions[1:]))
    assert [d.new for d in decisions][:3] == [3, 5, 8]


def test_idle_scales_down_one_at_a_time_to_min() -> None:
    """Idleness removes one worker per scale_down_cooldown, never below min_workers."""
    stream = [{"backlog": 0, "in_flight": 1, "cpu_percent": 5.0} for _ in range(200)]
    decisions = run(policy(min_workers=2), stream, workers=5)
    assert [(d.old, d.new) for d in decisions] == [(5, 4), (4, 3), (3, 2)]
    assert decisions[0].at >= CONFIG.idle_sustain
    assert all(b.at - a.at >= CONFIG.scale_down_cooldown for a, b in zip(decisions, decisions[1:]))


def test_busy_but_not_backlogged_holds() -> None:
    """Handler slots mostly busy with an empty queue is neither pressure nor idleness."""
    stream = [{"backlog": 0, "in_flight": 14, "cpu_percent": 60.0} for _ in range(100)]
    assert run(policy(), stream, workers=4) == []


def test_out_of_bounds_is_corrected() -> None:
    """A worker count outside min..max is brought back at once."""
    assert [(d.old, d.new) for d in run(policy(2, 4), [{"backlog": 0, "in_flight": 0}], workers=9)] == [(9, 4)]


samples = st.lists(
    st.tuples(
        st.integers(0, 20_000),
        st.integers(0, 64),
        st.none() | st.floats(0, 5),
        st.none() | st.floats(0, 100),
    ),
    max_size=80,
)


@given(samples, st.integers(1, 4), st.integers(0, 12))
def test_invariants_on_any_stream(stream: list[tuple[int, int, float | None, float | None]], low: int, extra: int) -> None:
    """On any stream: counts stay within bounds, steps follow their rules, cooldowns hold, CPU ceiling holds."""
    high = low + extra
    p = policy(low, high)
    workers, last_change = low, None
    for i, (backlog, in_flight, latency, cpu) in enumerate(stream):
        now = 5.0 * i
        d = p.decide(
            ScalingInputs(now=now, workers=workers, backlog=backlog, in_flight=in_flight, concurrency=4, latency_p95=latency, cpu_percent=cpu)
        )
        if d is None:
            continue
        assert low <= d.new <= high and d.new != d.old
        if d.new > d.old:
            assert cpu is None or cpu < CONFIG.cpu_ceiling_percent
            assert last_change is None or now - last_change >= CONFIG.scale_up_cooldown
        else:
            assert d.old - d.new == 1 and backlog == 0
            assert last_change is None or now - last_change >= CONFIG.scale_down_cooldown
        workers, last_change = d.new, now
