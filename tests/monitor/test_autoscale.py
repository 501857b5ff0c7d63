"""The autoscaling policy on scripted metric streams."""

from __future__ import annotations

import itertools
import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.monitor.autoscale import AutoscalePolicy, ScalingDecision, ScalingInputs
from sluiceway.monitor.config import AutoscaleConfig

CONFIG = AutoscaleConfig(
    backlog_per_worker=100,
    target_drain_time=10.0,
    scale_up_sustain=0.0,
    scale_up_cooldown=30.0,
    cpu_ceiling_percent=85.0,
    idle_sustain=60.0,
    scale_down_cooldown=60.0,
    worker_start_margin=2.0,
)


def policy(min_workers: int = 2, max_workers: int = 16, config: AutoscaleConfig = CONFIG) -> AutoscalePolicy:
    return AutoscalePolicy(config, min_workers=min_workers, max_workers=max_workers, latency_warning=0.5)


def run(
    p: AutoscalePolicy, stream: list[dict[str, float]], workers: int, interval: float = 5.0
) -> list[ScalingDecision]:
    """Feed samples every ``interval`` seconds, applying each decision to the worker count."""
    decisions = []
    for i, fields in enumerate(stream):
        sample = ScalingInputs(now=interval * i, workers=workers, concurrency=4, **fields)  # type: ignore[arg-type]
        decision = p.decide(sample)
        if decision is not None:
            decisions.append(decision)
            workers = decision.new
    return decisions


def draining(backlog: float, rate: float, interval: float, samples: int, **fields: float) -> list[dict[str, float]]:
    """A backlog shrinking by ``rate`` per second, sampled every ``interval`` seconds."""
    return [{"backlog": max(0, round(backlog - rate * interval * i)), "in_flight": 1, **fields} for i in range(samples)]


@pytest.mark.parametrize("interval", [5.0, 1.0, 0.5])
def test_reported_case_one_worker_18s_backlog_gets_a_second_worker_within_two_samples(interval: float) -> None:
    """One worker clearing a backlog in 18 s (600 at 33.3/s) with max_workers=3 gets a second one at the 2nd sample."""
    stream = draining(600, 600 / 18, interval, 4, cpu_percent=40.0, worker_start_seconds=0.8)
    decisions = run(policy(min_workers=1, max_workers=3), stream, workers=1, interval=interval)
    assert [(d.old, d.new, d.at) for d in decisions] == [(1, 2, interval)]
    assert "backlog" in decisions[0].reason and "drains in" in decisions[0].reason


def test_backlog_that_drains_before_a_worker_could_start_gets_none() -> None:
    """Projected drain 15 s (over the 10 s target) but a worker takes 9 s to start (margin 2: 18 s): no worker."""
    stream = draining(1500, 100, 1.0, 16, cpu_percent=40.0, worker_start_seconds=9.0)
    assert run(policy(), stream, workers=2, interval=1.0) == []
    # the same backlog with workers that start in 1 s is worth one
    stream = draining(1500, 100, 1.0, 16, cpu_percent=40.0, worker_start_seconds=1.0)
    assert [(d.old, d.new) for d in run(policy(), stream, workers=2, interval=1.0)] == [(2, 3)]


def test_a_backlog_seen_once_is_no_evidence() -> None:
    """A single backlogged sample has no drain rate yet: no scaling, however big."""
    stream = [{"backlog": 50_000, "in_flight": 8, "cpu_percent": 40.0}] + [{"backlog": 0, "in_flight": 2}] * 3
    assert run(policy(), stream, workers=2) == []


def test_workers_still_starting_give_no_drain_rate() -> None:
    """A backlog with nothing in flight (workers not taking messages yet) is no evidence of their capacity."""
    stream = [{"backlog": 5000, "in_flight": 0, "cpu_percent": 40.0}] * 5
    stream += [{"backlog": 5000 - 10 * i, "in_flight": 4, "cpu_percent": 40.0} for i in range(3)]
    assert [(d.old, d.new, d.at) for d in run(policy(), stream, workers=2)] == [(2, 3, 30.0)]


def test_growing_backlog_scales_up_by_the_step_at_the_second_sample() -> None:
    """A backlog that grows has no end: the full step is added as soon as two samples show it."""
    stream = [{"backlog": 1000 + 200 * i, "in_flight": 8, "cpu_percent": 40.0} for i in range(5)]
    decisions = run(policy(), stream, workers=4)
    assert [(d.old, d.new, d.at) for d in decisions] == [(4, 6, 5.0)]
    assert "not shrinking" in decisions[0].reason


def test_workers_added_follow_the_projected_need() -> None:
    """2 workers drain 20/s (10 each): 300 queued needs 3 to clear in 10 s, 1,000 needs 10 (capped by the step)."""
    config = msgspec.structs.replace(CONFIG, scale_up_step=2.0)  # up to 4 more at once
    assert [d.new for d in run(policy(config=config), draining(300, 20, 1.0, 3), workers=2, interval=1.0)] == [3]
    assert [d.new for d in run(policy(config=config), draining(1000, 20, 1.0, 3), workers=2, interval=1.0)] == [6]
    capped = policy(max_workers=5, config=config)
    assert [d.new for d in run(capped, draining(1000, 20, 1.0, 3), workers=2, interval=1.0)] == [5]


def test_sustain_delays_the_scale_up() -> None:
    """With scale_up_sustain=10 the pressure seen from the 2nd sample (t=5) scales up at t=15."""
    config = msgspec.structs.replace(CONFIG, scale_up_sustain=10.0)
    stream = [{"backlog": 1000 + 200 * i, "in_flight": 8, "cpu_percent": 40.0} for i in range(5)]
    assert [(d.old, d.new, d.at) for d in run(policy(config=config), stream, workers=2)] == [(2, 3, 15.0)]


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
    assert [(d.old, d.new, d.at) for d in decisions] == [(2, 3, 5.0)] and "latency" in decisions[0].reason


def test_slow_handlers_with_a_backlog_that_drains_in_time_hold() -> None:
    """p95 latency at the warning threshold adds workers only when the backlog would outlast the target."""
    in_time = draining(40, 10, 1.0, 3, latency_p95=0.8, cpu_percent=30.0)  # 20 left at 10/s: 2 s
    assert run(policy(), in_time, workers=2, interval=1.0) == []
    too_slow = draining(40, 1, 1.0, 3, latency_p95=0.8, cpu_percent=30.0)  # 38 left at 1/s: 38 s
    assert [(d.old, d.new) for d in run(policy(), too_slow, workers=2, interval=1.0)] == [(2, 3)]


def test_worker_start_margin_must_be_positive() -> None:
    """A margin of zero or less is refused, naming the field."""
    with pytest.raises(ValueError, match="worker_start_margin"):
        AutoscaleConfig(worker_start_margin=0)


def test_cooldown_between_scale_ups() -> None:
    """Consecutive scale-ups are at least scale_up_cooldown apart."""
    stream = [{"backlog": 10_000 + 500 * i, "in_flight": 8, "cpu_percent": 40.0} for i in range(40)]
    decisions = run(policy(), stream, workers=2)
    assert len(decisions) >= 3
    assert all(b.at - a.at >= CONFIG.scale_up_cooldown for a, b in itertools.pairwise(decisions))
    assert [d.new for d in decisions][:3] == [3, 5, 8]


def test_idle_scales_down_one_at_a_time_to_min() -> None:
    """Idleness removes one worker per scale_down_cooldown, never below min_workers."""
    stream = [{"backlog": 0, "in_flight": 1, "cpu_percent": 5.0} for _ in range(200)]
    decisions = run(policy(min_workers=2), stream, workers=5)
    assert [(d.old, d.new) for d in decisions] == [(5, 4), (4, 3), (3, 2)]
    assert decisions[0].at >= CONFIG.idle_sustain
    assert all(b.at - a.at >= CONFIG.scale_down_cooldown for a, b in itertools.pairwise(decisions))


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
        st.none() | st.floats(0, 60),
    ),
    max_size=80,
)


@given(samples, st.integers(1, 4), st.integers(0, 12))
def test_invariants_on_any_stream(
    stream: list[tuple[int, int, float | None, float | None, float | None]], low: int, extra: int
) -> None:
    """On any stream: counts stay within bounds, steps follow their rules, cooldowns hold, CPU ceiling holds."""
    high = low + extra
    p = policy(low, high)
    workers, last_change, was_working = low, None, False
    for i, (backlog, in_flight, latency, cpu, start) in enumerate(stream):
        now = 5.0 * i
        d = p.decide(
            ScalingInputs(
                now=now,
                workers=workers,
                backlog=backlog,
                in_flight=in_flight,
                concurrency=4,
                latency_p95=latency,
                cpu_percent=cpu,
                worker_start_seconds=start,
            )
        )
        working_before, was_working = was_working, backlog > 0 and in_flight > 0
        if d is None:
            continue
        assert low <= d.new <= high and d.new != d.old
        if d.new > d.old:
            assert cpu is None or cpu < CONFIG.cpu_ceiling_percent
            assert d.new - d.old <= max(1, math.ceil(d.old * CONFIG.scale_up_step))
            assert working_before and was_working  # a drain rate needs two working, backlogged samples in a row
            assert last_change is None or now - last_change >= CONFIG.scale_up_cooldown
        else:
            assert d.old - d.new == 1 and backlog == 0
            assert last_change is None or now - last_change >= CONFIG.scale_down_cooldown
        workers, last_change = d.new, now
