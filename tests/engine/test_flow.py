"""Backpressure, scaling, draining, recycling, broadcast and hooks on a running engine."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sluiceway.engine import (
    Backpressure,
    DeadLetter,
    EngineHooks,
    LatencyDelta,
    MessageParallelizer,
    ParallelizerConfig,
    Scaled,
    Statistics,
    WorkerExited,
    WorkerStarted,
)
from sluiceway.histogram import LatencyHistogram
from sluiceway.testing import handlers, wait_until
from sluiceway.testing.handlers import read_log

SCRIPTED = "sluiceway.testing.handlers:scripted"

Run = Callable[[Any], Any]
Config = Callable[..., ParallelizerConfig]


def test_backpressure_switches_on_at_high_and_off_only_at_low_water_mark(
    run: Run, config: Config, tmp_path: Path
) -> None:
    """enqueue_nowait raises Backpressure from the high-water mark until the queue falls to the low one (hysteresis)."""
    gates = [tmp_path / f"gate{i}" for i in range(40)]

    async def scenario() -> None:
        cfg = config(
            default_worker_count=1,
            worker_concurrency=1,
            worker_prefetch=1,
            queue_high_water_mark=10,
            queue_low_water_mark=4,
        )
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            engine.enqueue_nowait({"gate": str(gates[0])})
            await wait_until(lambda: engine.get_statistics().in_flight == 1, what="first message in flight")
            accepted = 1
            with pytest.raises(Backpressure, match="high-water mark"):
                for i in range(1, 40):
                    engine.enqueue_nowait({"gate": str(gates[i])})
                    accepted += 1
            assert engine.get_statistics().queued == 10 and engine.get_statistics().backpressure
            # Completing messages one by one: still refused while queued is above the low mark.
            for done in range(1, 7):
                gates[done - 1].touch()
                await wait_until(lambda: engine.get_statistics().completed == done, what=f"{done} completions")  # noqa: B023 - awaited within this iteration
                queued = engine.get_statistics().queued
                if queued > 4:
                    with pytest.raises(Backpressure):
                        engine.enqueue_nowait({})
                else:
                    break
            assert engine.get_statistics().queued == 4 and not engine.get_statistics().backpressure
            engine.enqueue_nowait({"gate": str(gates[accepted])})
            for gate in gates:
                gate.touch()

    run(scenario())


def test_enqueue_message_waits_while_backpressure_is_on(run: Run, config: Config, tmp_path: Path) -> None:
    """enqueue_message blocks at the high-water mark and resumes once the queue drains to the low one."""
    gate = tmp_path / "gate"

    async def scenario() -> None:
        cfg = config(
            default_worker_count=1,
            worker_concurrency=1,
            worker_prefetch=1,
            queue_high_water_mark=5,
            queue_low_water_mark=1,
        )
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            await engine.enqueue_message({"gate": str(gate)})
            await wait_until(lambda: engine.get_statistics().in_flight == 1, what="first message in flight")
            for _ in range(5):
                await engine.enqueue_message({"gate": str(gate)})
            assert engine.get_statistics().backpressure
            blocked = asyncio.ensure_future(engine.enqueue_message({}))
            await asyncio.sleep(0.05)  # not a wait for a result: gives the blocked call a chance to (wrongly) finish
            assert not blocked.done()
            gate.touch()
            await asyncio.wait_for(blocked, 60)
            await engine.wait_for_completion(timeout=60)
            assert engine.get_statistics().completed == 7

    run(scenario())


def test_scale_up_and_down_under_load_loses_nothing(run: Run, config: Config, tmp_path: Path) -> None:
    """scale_to adds and retires workers while messages flow; every message completes exactly as counted."""
    log = str(tmp_path / "log")

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config(default_worker_count=2, max_workers=4)) as engine:
            ids = [await engine.enqueue_message({"log": log, "sleep": 0.003}) for _ in range(600)]
            await wait_until(lambda: engine.get_statistics().completed >= 50)
            await engine.scale_to(4)
            assert engine.get_statistics().worker_count == 4
            await wait_until(lambda: engine.get_statistics().completed >= 200)
            await engine.scale_to(1)
            assert engine.get_statistics().worker_count == 1 and len(engine.worker_pids()) == 1
            await engine.wait_for_completion(timeout=120)
            assert engine.get_statistics().completed == 600
            logged = {fields[1] for fields in read_log(log)}
            assert set(ids) <= logged
            with pytest.raises(ValueError, match="scale_to"):
                await engine.scale_to(5)

    run(scenario())


def test_shutdown_with_drain_finishes_everything_accepted(run: Run, config: Config, tmp_path: Path) -> None:
    """shutdown(drain=True) returns only after every accepted message, retries included, has run."""
    log = str(tmp_path / "log")

    async def scenario() -> None:
        engine = MessageParallelizer(SCRIPTED, config(max_attempts=3))
        await engine.start()
        for i in range(200):
            await engine.enqueue_message({"log": log, "sleep": 0.002, "fail_until": 2 if i % 10 == 0 else 0})
        summary = await engine.shutdown(drain=True)
        assert (summary.completed, summary.remaining, summary.dead_lettered) == (200, [], 0)
        assert engine.worker_pids() == []

    run(scenario())


def test_shutdown_without_drain_reports_what_stayed_queued(run: Run, config: Config, tmp_path: Path) -> None:
    """shutdown(drain=False) lets in-flight handlers finish and returns the messages never started."""
    gate = tmp_path / "gate"

    async def scenario() -> None:
        cfg = config(default_worker_count=1, worker_concurrency=2, worker_prefetch=2)
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            for i in range(10):
                await engine.enqueue_message({"gate": str(gate), "tag": str(i)})
            await wait_until(lambda: engine.get_statistics().in_flight == 2)
            stopping = asyncio.ensure_future(engine.shutdown(drain=False))
            await wait_until(lambda: engine.get_statistics().queued == 0)
            gate.touch()
            summary = await stopping
            assert summary.completed == 2
            assert [m.payload["tag"] for m in summary.remaining] == [str(i) for i in range(2, 10)]

    run(scenario())


def test_workers_are_recycled_after_max_messages(run: Run, config: Config, tmp_path: Path) -> None:
    """With max_messages_per_worker, a worker retires after that many messages and a fresh one takes over, losing
    nothing.
    """
    log = str(tmp_path / "log")

    async def scenario() -> None:
        cfg = config(default_worker_count=1, max_messages_per_worker=40, worker_prefetch=4)
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            for _ in range(200):
                await engine.enqueue_message({"log": log})
            await engine.wait_for_completion(timeout=120)
            assert engine.get_statistics().completed == 200

    run(scenario())
    per_pid = Counter(fields[3] for fields in read_log(log))
    assert len(per_pid) >= 4 and sum(per_pid.values()) >= 200


def test_adaptive_prefetch_grows_for_a_fast_worker_and_stays_at_its_floor_for_a_slow_one(
    run: Run, config: Config
) -> None:
    """With a 1 s window any fast worker outgrows 2 x concurrency; one that cannot finish
    200 messages a second holds no more than its floor under a 2 ms window."""

    async def scenario() -> None:
        fast = config(default_worker_count=1, worker_concurrency=1, prefetch_window=1.0)
        async with MessageParallelizer("sluiceway.testing.handlers:noop", fast) as engine:
            await engine.enqueue_many([None] * 3000)
            await engine.wait_for_completion(timeout=60)
            (worker,) = engine.get_statistics().workers
            assert worker.prefetch > 2
        slow = config(default_worker_count=1, worker_concurrency=1, prefetch_window=0.002)
        async with MessageParallelizer(SCRIPTED, slow) as engine:
            await engine.enqueue_many([{"sleep": 0.005}] * 20)
            await engine.wait_for_completion(timeout=60)
            (worker,) = engine.get_statistics().workers
            assert worker.prefetch == 2

    run(scenario())


def test_broadcast_reaches_every_worker_before_it_returns(run: Run, config: Config, tmp_path: Path) -> None:
    """current_worker().broadcast from a handler returns only after every live worker applied it."""
    notes = tmp_path / "notes"

    async def scenario() -> None:
        cfg = config(default_worker_count=3)
        async with MessageParallelizer(SCRIPTED, cfg, worker_setup=handlers.subscribe_recorder) as engine:
            await engine.submit({"broadcast": ["note", f"{notes}|from-handler"]})
            lines = notes.read_text().splitlines()
            assert sorted(int(line.split()[0]) for line in lines) == sorted(engine.worker_pids())
            await engine.broadcast("note", f"{notes}|from-supervisor".encode())
            assert len(notes.read_text().splitlines()) == 6

    run(scenario())


class RecordingHooks(EngineHooks):
    """Keeps every hook call, for asserting what the engine reported."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.latency = LatencyHistogram()

    def on_start(self, engine: Any) -> None:
        self.calls.append(("start", engine.config.default_worker_count))

    async def on_stop(self) -> None:
        self.calls.append(("stop", None))

    def on_statistics(self, statistics: Statistics) -> None:
        self.calls.append(("statistics", statistics.completed))

    def on_latencies(self, delta: LatencyDelta) -> None:
        self.latency.merge(delta.histogram)

    def on_worker_started(self, event: WorkerStarted) -> None:
        self.calls.append(("worker_started", event.pid))

    def on_worker_exited(self, event: WorkerExited) -> None:
        self.calls.append(("worker_exited", event.reason))

    def on_dead_letter(self, dead_letter: DeadLetter) -> None:
        self.calls.append(("dead_letter", dead_letter.payload))

    def on_scaled(self, event: Scaled) -> None:
        self.calls.append(("scaled", (event.old, event.new)))


def test_hooks_see_lifecycle_statistics_latencies_and_dead_letters(run: Run, config: Config) -> None:
    """A monitor attached as a hook is told of start, workers, statistics, completions' latencies, dead letters, scaling
    and stop.
    """
    hooks = RecordingHooks()

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config(max_attempts=1), monitor=hooks) as engine:
            for _ in range(20):
                await engine.enqueue_message({})
            await engine.enqueue_message({"fail": "x"})
            await engine.wait_for_completion(timeout=60)
            await wait_until(lambda: hooks.latency.count >= 20, what="latency deltas of the completions")
            await wait_until(lambda: ("statistics", 20) in hooks.calls, what="a statistics snapshot")
            await engine.scale_to(1)

    run(scenario())
    names = [name for name, _ in hooks.calls]
    assert names[0] == "start" and names[-1] == "stop"
    assert names.count("worker_started") == 2 and ("worker_exited", "retired") in hooks.calls
    assert ("dead_letter", {"fail": "x"}) in hooks.calls and ("scaled", (2, 1)) in hooks.calls
