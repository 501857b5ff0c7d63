"""Dispatch and settlement: the ledger's queue into workers' ``held`` tables, and their REPORT frames back out.

Both are per batch, not per message: ``EntryQueue.dispatch`` moves a frame's worth of
entries into a worker's table and encodes the DISPATCH frame in Rust, ``InFlight.settle``
pops a REPORT's plain acks and counts their latencies in Rust, because this one process
serves every worker and its per-message cost caps the engine's rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sluiceway._core import Entry
from sluiceway.engine.accepting import Intake
from sluiceway.engine.ledger import Ledger
from sluiceway.engine.pool import WorkerPool
from sluiceway.engine.retries import Failures
from sluiceway.engine.worker_handle import READY, WorkerHandle
from sluiceway.histogram import LatencyHistogram


class Dispatcher:
    """Hands queued messages to ready workers and settles what they report."""

    def __init__(
        self, ledger: Ledger, pool: WorkerPool, intake: Intake, failures: Failures, clock: Callable[[], float]
    ) -> None:
        self._ledger = ledger
        self._pool = pool
        self._intake = intake
        self._failures = failures
        self._clock = clock
        self._scheduled = False
        #: Set in ``start``.
        self.loop: asyncio.AbstractEventLoop | None = None

    def soon(self) -> None:
        """Dispatch once the current burst of accepts and settlements is over (one pass for many)."""
        if not self._scheduled and self.loop is not None:
            self._scheduled = True
            self.loop.call_soon(self.dispatch)

    def dispatch(self) -> None:
        """Give each ready worker up to its free credit of messages, highest priority first.

        Credit goes out in frames of half a worker's prefetch at most, so that a worker
        has the next frame in its pipe while it runs one: it never idles for the round
        trip of its report. While the queue is long, a frame carries at least a quarter
        of the prefetch: topping a busy worker up a few messages at a time would cost a
        frame (two system calls each side) per few messages.
        """
        self._scheduled = False
        ledger = self._ledger
        if ledger.exclusive and self._dispatch_exclusive():
            self._intake.relieve()
            return
        queue = ledger.queue
        suspects = ledger.suspects
        # With a journal, the seq runs handed over are recorded (attempt + 1, dispatched)
        # and the frames go out once that is committed (see ``_send_when_recorded``).
        runs: list[tuple[int, int]] | None = [] if ledger.journal is not None else None
        frames: list[tuple[WorkerHandle, bytes]] = []
        for worker in self._pool.workers:
            if worker.state != READY or worker.isolating:
                continue
            held = worker.held
            if suspects and not held:
                worker.isolating = True
                ledger.in_flight += 1
                suspect = suspects.popleft()
                if runs is not None:
                    runs.append((suspect.seq, suspect.seq))
                frames.append((worker, held.hold(suspect)))
                continue
            prefetch = worker.prefetch
            credit = prefetch.limit - len(held)
            while credit > 0 and queue:
                if credit < prefetch.least_frame <= len(queue):
                    break  # it still holds plenty: top it up in a fuller frame later
                before = len(held)
                frame = queue.dispatch(held, min(credit, prefetch.frame_size), runs)
                assert frame is not None
                frames.append((worker, frame))
                sent = len(held) - before
                ledger.in_flight += sent
                credit -= sent
        if runs:
            self._send_when_recorded(runs, frames)
        else:
            for worker, frame in frames:
                worker.send_encoded(frame)
        self._intake.relieve()

    def _send_when_recorded(self, runs: list[tuple[int, int]], frames: list[tuple[WorkerHandle, bytes]]) -> None:
        """Send ``frames`` once the journal has committed their hand-over.

        A handler may kill the whole process: only a committed hand-over makes its message
        a crash suspect after the restart (run alone, its starts counted), so it never runs
        unrecorded. The loop does not wait for the commit; frames go out in commit order,
        which keeps each worker's frames in order.
        """
        recorded = self._ledger.record_dispatched(runs)

        def send(_: object) -> None:
            for worker, frame in frames:
                worker.send_encoded(frame)  # a worker that exited meanwhile ignores it

        recorded.add_done_callback(send)

    def _dispatch_exclusive(self) -> bool:
        """After a restart, the journal's crash suspects run one at a time on the whole pool
        (nothing else runs beside them); False once they are through."""
        ledger = self._ledger
        workers = self._pool.workers
        if any(worker.held for worker in workers):
            return True
        if not ledger.suspects:
            ledger.exclusive = False
            return False
        for worker in workers:
            if worker.state == READY:
                worker.isolating = True
                ledger.in_flight += 1
                suspect = ledger.suspects.popleft()
                self._send_when_recorded([(suspect.seq, suspect.seq)], [(worker, worker.held.hold(suspect))])
                break
        return True

    def settle_report(self, worker: WorkerHandle, frame: list[Any]) -> None:
        """A worker's REPORT: complete its acks, fail its failures, note its handler latencies and memory."""
        _, done, results, failures, histogram_wire, rss = frame
        ledger = self._ledger
        held = worker.held
        now = self._clock()
        # Completions are counted here, at settlement, once each: these latencies are what
        # the hooks' LatencyDelta events carry, so their counts match ``completed`` exactly.
        settled_latency = worker.settled_latency
        if ledger.journal is not None and done:
            ledger.record_completed(done)
        settled, keys = held.settle(done, now, settled_latency)
        for key in keys:
            ledger.release_key(key)
        pop = held.pop
        settled_entries: list[Entry] = []
        for seq, result in results:
            entry = pop(seq)
            if entry is None:
                continue
            settled_entries.append(entry)
            if entry.future is not None and not entry.future.done():
                entry.future.set_result(result)
            if entry.key is not None:
                ledger.release_key(entry.key)
        if ledger.journal is not None and results:
            # After the result futures' callbacks (call_soon is FIFO): a caller that journals what
            # the result produced (the bot runtime's reply outbox) queues that write before this
            # completion, so no crash can leave the message finished and its result unrecorded.
            assert self.loop is not None  # set by start(), before any worker reports
            self.loop.call_soon(ledger.record_completed, [seq for seq, _ in results])
        if settled_entries:
            settled_latency.record_many([now - entry.enqueued for entry in settled_entries])
            settled += len(settled_entries)
        worker.prefetch.completed(settled + len(failures), now)
        if settled:
            worker.completed += settled
            ledger.completed_in_flight(settled)
        for seq, reason, error_type, text, traceback_text, pickled in failures:
            entry = held.pop(seq)
            if entry is None:
                continue
            worker.failed_attempts += 1
            ledger.returned([entry])
            self._failures.failed(entry, reason, f"{error_type}: {text}", traceback_text, pickled)
        if worker.isolating and not held:
            worker.isolating = False
        if histogram_wire is not None:
            worker.handler_latency.merge(LatencyHistogram.from_wire(histogram_wire))
        if rss is not None:
            worker.rss_bytes = rss
        if worker.state == READY:
            self._pool.recycle_if_due(worker)
        if ledger.queue or ledger.suspects or ledger.exclusive or self._intake.backpressure:
            self.dispatch()  # with backpressure on, re-checks the low-water mark
