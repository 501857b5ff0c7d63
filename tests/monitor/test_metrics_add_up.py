"""The monitor's counters, its latency histogram and the engine's statistics agree once work is quiescent.

Whatever happens to the workers meanwhile (scaling up and down, recycling after
``max_messages_per_worker``, SIGKILL), every completion is counted once, by the
supervisor when it settles it, and reaches the monitor's counter and histogram alike.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import uvloop
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sluiceway import MonitorConfig, PerformanceMonitor
from sluiceway.engine import MessageParallelizer, ParallelizerConfig
from sluiceway.testing import wait_until

SCRIPTED = "sluiceway.testing.handlers:scripted"
TOTAL = 240
WAIT = 120.0

#: One disturbance, applied once the engine has completed ``at`` messages.
events = st.tuples(
    st.integers(0, TOTAL - 1),
    st.one_of(st.tuples(st.just("scale"), st.integers(1, 3)), st.tuples(st.just("kill"), st.integers(0, 2))),
)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    schedule=st.lists(events, max_size=4),
    recycle_after=st.sampled_from([0, 40]),
    failing_every=st.sampled_from([0, 7]),
    # 0.2 s: collections fall all through the work; 60 s: the first one after the start is the last.
    collect_every=st.sampled_from([0.2, 1.0, 60.0]),
)
# Every kind of disturbance at least once, whatever hypothesis draws.
@example(
    schedule=[(20, ("scale", 3)), (60, ("kill", 0)), (110, ("scale", 1)), (150, ("kill", 1)), (190, ("scale", 2))],
    recycle_after=40,
    failing_every=7,
    collect_every=1.0,
)
# The reported case: work done before the monitor's first collection.
@example(schedule=[(0, ("scale", 2))], recycle_after=0, failing_every=0, collect_every=60.0)
def test_counters_histogram_and_statistics_agree(
    schedule: list[tuple[int, tuple[str, int]]], recycle_after: int, failing_every: int, collect_every: float
) -> None:
    """After ``wait_for_completion`` and one more collection, every count of completions is the number completed."""
    engine_config = ParallelizerConfig(
        default_worker_count=1,
        min_workers=1,
        max_workers=3,
        worker_concurrency=4,
        max_attempts=20,
        retry_initial_backoff=0.0,
        retry_max_backoff=0.0,
        heartbeat_interval=0.25,
        statistics_interval=0.25,
        worker_timeout=30.0,
        max_messages_per_worker=recycle_after,
        enable_auto_scaling=False,
    )
    # Collections run on their own timer too, so some may fall while work is under way.
    monitor = PerformanceMonitor(MonitorConfig(metric_collection_interval=collect_every, monitor_process=False))

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, engine_config, monitor=monitor) as engine:
            # One failed first attempt in ``failing_every`` messages: failures must not count as completions.
            payloads: list[dict[str, Any]] = [
                {"sleep": 0.005, "fail_until": 2 if failing_every and n % failing_every == 0 else 0}
                for n in range(TOTAL)
            ]
            await engine.enqueue_many(payloads[: TOTAL // 2])
            results = [engine.submit_nowait(payload) for payload in payloads[TOTAL // 2 :]]
            for at, (kind, n) in sorted(schedule):
                await wait_until(lambda at=at: engine.get_statistics().completed >= at, WAIT, f"{at} completions")
                if kind == "scale":
                    await engine.scale_to(n)
                else:
                    ready = [w.pid for w in engine.get_statistics().workers if w.state == "ready"]
                    if ready:
                        os.kill(ready[n % len(ready)], signal.SIGKILL)
            await engine.wait_for_completion(timeout=WAIT)
            for result in results:
                await result
            monitor.collect()
            statistics = engine.get_statistics()
            report = monitor.current_report()
            longest = report.latency[-1]
            assert (statistics.completed, statistics.dead_lettered) == (TOTAL, 0)
            assert report.completed_total == TOTAL
            assert longest.count == TOTAL
            assert report.failed_total == statistics.failed_attempts
            assert report.engine is not None and report.engine["completed"] == TOTAL

    uvloop.run(scenario())


def test_worker_start_time_is_measured() -> None:
    """``Statistics.worker_start_seconds``: 0.0 before any worker started, then the median spawn-to-ready time."""
    config = ParallelizerConfig(default_worker_count=1, min_workers=1, max_workers=2)

    async def scenario() -> None:
        engine = MessageParallelizer(SCRIPTED, config)
        await engine.start()
        try:
            first = engine.get_statistics().worker_start_seconds
            await engine.scale_to(2)
            both = engine.get_statistics().worker_start_seconds
        finally:
            await engine.shutdown()
        assert first > 0.0 and both > 0.0
        assert first < WAIT and both < WAIT

    assert MessageParallelizer(SCRIPTED, config).get_statistics().worker_start_seconds == 0.0
    uvloop.run(scenario())
