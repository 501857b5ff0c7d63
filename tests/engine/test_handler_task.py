"""Every handler runs inside a real asyncio Task: what needs one (timeouts, cancel scopes, aiohttp) works in handlers.

Handlers that finish without awaiting and ones that await are both checked, in real worker
processes; the handlers report what they saw through ``submit``. The worker's own
reporting (one REPORT per batch, the eager start on Python >= 3.12) is checked on a
``Worker`` driven in this process with a recording writer.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from aiohttp import web

from sluiceway.engine import MessageParallelizer, ParallelizerConfig, pipe
from sluiceway.engine.worker import Worker
from sluiceway.testing import task_handlers
from sluiceway.testing.waiting import wait_until

Run = Callable[[Any], Any]
Config = Callable[..., ParallelizerConfig]

EVERY_CHECK = {"task": True, "asyncio_timeout": True, "anyio_cancel_scope": True, "anyio_fail_after": True}


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (task_handlers.task_at_once, EVERY_CHECK),
        (task_handlers.task_awaiting, {**EVERY_CHECK, "task_after": True}),
    ],
    ids=["finishes-at-once", "awaits"],
)
def test_handlers_see_their_task_and_its_timeouts_work(
    run: Run, config: Config, handler: Any, expected: dict[str, bool]
) -> None:
    """current_task() is a Task; asyncio.timeout, anyio CancelScope and fail_after work (and cut a long await short)."""

    async def scenario() -> None:
        async with MessageParallelizer(handler, config()) as engine:
            seen = await asyncio.gather(*(engine.submit({"n": i}) for i in range(20)))
        assert seen == [expected] * 20

    run(scenario())


@asynccontextmanager
async def local_server() -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 at a free port: ``/ping`` answers at once, ``/slow`` only at exit."""
    release = asyncio.Event()

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def slow(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/ping", ping)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        release.set()
        await runner.cleanup()


def test_aiohttp_client_timeouts_work_in_handlers(run: Run, config: Config) -> None:
    """A GET with a ClientTimeout succeeds against a local server, and one past its timeout raises TimeoutError."""

    async def scenario() -> None:
        async with local_server() as base, MessageParallelizer(task_handlers.http_get, config()) as engine:
            fast = await engine.submit({"url": f"{base}/ping", "timeout": 10.0})
            too_slow = await engine.submit({"url": f"{base}/slow", "timeout": task_handlers.SHORT})
        assert fast == {"status": 200, "body": "pong"}
        assert too_slow == {"timed_out": True}

    run(scenario())


def test_worker_timeout_still_cancels_a_handler_task(run: Run, config: Config) -> None:
    """A handler awaiting past worker_timeout is cancelled and its submit raises TimeoutError naming worker_timeout."""

    async def scenario() -> None:
        cfg = config(worker_timeout=0.5, heartbeat_interval=0.1, max_attempts=1)
        async with MessageParallelizer("sluiceway.testing.handlers:scripted", cfg) as engine:
            with pytest.raises(TimeoutError, match="worker_timeout"):
                await engine.submit({"hang": True})

    run(scenario())


class RecordingWriter:
    """Stands in for the worker's pipe: keeps every frame sent."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []

    def send(self, frame: list[Any]) -> None:
        self.frames.append(frame)


def local_worker(handler: Callable[..., Any], concurrency: int = 64) -> tuple[Worker, RecordingWriter]:
    """A ``Worker`` on the running loop with ``handler`` loaded, writing into a ``RecordingWriter``."""
    writer = RecordingWriter()
    settings = {"engine_id": "e1", "concurrency": concurrency, "timeout": 30.0, "heartbeat_interval": 60.0, "index": 0}
    worker = Worker(settings, writer)
    worker.handler = handler
    return worker, writer


def dispatch_items(count: int) -> list[list[Any]]:
    """DISPATCH items ``[seq, attempt, priority, enqueued_at, key, want_result, payload, enqueued]`` wanting results."""
    return [[seq, 1, 1, 1.7e9, None, True, {"n": seq}, 0.0] for seq in range(1, count + 1)]


def reported_results(writer: RecordingWriter) -> dict[int, Any]:
    return {seq: msgspec.msgpack.decode(raw) for frame in writer.frames for seq, raw in frame[2]}


async def echo_at_once(message: Any) -> int:
    return int(message.payload["n"])


async def echo_after_one_turn(message: Any) -> int:
    await asyncio.sleep(0)
    return int(message.payload["n"])


@pytest.mark.parametrize("handler", [echo_at_once, echo_after_one_turn], ids=["finishes-at-once", "awaits-one-turn"])
def test_a_batch_is_reported_in_one_frame(run: Run, handler: Any) -> None:
    """A DISPATCH batch whose handlers all finish in the same loop turn is acknowledged by one REPORT frame."""

    async def scenario() -> None:
        worker, writer = local_worker(handler)
        worker.receive(dispatch_items(10))
        await wait_until(lambda: len(reported_results(writer)) == 10, what="10 results")
        assert [frame[0] for frame in writer.frames] == [pipe.REPORT]
        assert reported_results(writer) == {n: n for n in range(1, 11)}
        assert worker.running == 0 and not worker.timers
        assert worker.histogram.count == 10

    run(scenario())


def test_messages_past_the_concurrency_limit_wait_for_a_slot(run: Run) -> None:
    """At most worker_concurrency handlers run at once; the others start as slots free up, and all finish."""

    async def scenario() -> None:
        gate = asyncio.Event()
        running = 0
        most = 0

        async def gated(message: Any) -> int:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await gate.wait()
            running -= 1
            return int(message.payload["n"])

        worker, writer = local_worker(gated, concurrency=3)
        worker.receive(dispatch_items(8))
        await wait_until(lambda: running == 3, what="3 handlers running")
        assert (worker.running, len(worker.waiting)) == (3, 5)
        gate.set()
        await wait_until(lambda: len(reported_results(writer)) == 8, what="8 results")
        assert most == 3
        assert reported_results(writer) == {n: n for n in range(1, 9)}

    run(scenario())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager task start (Task(eager_start=True)) needs Python >= 3.12")
def test_handlers_that_finish_at_once_are_reported_before_receive_returns(run: Run) -> None:
    """On 3.12+ a handler that never awaits runs to completion inside its eager Task, within receive()."""

    async def scenario() -> None:
        worker, writer = local_worker(task_handlers.task_at_once)
        worker.receive(dispatch_items(5))
        assert [frame[0] for frame in writer.frames] == [pipe.REPORT]
        assert reported_results(writer) == dict.fromkeys(range(1, 6), EVERY_CHECK)
        assert worker.running == 0

    run(scenario())
