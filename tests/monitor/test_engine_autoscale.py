"""The monitor driving a real engine: a burst scales workers up, idleness scales them down, nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sluiceway import MonitorConfig, PerformanceMonitor
from sluiceway.engine import MessageParallelizer, ParallelizerConfig
from sluiceway.monitor import AutoscaleConfig
from sluiceway.testing.handlers import read_log
from sluiceway.testing.waiting import wait_until

#: Generous: worker processes start slowly on a loaded 2-core CI machine.
WAIT = 120.0
MESSAGES = 100


def test_burst_scales_up_idleness_scales_down_no_message_lost(tmp_path: Path) -> None:
    """A held-back burst makes the monitor add workers; once it drains, idleness removes them; every message ran."""
    gate, log = tmp_path / "gate", tmp_path / "log"
    engine_config = ParallelizerConfig(
        default_worker_count=1, min_workers=1, max_workers=3, worker_concurrency=2, enable_auto_scaling=True
    )
    monitor_config = MonitorConfig(
        metric_collection_interval=0.1,
        performance_check_interval=0.5,
        monitor_process=False,  # CPU gating is the policy tests' job; here CPU is unknown, never "saturated"
        autoscale=AutoscaleConfig(
            backlog_per_worker=5,
            scale_up_sustain=0.3,
            scale_up_cooldown=0.3,
            idle_sustain=0.5,
            scale_down_cooldown=0.3,
        ),
    )

    async def scenario() -> None:
        monitor = PerformanceMonitor(monitor_config)
        async with MessageParallelizer("sluiceway.testing.handlers:scripted", engine_config, monitor=monitor) as engine:
            ids = {await engine.enqueue_message({"gate": str(gate), "log": str(log)}) for _ in range(MESSAGES)}
            # The gate holds every handler, so the backlog lasts however slow the machine is.
            await wait_until(
                lambda: engine.get_statistics().worker_count == 3, WAIT, "the monitor to scale up to 3 workers"
            )
            gate.touch()
            await engine.wait_for_completion(timeout=WAIT)
            await wait_until(
                lambda: engine.get_statistics().worker_count == 1, WAIT, "the monitor to scale back down to 1"
            )
            statistics = engine.get_statistics()
            assert statistics.completed == MESSAGES and statistics.dead_lettered == 0
            assert {line[1] for line in read_log(log)} == ids
            decisions = monitor.current_report().scaling
            ups = [d for d in decisions if d.new > d.old]
            downs = [d for d in decisions if d.new < d.old]
            assert [(d.old, d.new) for d in ups] == [(1, 2), (2, 3)]
            assert all("backlog" in d.reason for d in ups)
            assert [(d.old, d.new) for d in downs] == [(3, 2), (2, 1)]
            assert all("idle" in d.reason for d in downs)
            assert monitor.current_report().completed_total <= MESSAGES

    asyncio.run(scenario())


def test_backlog_one_worker_clears_in_18s_gets_a_second_worker_while_it_lasts() -> None:
    """The reported case: 600 messages of 30 ms on one worker (18 s, target 10 s, max 3 workers).

    The monitor samples every 0.5 s with the default policy; a second worker joins while the
    backlog is still there, not after it is gone. (Which reason it gives depends on the
    machine: a worker that holds messages but has not finished starting shows a backlog that
    is not shrinking at all, a running one the 18 s drain.)
    """
    engine_config = ParallelizerConfig(
        default_worker_count=1, min_workers=1, max_workers=3, worker_concurrency=1, enable_auto_scaling=True
    )
    monitor_config = MonitorConfig(metric_collection_interval=0.5, monitor_process=False)

    async def scenario() -> None:
        monitor = PerformanceMonitor(monitor_config)
        async with MessageParallelizer("sluiceway.testing.handlers:scripted", engine_config, monitor=monitor) as engine:
            for _ in range(600):
                await engine.enqueue_message({"sleep": 0.03})
            await wait_until(
                lambda: engine.get_statistics().worker_count >= 2 or engine.get_statistics().queued == 0,
                WAIT,
                "a second worker or the end of the backlog",
            )
            statistics = engine.get_statistics()
            assert statistics.worker_count >= 2, f"the backlog was gone first: {monitor.current_report().scaling}"
            assert statistics.queued > 0
            ups = [d for d in monitor.current_report().scaling if d.new > d.old]
            assert [(d.old, d.new) for d in ups] == [(1, 2)] and "backlog" in ups[0].reason
            await engine.wait_for_completion(timeout=WAIT)
            assert engine.get_statistics().completed == 600

    asyncio.run(scenario())
