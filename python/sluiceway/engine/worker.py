"""One worker process: a uvloop event loop running the user's handler on batches of messages.

The supervisor starts it as ``python -m sluiceway.engine.worker READ_FD WRITE_FD`` (a fresh
interpreter, as multiprocessing's ``spawn`` context does) and sends an INIT frame. The worker
imports the handler, runs the setup hook, answers READY, then runs DISPATCH batches: a
handler that completes without suspending is run inline with no task at all; one that
suspends continues as a task, up to ``worker_concurrency`` at once, each cancelled after
``worker_timeout``. Outcomes are acknowledged in one REPORT frame per batch (per loop turn
for tasks); a heartbeat REPORT carries the latency histogram delta once per interval.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import pickle
import signal
import sys
import time
import traceback
import types
from concurrent.futures import ThreadPoolExecutor
from collections import deque
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import msgspec

from sluiceway import histogram
from sluiceway._core import AckSettler, InlineRunner
from sluiceway.engine import context, handler
from sluiceway.engine import pipe as transport
from sluiceway.engine.message import Message, Priority
from sluiceway.histogram import LatencyHistogram

_PRIORITIES = tuple(Priority)
#: Counts handler durations into the histogram in Rust, one call per flush.
_settler = AckSettler(histogram.RELATIVE_ERROR, histogram.MIN_VALUE)
_result_encoder = msgspec.msgpack.Encoder()

# Failure kinds carried in REPORT frames.
#: The handler raised.
FAILED_ERROR = "error"
#: The handler ran past ``worker_timeout`` and was cancelled.
FAILED_TIMEOUT = "timeout"
#: ``submit``'s handler returned something msgpack cannot encode.
FAILED_RESULT = "unencodable result"


@types.coroutine
def _resume(coro: Any, awaiting: Any) -> Generator[Any, Any, Any]:
    """Continue a coroutine that was started by hand and suspended on ``awaiting``.

    The task running this generator sees exactly what the coroutine yields, so it waits on
    the same futures and delivers cancellation into the coroutine, as ``await coro`` would.
    ``InlineRunner`` cleared the first future's "awaited" mark (so that other handlers of
    the batch could await it too): it is set again as the task takes it.
    """
    if getattr(awaiting, "_asyncio_future_blocking", None) is False:
        awaiting._asyncio_future_blocking = True
    while True:
        try:
            sent = yield awaiting
        except BaseException as exc:  # cancellation (or any throw) goes into the handler
            try:
                awaiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                awaiting = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _continue(coro: Any, awaiting: Any) -> Any:
    return await _resume(coro, awaiting)


def _sync_adapter(function: Callable[[Message], Any]) -> Callable[[Message], Any]:
    """Run a synchronous handler in a thread so it cannot block the worker's loop.

    A thread cannot be cancelled: past ``worker_timeout`` the attempt counts as failed and
    the thread's eventual result is dropped.
    """

    async def run_in_thread(message: Message) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, function, message)

    return run_in_thread


class Worker:
    """The worker's state on its loop: messages waiting for a slot, outcomes waiting to be reported."""

    def __init__(self, settings: dict[str, Any], writer: transport.FrameWriter) -> None:
        self.writer = writer
        self.engine_id: str = settings["engine_id"]
        self.concurrency: int = settings["concurrency"]
        self.timeout: float = settings["timeout"]
        self.heartbeat_interval: float = settings["heartbeat_interval"]
        self.loop = asyncio.get_running_loop()
        self.handler: Callable[[Message], Any] = lambda message: None
        #: Runs DISPATCH batches inline; made once the handler is loaded.
        self.runner: InlineRunner | None = None
        self.teardown: Callable[[], Any] | None = None
        self.waiting: deque[list[Any]] = deque()
        self.running = 0
        self.done: list[int] = []
        self.results: list[list[Any]] = []
        self.failures: list[list[Any]] = []
        self.flush_scheduled = False
        self.retiring = False
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.histogram = LatencyHistogram()
        #: Handler durations not yet counted in ``histogram``: counted in one call per flush.
        self.durations: list[float] = []
        self.context = context.RemoteWorkerContext(settings["index"], self._send_broadcast)

    async def start(self, settings: dict[str, Any]) -> None:
        """Import the handler and run the setup hook (an exception here fails the start)."""
        for entry in reversed(settings["sys_path"]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        context.install(self.context)
        target = handler.load(settings["handler"])
        if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(getattr(target, "__call__", None)):
            self.handler = target
        else:
            self.loop.set_default_executor(ThreadPoolExecutor(self.concurrency, "sluiceway-handler"))
            self.handler = _sync_adapter(target)
        self.runner = InlineRunner(
            self.handler, Message, _PRIORITIES, self.engine_id + "-", types.CoroutineType,
            histogram.RELATIVE_ERROR, histogram.MIN_VALUE,
        )
        if settings["setup"]:
            outcome = handler.load(settings["setup"])()
            if inspect.isawaitable(outcome):
                await outcome
        if settings["teardown"]:
            self.teardown = handler.load(settings["teardown"])

    # -- frames from the supervisor --------------------------------------------------------

    def on_frame(self, frame: list[Any]) -> None:
        kind = frame[0]
        if kind == transport.DISPATCH:
            self.receive(frame[1])
        elif kind == transport.APPLY:
            self.loop.create_task(self._apply(frame[1], frame[2], frame[3]))
        elif kind == transport.BROADCAST_DONE:
            self.context.broadcast_done(frame[1])
        elif kind == transport.RETIRE:
            self.retiring = True
            self._maybe_finish()

    def on_closed(self) -> None:
        """The supervisor is gone: nobody can receive results any more, so stop."""
        if not self.finished.done():
            self.finished.set_result(None)

    def receive(self, items: list[list[Any]]) -> None:
        """Run a DISPATCH batch: inline where a handler finishes without suspending, else as tasks.

        The inline part is one Rust call for the whole batch (``InlineRunner``): it builds
        each ``Message``, starts the handler's coroutine without raising ``StopIteration``,
        appends plain successes to the next REPORT and counts their durations; only results,
        errors and suspended handlers come back here.
        """
        assert self.runner is not None
        slots = self.concurrency - self.running if not self.waiting else 0
        consumed, returned, raised, suspended = self.runner.run(items, max(0, slots), self.done, self.histogram)
        for item, value in returned:
            self.succeed(item[0], value, item[5], None)
        for item, exc in raised:
            self.fail(item[0], FAILED_ERROR, exc, item[5], None)
        for item, coro, awaiting, started in suspended:
            self._suspended(item[0], item[5], started, coro, awaiting)
        if consumed < len(items):
            self.waiting.extend(items[consumed:])
        self.flush()

    def run(self, item: list[Any]) -> None:
        """Start one message taken from ``waiting`` once a slot frees up."""
        seq, attempt, priority, enqueued_at, key, want_result, payload, _ = item
        message = Message(
            f"{self.engine_id}-{seq}", payload, _PRIORITIES[priority], attempt, enqueued_at, key
        )
        started = time.perf_counter()
        try:
            coro = self.handler(message)
            if not inspect.iscoroutine(coro):  # a plain function returning a value
                self.succeed(seq, coro, want_result, started)
                return
            awaiting = coro.send(None)
        except StopIteration as stop:
            self.succeed(seq, stop.value, want_result, started)
            return
        except Exception as exc:
            self.fail(seq, FAILED_ERROR, exc, want_result, started)
            return
        self._suspended(seq, want_result, started, coro, awaiting)

    def _suspended(self, seq: int, want_result: bool, started: float, coro: Any, awaiting: Any) -> None:
        """The handler awaited something: it continues as a task, cancelled after ``worker_timeout``."""
        self.running += 1
        task = self.loop.create_task(_continue(coro, awaiting))
        timer = self.loop.call_later(self.timeout, task.cancel)
        task.add_done_callback(partial(self._task_done, seq, want_result, started, timer))

    def _task_done(
        self, seq: int, want_result: bool, started: float, timer: asyncio.TimerHandle, task: asyncio.Task[Any]
    ) -> None:
        timer.cancel()
        self.running -= 1
        if task.cancelled():
            error = TimeoutError(f"handler ran past worker_timeout ({self.timeout} s) and was cancelled")
            self.fail(seq, FAILED_TIMEOUT, error, want_result, started)
        else:
            exc = task.exception()
            if exc is None:
                self.succeed(seq, task.result(), want_result, started)
            else:
                self.fail(seq, FAILED_ERROR, exc, want_result, started)
        while self.waiting and self.running < self.concurrency:
            self.run(self.waiting.popleft())
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    # -- outcomes --------------------------------------------------------------------------

    def succeed(self, seq: int, result: Any, want_result: bool, started: float | None) -> None:
        """Report success; ``started`` is None when the duration was already counted."""
        if started is not None:
            self.durations.append(time.perf_counter() - started)
        if want_result:
            try:
                encoded = msgspec.Raw(_result_encoder.encode(result))
            except (TypeError, ValueError, OverflowError) as exc:
                self.fail(seq, FAILED_RESULT, exc, want_result, None)
                return
            self.results.append([seq, encoded])
        else:
            self.done.append(seq)

    def fail(self, seq: int, kind: str, exc: BaseException, want_result: bool, started: float | None) -> None:
        if started is not None:
            self.durations.append(time.perf_counter() - started)
        pickled = None
        if want_result:
            try:
                pickled = pickle.dumps(exc)
                pickle.loads(pickled)
            except Exception:
                pickled = None
        text = "".join(traceback.format_exception(exc))
        self.failures.append([seq, kind, type(exc).__qualname__, str(exc), text, pickled])

    def flush(self) -> None:
        """Report every outcome gathered since the last flush in one frame."""
        self.flush_scheduled = False
        self._count_durations()
        if self.done or self.results or self.failures:
            self.writer.send([transport.REPORT, self.done, self.results, self.failures, None, None])
            self.done = []
            self.results = []
            self.failures = []
        self._maybe_finish()

    def heartbeat(self) -> None:
        """Prove the loop is alive, and ship the latency histogram delta and memory use."""
        self._count_durations()
        wire = self.histogram.to_wire() if self.histogram.count else None
        self.histogram.reset()
        self.writer.send([transport.REPORT, self.done, self.results, self.failures, wire, _rss_bytes()])
        self.done = []
        self.results = []
        self.failures = []
        self.loop.call_later(self.heartbeat_interval, self.heartbeat)

    def _count_durations(self) -> None:
        if self.durations:
            _settler.record(self.histogram, self.durations)
            self.durations = []

    def _maybe_finish(self) -> None:
        if self.retiring and not self.running and not self.waiting and not self.finished.done():
            self.finished.set_result(None)

    # -- broadcast -------------------------------------------------------------------------

    def _send_broadcast(self, token: int, topic: str, payload: bytes) -> None:
        self.writer.send([transport.BROADCAST, token, topic, payload])

    async def _apply(self, token: int, topic: str, payload: bytes) -> None:
        await self.context.apply(topic, payload)
        self.writer.send([transport.APPLIED, token])


def _rss_bytes() -> int:
    """Resident memory of this process (Linux /proc, one read, no psutil import on the hot path)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


async def serve(read_fd: int, write_fd: int) -> None:
    """Run one worker until it retires or the supervisor goes away."""
    loop = asyncio.get_running_loop()
    settings: asyncio.Future[dict[str, Any]] = loop.create_future()
    worker: Worker | None = None
    early: list[list[Any]] = []  # frames that arrive while setup runs (e.g. RETIRE)

    def on_frame(frame: list[Any]) -> None:
        if worker is not None:
            worker.on_frame(frame)
        elif frame[0] == transport.INIT and not settings.done():
            settings.set_result(frame[1])
        else:
            early.append(frame)

    def on_closed() -> None:
        if worker is not None:
            worker.on_closed()
        elif not settings.done():
            settings.set_exception(ConnectionError("the supervisor closed the pipe before INIT"))

    await transport.open_reader(read_fd, on_frame, on_closed)
    writer = await transport.open_writer(write_fd)
    received = await settings
    candidate = Worker(received, writer)
    try:
        await candidate.start(received)
    except BaseException:
        writer.send([transport.STARTUP_FAILED, traceback.format_exc()])
        await writer.aclose()
        raise SystemExit(3) from None
    worker = candidate
    # Everything loaded so far (interpreter, handler module, clients opened by setup) lives
    # as long as the process: keep it out of the collector's full passes.
    gc.freeze()
    writer.send([transport.READY, os.getpid()])
    for frame in early:
        worker.on_frame(frame)
    loop.call_later(worker.heartbeat_interval, worker.heartbeat)
    await worker.finished
    if worker.retiring:
        worker.flush()
        if worker.teardown is not None:
            outcome = worker.teardown()
            if inspect.isawaitable(outcome):
                await outcome
        await writer.aclose()


def main(argv: list[str]) -> None:
    """Entry point of ``python -m sluiceway.engine.worker READ_FD WRITE_FD``."""
    # Ctrl-C reaches the whole process group; the supervisor decides how workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    read_fd, write_fd = int(argv[0]), int(argv[1])
    try:
        import uvloop

        uvloop.run(serve(read_fd, write_fd))
    except ImportError:  # uvloop does not exist on Windows
        asyncio.run(serve(read_fd, write_fd))


if __name__ == "__main__":
    main(sys.argv[1:])
