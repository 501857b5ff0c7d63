"""The worker pool: spawning worker processes, watching them, replacing, retiring, recycling and scaling them.

A worker joins dispatch once it answers READY (``on_ready``). Any exit (retired, recycled,
crashed, killed as unresponsive) is handled by ``on_exit`` before the worker's ``exited``
future resolves; a worker that exited without being asked to is replaced.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from statistics import median
from typing import Any

from sluiceway.engine import pipe
from sluiceway.engine.config import ParallelizerConfig
from sluiceway.engine.hooks import HookSet, WorkerStarted
from sluiceway.engine.prefetch import Prefetch
from sluiceway.engine.worker_handle import EXITED, READY, RETIRING, STARTING, STARTUP_TIMEOUT, WorkerHandle

_log = logging.getLogger("sluiceway.engine")

#: Tries to start a replacement for a worker that died before giving up on that slot.
REPLACEMENT_ATTEMPTS = 3
#: How many recent worker starts the reported start time is the median of.
RECENT_STARTS = 9


class WorkerPool:
    """The worker processes: ``workers`` are those not yet exited, in start order."""

    def __init__(
        self,
        config: ParallelizerConfig,
        settings: Callable[[int], dict[str, Any]],
        on_frame: Callable[[WorkerHandle, list[Any]], None],
        on_ready: Callable[[WorkerHandle], None],
        on_exit: Callable[[WorkerHandle, str, int | None], None],
        hooks: HookSet,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._settings = settings
        self._on_frame = on_frame
        #: A worker joined dispatch.
        self._on_ready = on_ready
        #: A worker is gone (``reason``, exit code): what it held must be re-delivered.
        self._on_exit = on_exit
        self._hooks = hooks
        self._clock = clock
        self.workers: list[WorkerHandle] = []
        #: Every worker whose process has not been reaped yet (``workers`` drops them earlier).
        self._spawned: set[WorkerHandle] = set()
        self._next_index = 0
        self._start_seconds: deque[float] = deque(maxlen=RECENT_STARTS)
        self._background: set[asyncio.Task[Any]] = set()
        #: While true, exited workers are replaced and new ones announced to the hooks.
        self.running = False

    # -- starting ------------------------------------------------------------------------

    async def add_workers(self, count: int) -> None:
        """Start ``count`` workers at once; if one fails, cancel (and kill) the others and raise."""
        starts = [asyncio.ensure_future(self._add_worker()) for _ in range(count)]
        try:
            await asyncio.gather(*starts)
        except BaseException:
            for start in starts:
                start.cancel()
            await asyncio.gather(*starts, return_exceptions=True)
            raise

    async def _add_worker(self) -> WorkerHandle:
        """Start one worker and wait for READY; it joins dispatch from then on."""
        index = self._next_index
        self._next_index += 1
        spawned_at = self._clock()
        worker = WorkerHandle(index, self._on_frame, self._clock, Prefetch(self._config, spawned_at))
        self.workers.append(worker)
        self._spawned.add(worker)
        # Spawning runs to its end even if this start is cancelled, so that whatever it
        # opened (process, pipes) is known and can be closed below.
        spawn = asyncio.ensure_future(worker.spawn(self._settings(index)))
        try:
            await asyncio.shield(spawn)
            await asyncio.wait_for(asyncio.shield(worker.ready), STARTUP_TIMEOUT)
        except BaseException:
            await asyncio.gather(spawn, return_exceptions=True)
            if not worker.ready.done():
                worker.exit_reason = worker.exit_reason or "retired"  # stopped on purpose, not failed
            worker.kill()
            if worker in self.workers:
                self.workers.remove(worker)
            if worker.process is not None:
                await worker.wait_exit()
            self._spawned.discard(worker)
            worker.state = EXITED
            if not worker.exited.done():
                worker.exited.set_result(None)
            raise
        worker.last_heard = self._clock()
        worker.start_seconds = worker.last_heard - spawned_at
        self._start_seconds.append(worker.start_seconds)
        self._background_task(self._watch(worker))
        if self.running:  # the first workers are announced after on_start
            self.announce(worker)
        self._on_ready(worker)
        return worker

    def announce(self, worker: WorkerHandle) -> None:
        self._hooks.worker_started(WorkerStarted(worker.pid, worker.index, worker.start_seconds))

    def on_ready_frame(self, worker: WorkerHandle) -> None:
        if worker.state == STARTING:  # not if it was retired while starting
            worker.state = READY
        if not worker.ready.done():
            worker.ready.set_result(None)

    def start_seconds(self) -> float:
        """The median of the recent workers' spawn-to-READY times (0.0 before any)."""
        return median(self._start_seconds) if self._start_seconds else 0.0

    # -- exits ---------------------------------------------------------------------------

    async def _watch(self, worker: WorkerHandle) -> None:
        """Handle a worker's exit and, unless it was retired, replace it."""
        code = await worker.wait_exit()
        self._spawned.discard(worker)
        was_retiring = worker.state == RETIRING
        worker.state = EXITED
        if worker in self.workers:
            self.workers.remove(worker)
        reason = worker.exit_reason or "crashed"
        if reason == "crashed":
            _log.warning(
                "worker %d exited unexpectedly (code %s); re-delivering %d messages", worker.pid, code, len(worker.held)
            )
        else:
            _log.info("worker %d exited (%s, code %s)", worker.pid, reason, code)
        self._on_exit(worker, reason, code)
        if not worker.exited.done():
            worker.exited.set_result(None)
        for attempt in range(1, REPLACEMENT_ATTEMPTS + 1):
            if was_retiring or not self.running:
                break
            try:
                await self._add_worker()
                break
            except Exception:
                _log.exception(
                    "could not replace worker %d (attempt %d of %d)", worker.pid, attempt, REPLACEMENT_ATTEMPTS
                )

    def check_liveness(self) -> None:
        """Kill workers that stopped answering (a handler blocking the loop) for ``worker_timeout``."""
        now = self._clock()
        for worker in list(self.workers):
            if worker.state in (READY, RETIRING) and now - worker.last_heard > self._config.worker_timeout:
                _log.warning("worker %d silent for %.1f s: killing it", worker.pid, now - worker.last_heard)
                worker.exit_reason = "unresponsive"
                worker.kill()

    # -- retiring, recycling, scaling -----------------------------------------------------------

    def recycle_if_due(self, worker: WorkerHandle) -> None:
        """Retire ``worker`` and start a fresh one in its place once it has run or grown enough."""
        config = self._config
        if (config.max_messages_per_worker and worker.completed >= config.max_messages_per_worker) or (
            config.max_worker_rss_bytes and worker.rss_bytes > config.max_worker_rss_bytes
        ):
            worker.state = RETIRING
            self._background_task(self._recycle(worker))

    async def _recycle(self, worker: WorkerHandle) -> None:
        await asyncio.gather(self._add_worker(), self.retire(worker, "recycled"))

    async def retire(self, worker: WorkerHandle, reason: str) -> None:
        """Ask ``worker`` to finish what it holds and exit; kill it if it takes over ``worker_timeout``."""
        if worker.state == EXITED:
            return
        worker.state = RETIRING
        worker.exit_reason = worker.exit_reason or reason
        worker.send([pipe.RETIRE])
        try:
            await asyncio.wait_for(asyncio.shield(worker.exited), self._config.worker_timeout + 5.0)
        except TimeoutError:
            worker.exit_reason = "unresponsive"
            worker.kill()
            await worker.exited

    def active(self) -> list[WorkerHandle]:
        """Workers starting or ready: those that count towards the worker count."""
        return [w for w in self.workers if w.state in (STARTING, READY)]

    async def scale_to(self, n: int) -> int:
        """Start or retire workers until ``n`` are active; returns how many were active before."""
        active = self.active()
        old = len(active)
        if n > old:
            await self.add_workers(n - old)
        elif n < old:
            # Retire the least loaded so the fewest messages wait on a leaving worker.
            leaving = sorted(active, key=lambda w: len(w.held))[: old - n]
            await asyncio.gather(*(self.retire(w, "retired") for w in leaving))
        return old

    def pids(self) -> list[int]:
        """The pids of the live worker processes (starting, ready or retiring)."""
        return [w.pid for w in self.workers if w.state != EXITED and w.pid]

    def reachable(self) -> list[WorkerHandle]:
        """Workers that answer control frames (broadcasts): ready or retiring."""
        return [w for w in self.workers if w.state in (READY, RETIRING)]

    # -- stopping --------------------------------------------------------------------------

    async def retire_all(self) -> None:
        await asyncio.gather(*(self.retire(w, "retired") for w in list(self.workers)))

    async def kill_all(self) -> None:
        """Cancel the pool's tasks and kill every process not yet reaped (a start cancelled midway)."""
        self.workers.clear()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        leftover = list(self._spawned)
        for worker in leftover:
            worker.exit_reason = worker.exit_reason or "retired"
            worker.kill()
        await asyncio.gather(*(w.wait_exit() for w in leftover if w.process), return_exceptions=True)

    def _background_task(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
