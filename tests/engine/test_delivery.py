"""Results, retries, dead letters and the errors users see, through real worker processes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sluiceway.engine import (
    Backpressure,
    EngineNotRunning,
    MessageParallelizer,
    ParallelizerConfig,
    Priority,
    UnencodablePayload,
    WorkerStartupError,
)
from sluiceway.errors import SluicewayError
from sluiceway.testing import handlers
from sluiceway.testing.handlers import read_log
from sluiceway.testing.waiting import wait_until

SCRIPTED = "sluiceway.testing.handlers:scripted"

Run = Callable[[Any], Any]
Config = Callable[..., ParallelizerConfig]


def test_submit_returns_the_handler_result_from_a_worker_process(run: Run, config: Config) -> None:
    """submit() runs the handler in a worker process (not ours) and returns what it returned."""

    async def scenario() -> None:
        async with MessageParallelizer(handlers.scripted, config()) as engine:
            assert await engine.submit({"result": {"answer": [1, 2]}}) == {"answer": [1, 2]}
            pid = await engine.submit({"result": "pid"})
            assert pid in engine.worker_pids() and pid != os.getpid()

    run(scenario())


def test_submit_nowait_returns_a_future_or_refuses_at_once(run: Run, config: Config, tmp_path: Path) -> None:
    """submit_nowait accepts synchronously and returns the result's future; under backpressure it raises, accepting
    nothing.
    """
    gate = tmp_path / "gate"

    async def scenario() -> None:
        cfg = config(
            default_worker_count=1,
            worker_concurrency=1,
            worker_prefetch=1,
            queue_high_water_mark=3,
            queue_low_water_mark=1,
        )
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            first = engine.submit_nowait({"gate": str(gate), "result": "first"})
            await wait_until(lambda: engine.get_statistics().in_flight == 1, what="first message in flight")
            queued: list[Any] = []
            with pytest.raises(Backpressure, match="high-water mark"):
                for i in range(10):
                    queued.append(engine.submit_nowait({"result": i}, Priority.HIGH, ordering_key="k"))
            assert engine.get_statistics().queued == 3
            enqueued = engine.get_statistics().enqueued
            with pytest.raises(Backpressure):
                engine.submit_nowait({"result": "refused"})
            assert engine.get_statistics().enqueued == enqueued
            gate.touch()
            assert await first == "first"
            assert [await f for f in queued] == list(range(len(queued)))
            with pytest.raises(UnencodablePayload):
                engine.submit_nowait({"bad": object()})

    run(scenario())


def test_sync_handler_runs_and_returns(run: Run, config: Config) -> None:
    """A synchronous handler is accepted, run off the worker's loop, and its result returned."""

    async def scenario() -> None:
        async with MessageParallelizer("sluiceway.testing.handlers:sync_scripted", config()) as engine:
            assert await engine.submit({"sleep": 0.01, "result": "done"}) == "done"

    run(scenario())


def test_failing_handler_is_retried_then_succeeds(run: Run, config: Config, tmp_path: Path) -> None:
    """A handler that fails twice then succeeds completes on attempt 3, counted as 2 failed attempts and 2 retries."""
    log = str(tmp_path / "log")

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config(max_attempts=3)) as engine:
            assert await engine.submit({"log": log, "fail_until": 3, "result": "ok"}) == "ok"
            stats = engine.get_statistics()
            assert (stats.completed, stats.failed_attempts, stats.retried, stats.dead_lettered) == (1, 2, 2, 0)

    run(scenario())
    assert [int(fields[2]) for fields in read_log(log)] == [1, 2, 3]


def test_exhausted_message_is_dead_lettered_with_its_error(run: Run, config: Config) -> None:
    """After max_attempts failures the message is dead-lettered with payload, attempts, error and traceback."""

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config(max_attempts=2)) as engine:
            message_id = await engine.enqueue_message({"fail": "bad row"}, Priority.LOW, ordering_key="k")
            await engine.wait_for_completion(timeout=60)
            [letter] = engine.dead_letters()
            assert letter.id == message_id and letter.payload == {"fail": "bad row"}
            assert letter.attempts == 2 and letter.reason == "error" and letter.priority is Priority.LOW
            assert letter.error == "ValueError: bad row" and "raise ValueError" in letter.traceback
            assert letter.ordering_key == "k"
            stats = engine.get_statistics()
            assert (stats.dead_lettered, stats.completed, stats.failed_attempts) == (1, 0, 2)

    run(scenario())


def test_replayed_dead_letters_run_again(run: Run, config: Config, tmp_path: Path) -> None:
    """replay_dead_letters() enqueues each dead letter anew and empties the dead-letter queue."""
    log = str(tmp_path / "log")

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config(max_attempts=1)) as engine:
            await engine.enqueue_message({"log": log, "fail_until": 2})
            await engine.wait_for_completion(timeout=60)
            assert len(engine.dead_letters()) == 1
            # Attempts start over, so the replay's first attempt fails again: a fresh message each time.
            [new_id] = engine.replay_dead_letters()
            assert engine.dead_letters() == []
            await engine.wait_for_completion(timeout=60)
            assert [letter.id for letter in engine.dead_letters()] == [new_id]

    run(scenario())
    assert len(read_log(log)) == 2


def test_submit_raises_the_handlers_exception_after_the_last_attempt(run: Run, config: Config) -> None:
    """submit() re-raises the handler's own exception type and text once its attempts are used up."""

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config(max_attempts=2)) as engine:
            with pytest.raises(ValueError, match="no such tenant"):
                await engine.submit({"fail": "no such tenant"})

    run(scenario())


def test_unencodable_result_is_a_clear_failure(run: Run, config: Config) -> None:
    """A submit whose handler returns something msgpack cannot encode fails with a HandlerError naming it."""

    async def scenario() -> None:
        async with MessageParallelizer("sluiceway.testing.handlers:sync_scripted", config(max_attempts=1)) as engine:
            with pytest.raises(SluicewayError, match="unsupported|encode"):
                await engine.submit({"result": None, "sleep": 0} | {"result": 1.5j})  # type: ignore[dict-item]

    run(scenario())


def test_unencodable_payload_is_refused_at_enqueue(run: Run, config: Config) -> None:
    """A payload msgpack cannot encode raises UnencodablePayload (a TypeError) and is not accepted."""

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config()) as engine:
            with pytest.raises(UnencodablePayload, match="object") as info:
                await engine.enqueue_message({"x": object()})
            assert isinstance(info.value, TypeError)
            with pytest.raises(ValueError, match="priority"):
                await engine.enqueue_message({}, priority=7)
            with pytest.raises(ValueError, match="ordering_key"):
                await engine.enqueue_message({}, ordering_key=42)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="ordering_key must be encodable as UTF-8"):
                await engine.enqueue_message({}, ordering_key="+1555\ud800")
            assert engine.get_statistics().enqueued == 0
            # Non-ASCII keys that are text are fine.
            assert await engine.submit({"result": "ok"}, ordering_key="inquilino-ñ-东") == "ok"

    run(scenario())


def test_handler_that_cannot_be_imported_by_workers_is_refused() -> None:
    """A lambda, a __main__ function or a malformed spec is refused up front with ValueError."""
    with pytest.raises(ValueError, match="handler"):
        MessageParallelizer(lambda m: None)
    with pytest.raises(ValueError, match="module:function"):
        MessageParallelizer("no_colon_here")
    with pytest.raises(ValueError, match="config"):
        MessageParallelizer(SCRIPTED, {"default_worker_count": 2})  # type: ignore[arg-type]


def test_worker_startup_failure_is_reported_by_start(run: Run, config: Config) -> None:
    """A handler module that does not import, or a failing setup hook, makes start() raise WorkerStartupError."""

    async def scenario() -> None:
        with pytest.raises(WorkerStartupError, match="ModuleNotFoundError"):
            await MessageParallelizer("sluiceway.no_such_module:handle", config()).start()
        engine = MessageParallelizer(SCRIPTED, config(), worker_setup=handlers.failing_setup)
        with pytest.raises(WorkerStartupError, match="setup failed on purpose"):
            await engine.start()
        assert engine.worker_pids() == []

    run(scenario())


def test_engine_refuses_work_before_start_and_after_shutdown(run: Run, config: Config) -> None:
    """enqueue before start() or after shutdown() raises EngineNotRunning instead of losing the message."""

    async def scenario() -> None:
        engine = MessageParallelizer(SCRIPTED, config())
        with pytest.raises(EngineNotRunning):
            engine.enqueue_nowait({})
        await engine.start()
        await engine.shutdown()
        with pytest.raises(EngineNotRunning):
            await engine.enqueue_message({})

    run(scenario())
