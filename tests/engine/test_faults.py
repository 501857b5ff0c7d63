"""Nothing accepted is lost: SIGKILLed workers, poison messages, hangs and blocking handlers."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sluiceway.engine import MessageParallelizer, ParallelizerConfig
from sluiceway.testing import wait_until
from sluiceway.testing.handlers import read_log

SCRIPTED = "sluiceway.testing.handlers:scripted"

Run = Callable[[Any], Any]
Config = Callable[..., ParallelizerConfig]


@settings(max_examples=4)
@given(
    kills=st.lists(st.tuples(st.integers(1, 250), st.integers(0, 1)), min_size=1, max_size=3),
)
def test_sigkilled_workers_lose_nothing(kills: list[tuple[int, int]], tmp_path_factory: Any) -> None:
    """Workers SIGKILLed at hypothesis-chosen moments under load: every message still completes, workers replaced."""
    import uvloop

    log = str(tmp_path_factory.mktemp("kill") / "log")
    total = 300
    config = ParallelizerConfig(
        default_worker_count=2,
        min_workers=1,
        max_workers=4,
        worker_concurrency=8,
        max_attempts=20,
        retry_initial_backoff=0.0,
        retry_max_backoff=0.0,
        heartbeat_interval=0.25,
        worker_timeout=30.0,
    )

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config) as engine:
            ids = [await engine.enqueue_message({"log": log, "sleep": 0.002}) for _ in range(total)]
            for after, which in sorted(kills):
                await wait_until(lambda: len(read_log(log)) >= after or engine.get_statistics().completed == total)  # noqa: B023 - awaited within this iteration
                pids = engine.worker_pids()
                if pids:
                    os.kill(pids[which % len(pids)], signal.SIGKILL)
            await engine.wait_for_completion(timeout=120)
            stats = engine.get_statistics()
            assert (stats.completed, stats.dead_lettered) == (total, 0)
            assert set(ids) <= {fields[1] for fields in read_log(log)}
            await wait_until(lambda: engine.get_statistics().worker_count == 2, what="replacement workers")

    uvloop.run(scenario())


def test_poison_message_is_dead_lettered_without_taking_innocents_down(
    run: Run, config: Config, tmp_path: Path
) -> None:
    """A message that kills its worker every time ends dead-lettered after max_attempts; the others sharing its worker
    complete.
    """
    log = str(tmp_path / "log")

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config(default_worker_count=1, max_attempts=2)) as engine:
            innocent = [await engine.enqueue_message({"log": log, "sleep": 0.01}) for _ in range(5)]
            poison = await engine.enqueue_message({"crash": True})
            innocent += [await engine.enqueue_message({"log": log, "sleep": 0.01}) for _ in range(5)]
            await engine.wait_for_completion(timeout=120)
            [letter] = engine.dead_letters()
            assert letter.id == poison and letter.reason == "crashed" and letter.attempts == 2
            assert "WorkerDied" in letter.error
            assert set(innocent) <= {fields[1] for fields in read_log(log)}
            assert engine.get_statistics().completed == 10

    run(scenario())


def test_hanging_handler_is_cancelled_as_a_failed_attempt(run: Run, config: Config) -> None:
    """A handler running past worker_timeout is cancelled, counted failed, and dead-lettered as a timeout."""

    async def scenario() -> None:
        cfg = config(worker_timeout=1.0, heartbeat_interval=0.2, max_attempts=2)
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            pids = engine.worker_pids()
            assert await engine.submit({"result": 1}) == 1
            await engine.enqueue_message({"hang": True})
            await engine.wait_for_completion(timeout=60)
            [letter] = engine.dead_letters()
            assert letter.reason == "timeout" and letter.attempts == 2 and "TimeoutError" in letter.error
            assert engine.worker_pids() == pids  # cancelled in place: no worker was killed

    run(scenario())


def test_blocking_handler_gets_its_worker_replaced(run: Run, config: Config, tmp_path: Path) -> None:
    """A handler blocking the loop gets its worker killed as unresponsive and replaced; the others complete."""
    log = str(tmp_path / "log")

    async def scenario() -> None:
        cfg = config(worker_timeout=2.0, heartbeat_interval=0.25, max_attempts=1, default_worker_count=1)
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            first_pid = engine.worker_pids()[0]
            blocker = await engine.enqueue_message({"block": True})
            others = [await engine.enqueue_message({"log": log}) for _ in range(10)]
            await engine.wait_for_completion(timeout=120)
            [letter] = engine.dead_letters()
            assert letter.id == blocker and letter.reason == "crashed" and "stopped answering" in letter.error
            assert set(others) <= {fields[1] for fields in read_log(log)}
            assert first_pid not in engine.worker_pids() and len(engine.worker_pids()) == 1

    run(scenario())


def test_worker_killed_while_starting_is_replaced_and_shutdown_is_prompt(run: Run, config: Config) -> None:
    """SIGKILL of a replacement worker before it is ready: another replaces it, and shutdown does not hang."""

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config(default_worker_count=1)) as engine:
            [first] = engine.worker_pids()
            os.kill(first, signal.SIGKILL)
            await wait_until(lambda: engine.worker_pids() not in ([], [first]), what="a replacement process")
            os.kill(engine.worker_pids()[0], signal.SIGKILL)
            assert await engine.submit({"result": "pid"}) in engine.worker_pids()
            await wait_until(lambda: engine.get_statistics().worker_count == 1, what="one worker")

    run(scenario())
