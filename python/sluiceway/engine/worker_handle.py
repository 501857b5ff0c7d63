"""The supervisor's handle on one worker process: spawning it, its pipes, and what it holds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from sluiceway._core import InFlight
from sluiceway.engine import pipe
from sluiceway.engine.errors import WorkerStartupError
from sluiceway.engine.prefetch import Prefetch
from sluiceway.histogram import LatencyHistogram

#: Seconds a new worker may take to import its handler and answer READY (a loaded machine
#: can take several seconds to start an interpreter).
STARTUP_TIMEOUT = 120.0

# Worker states, in the order a worker goes through them.
STARTING = "starting"
READY = "ready"
RETIRING = "retiring"
EXITED = "exited"


class WorkerHandle:
    """One worker: its process, its frame writer, and the messages dispatched to it and not yet settled."""

    def __init__(
        self,
        index: int,
        on_frame: Callable[[WorkerHandle, list[Any]], None],
        clock: Callable[[], float],
        prefetch: Prefetch,
    ) -> None:
        self.index = index
        self.pid = 0
        self.state = STARTING
        #: Why the worker is leaving, once that is decided ("retired", "recycled", "unresponsive").
        self.exit_reason: str | None = None
        #: What was dispatched to it and not yet settled.
        self.held = InFlight()
        self.prefetch = prefetch
        #: Running a message suspected of crashing workers, alone: no other dispatch until it settles.
        self.isolating = False
        self.completed = 0
        self.failed_attempts = 0
        self.rss_bytes = 0
        #: The worker's own handler durations (shipped in its heartbeats).
        self.handler_latency = LatencyHistogram()
        #: Enqueue-to-done latencies of the messages the supervisor settled as completed for
        #: it, not yet handed to the hooks in a ``LatencyDelta``.
        self.settled_latency = LatencyHistogram()
        #: Seconds from spawn to READY (0.0 until it is ready).
        self.start_seconds = 0.0
        self.last_heard = clock()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: Resolves once the supervisor has handled the exit (messages re-delivered).
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.process: asyncio.subprocess.Process | None = None
        self.writer: pipe.FrameWriter | None = None
        self._pipe_closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unsent: list[Any] = []
        #: Fails ``ready`` if the process dies before READY (kept so the task is not collected mid-run).
        self._start_watch: asyncio.Future[None] | None = None
        self._on_frame = on_frame
        self._clock = clock

    async def spawn(self, settings: dict[str, Any]) -> None:
        """Start the process and send INIT; ``ready`` resolves on READY (or fails on STARTUP_FAILED)."""
        to_worker_read, to_worker_write = pipe.make_pipe()
        from_worker_read, from_worker_write = pipe.make_pipe()
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sluiceway.engine.worker",
                str(to_worker_read),
                str(from_worker_write),
                pass_fds=(to_worker_read, from_worker_write),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            for fd in (to_worker_read, to_worker_write, from_worker_read, from_worker_write):
                os.close(fd)
            raise
        finally:
            if self.process is not None:
                os.close(to_worker_read)
                os.close(from_worker_write)
        self.pid = self.process.pid
        self._start_watch = asyncio.ensure_future(self._fail_start_on_exit(self.process))
        try:
            await pipe.open_reader(from_worker_read, self._frame, self._closed)
        except BaseException:
            os.close(to_worker_write)
            self._closed()  # nothing will ever be read: wait_exit must not wait for it
            raise
        self.writer = await pipe.open_writer(to_worker_write)
        self.writer.send([pipe.INIT, settings])
        for frame in self._unsent:
            self.writer.send(frame)
        self._unsent.clear()

    async def _fail_start_on_exit(self, process: asyncio.subprocess.Process) -> None:
        """A worker that dies before READY (killed, crashed in import) fails its start at once."""
        code = await process.wait()
        await self._pipe_closed  # a STARTUP_FAILED frame it sent first says more: let it land
        if self.ready.done():
            return
        if self.exit_reason == "retired":
            self.ready.cancel()  # stopped on purpose (another worker failed to start): no error to report
        else:
            error = WorkerStartupError(f"worker {self.pid} exited with code {code} before it was ready")
            self.ready.set_exception(error)

    def _frame(self, frame: list[Any]) -> None:
        self.last_heard = self._clock()
        self._on_frame(self, frame)

    def _closed(self) -> None:
        if not self._pipe_closed.done():
            self._pipe_closed.set_result(None)

    async def wait_exit(self) -> int | None:
        """Wait until the process has exited and every frame it wrote has been handled."""
        assert self.process is not None
        code = await self.process.wait()
        await self._pipe_closed
        if self.writer is not None:
            self.writer.close()
        return code

    def send(self, frame: Any) -> None:
        """Send ``frame``; before the pipe exists (still spawning) it is sent right after INIT."""
        if self.writer is not None:
            self.writer.send(frame)
        else:
            self._unsent.append(frame)

    def send_encoded(self, frame: bytes) -> None:
        """Send a frame encoded elsewhere (``EntryQueue.dispatch``); only once the worker is ready."""
        assert self.writer is not None
        self.writer.send_encoded(frame)

    def kill(self) -> None:
        """SIGKILL the process (its messages are re-delivered when its exit is handled)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                self.process.send_signal(signal.SIGKILL)
