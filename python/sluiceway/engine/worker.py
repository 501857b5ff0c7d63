"""One worker process: a uvloop event loop running the user's handler on batches of messages.

The supervisor starts it as ``python -m sluiceway.engine.worker READ_FD WRITE_FD`` (a fresh
interpreter, as multiprocessing's ``spawn`` context does) and sends an INIT frame. The worker
imports the handler, runs the setup hook, answers READY, then runs DISPATCH batches: every
handler call runs inside its own asyncio Task (so ``asyncio.current_task()``,
``asyncio.timeout``, aiohttp timeouts and anyio cancel scopes work in handlers), up to
``worker_concurrency`` at once, each cancelled after ``worker_timeout``. Outcomes are
acknowledged in one REPORT frame per batch (per loop turn for handlers that await); a
heartbeat REPORT carries the latency histogram delta once per interval.
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
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from sluiceway.engine import context, handler
from sluiceway.engine import pipe as transport
from sluiceway.engine.message import Message, Priority
from sluiceway.histogram import LatencyHistogram

_PRIORITIES = tuple(Priority)
_result_encoder = msgspec.msgpack.Encoder()

# Failure kinds carried in REPORT frames.
#: The handler raised.
FAILED_ERROR = "error"
#: The handler ran past ``worker_timeout`` and was cancelled.
FAILED_TIMEOUT = "timeout"
#: ``submit``'s handler returned something msgpack cannot encode.
FAILED_RESULT = "unencodable result"

# The one place the Python version matters.
if sys.version_info >= (3, 12):

    def start_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` in a new Task at once, up to its first suspension (eager start).

        A handler that finishes without awaiting is done when this returns, so it is
        reported with its DISPATCH batch and costs no extra loop turn.
        """
        return asyncio.Task(coro, loop=loop, eager_start=True)

else:

    def start_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` in a new Task from the loop's next turn (no eager start before 3.12)."""
        return loop.create_task(coro)


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
        self.teardown: Callable[[], Any] | None = None
        #: DISPATCH items not started yet: every slot was taken.
        self.waiting: deque[list[Any]] = deque()
        #: Handler tasks started and not finished.
        self.running = 0
        #: ``worker_timeout`` timers of the handlers that awaited, by seq.
        self.timers: dict[int, asyncio.TimerHandle] = {}
        self.done: list[int] = []
        self.results: list[list[Any]] = []
        self.failures: list[list[Any]] = []
        #: True while a flush is due before control returns to the loop (``receive``,
        #: ``_end_turn``) or an ``_end_turn`` call is scheduled: finishing handlers then
        #: need not schedule another.
        self.flush_scheduled = False
        self.retiring = False
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.histogram = LatencyHistogram()
        self.context = context.RemoteWorkerContext(settings["index"], self._send_broadcast)

    async def start(self, settings: dict[str, Any]) -> None:
        """Import the handler and run the setup hook (an exception here fails the start)."""
        for entry in reversed(settings["sys_path"]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        context.install(self.context)
        target = handler.load(settings["handler"])
        if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(target).__call__):
            self.handler = target
        else:
            self.loop.set_default_executor(ThreadPoolExecutor(self.concurrency, "sluiceway-handler"))
            self.handler = _sync_adapter(target)
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
        """Start a DISPATCH batch's handlers into the free slots; the rest wait for one."""
        self.waiting.extend(items)
        self.flush_scheduled = True
        self._start_waiting()
        self.flush()

    def _start_waiting(self) -> None:
        """Start waiting messages, each in its own Task, while slots are free."""
        loop, waiting = self.loop, self.waiting
        deadline = loop.time() + self.timeout
        started: list[tuple[int, asyncio.Task[None]]] = []
        while waiting and self.running < self.concurrency:
            seq, attempt, priority, enqueued_at, key, want_result, payload = waiting.popleft()[:7]
            message = Message(f"{self.engine_id}-{seq}", payload, _PRIORITIES[priority], attempt, enqueued_at, key)
            self.running += 1
            task = start_task(loop, self._attempt(seq, want_result, message))
            if not task.done():
                started.append((seq, task))
        if started:
            # After the tasks' first steps (FIFO: they were scheduled first), so a handler
            # that finishes without awaiting never costs a timer.
            loop.call_soon(self._arm_timeouts, started, deadline)

    def _arm_timeouts(self, started: list[tuple[int, asyncio.Task[None]]], deadline: float) -> None:
        for seq, task in started:
            if not task.done():
                self.timers[seq] = self.loop.call_at(deadline, task.cancel)

    async def _attempt(self, seq: int, want_result: bool, message: Message) -> None:
        """One handler call, inside its own Task; its outcome goes to the next REPORT."""
        started = time.perf_counter()
        try:
            outcome = self.handler(message)
            if inspect.iscoroutine(outcome):  # else a plain callable returned a value
                outcome = await outcome
        except asyncio.CancelledError:
            error = TimeoutError(f"handler ran past worker_timeout ({self.timeout} s) and was cancelled")
            self.fail(seq, FAILED_TIMEOUT, error, want_result)
        except Exception as exc:
            self.fail(seq, FAILED_ERROR, exc, want_result)
        else:
            self.succeed(seq, outcome, want_result)
        finally:
            self.histogram.record(time.perf_counter() - started)
            timer = self.timers.pop(seq, None)
            if timer is not None:
                timer.cancel()
            self.running -= 1
            if not self.flush_scheduled:
                self.flush_scheduled = True
                self.loop.call_soon(self._end_turn)

    def _end_turn(self) -> None:
        """Once per loop turn in which handlers finished: fill the freed slots, report the outcomes."""
        self._start_waiting()
        self.flush()

    # -- outcomes --------------------------------------------------------------------------

    def succeed(self, seq: int, result: Any, want_result: bool) -> None:
        if want_result:
            try:
                encoded = msgspec.Raw(_result_encoder.encode(result))
            except (TypeError, ValueError, OverflowError) as exc:
                self.fail(seq, FAILED_RESULT, exc, want_result)
                return
            self.results.append([seq, encoded])
        else:
            self.done.append(seq)

    def fail(self, seq: int, kind: str, exc: BaseException, want_result: bool) -> None:
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
        if self.done or self.results or self.failures:
            self.writer.send([transport.REPORT, self.done, self.results, self.failures, None, None])
            self.done = []
            self.results = []
            self.failures = []
        self._maybe_finish()

    def heartbeat(self) -> None:
        """Prove the loop is alive, and ship the latency histogram delta and memory use."""
        wire = self.histogram.to_wire() if self.histogram.count else None
        self.histogram.reset()
        self.writer.send([transport.REPORT, self.done, self.results, self.failures, wire, _rss_bytes()])
        self.done = []
        self.results = []
        self.failures = []
        self.loop.call_later(self.heartbeat_interval, self.heartbeat)

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
