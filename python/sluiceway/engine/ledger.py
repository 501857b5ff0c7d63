"""The ledger: every message accepted and not yet finished, and the engine's totals.

Every accepted message is held by exactly one of: the priority queue, its ordering key's
parking line, a retry timer, the crash-suspect line, or one worker's ``held`` table, until
it completes or is dead-lettered. Accepting, completing, retrying, dead-lettering and
re-queueing all pass through this object, which keeps the counts that follow from that
(unfinished, in flight, queued) and the idle flag ``wait_for_completion`` waits on. It is
the one place the journal hooks in (``journal``, see ``journaling.py``): a journaled accept
is staged only once committed, what finishes is recorded in batches, and what the journal
hands back on restart is re-queued (``recover``).

The queue and the ``held`` tables are Rust (``EntryQueue``, ``InFlight``): a batch goes
from accept to DISPATCH frame to settled ack with no Python object per message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sluiceway import fault_points
from sluiceway._core import Entry, EntryQueue, PayloadBatch
from sluiceway.engine.errors import DuplicateMessage
from sluiceway.engine.journaling import EngineJournal
from sluiceway.journal import JournaledMessage

_log = logging.getLogger("sluiceway.engine")


def _not_wired() -> None:
    raise RuntimeError("Ledger.wake is not set: the engine wires it to its dispatcher")


class Ledger:
    """What is accepted and not finished, and the totals since start."""

    def __init__(self, levels: int) -> None:
        self.queue = EntryQueue(levels)
        #: Messages that were in a worker's hands when it crashed: each re-runs alone once.
        self.suspects: deque[Entry] = deque()
        #: Per ordering key with a message queued or in flight: the messages parked behind it.
        self._keys: dict[str, deque[Entry]] = {}
        #: Messages waiting out a retry backoff, by seq.
        self._retry_timers: dict[int, tuple[asyncio.TimerHandle, Entry]] = {}
        #: Schedules a dispatch pass soon (once per burst); the engine sets it to its dispatcher's.
        #: Called when something became dispatchable: accepted, unparked, or due for a retry.
        self.wake: Callable[[], None] = _not_wired
        #: The last seq given out (seqs go on from the journal's across restarts).
        self.last_seq = 0
        #: ``last_seq`` when this run started, less what a restart re-queued: ``accepted`` counts from it.
        self._seq_base = 0
        self.completed = 0
        self.failed_attempts = 0
        self.retried = 0
        self.dead_lettered = 0
        #: Accepted and not yet completed or dead-lettered.
        self.unfinished = 0
        #: In some worker's ``held`` table.
        self.in_flight = 0
        #: Set while nothing is unfinished.
        self.idle = asyncio.Event()
        self.idle.set()
        #: The durable record, or None (in memory only).
        self.journal: EngineJournal | None = None
        #: Journaled accepts not yet committed (counted as unfinished, staged once committed).
        self.committing: set[asyncio.Future[Any]] = set()
        #: After a restart, while the journal's crash suspects are re-run: one message at a
        #: time on the whole pool, so the one that killed the process cannot take others with it.
        self.exclusive = False

    @property
    def accepted(self) -> int:
        """Messages accepted since start (a restart's re-queued ones included)."""
        return self.last_seq - self._seq_base

    @property
    def queued(self) -> int:
        """Accepted and not in a worker's hands (queued, parked, suspect or awaiting a retry)."""
        return self.unfinished - self.in_flight

    # -- accepting ---------------------------------------------------------------------------

    def accept(self, level: int, wall: float, now: float, payload: bytes, key: str | None, future: object) -> int:
        """Accept one encoded message; returns its seq."""
        seq = self.last_seq = self.last_seq + 1
        if key is None:
            self.queue.accept(seq, level, wall, future, payload, now)
        else:
            self._stage_keyed(Entry(seq, level, wall, key, future, payload, now))
        # Inline rather than a shared helper: this is the per-message path of ``enqueue_message``.
        if self.unfinished == 0:
            self.idle.clear()
        self.unfinished += 1
        self.wake()
        return seq

    def accept_batch(
        self, batch: PayloadBatch, start: int, end: int, level: int, wall: float, now: float, key: str | None
    ) -> int:
        """Accept ``batch[start:end]`` as consecutive seqs; returns the first seq."""
        first = self.last_seq + 1
        count = end - start
        if not count:
            return first
        self.last_seq += count
        if key is None:
            self.queue.accept_batch(batch, start, end, first, level, wall, now)
        else:
            for entry in Entry.batch(batch, start, end, first, level, wall, key, now):
                self._stage_keyed(entry)
        if self.unfinished == 0:
            self.idle.clear()
        self.unfinished += count
        self.wake()
        return first

    def accept_delivered(
        self, level: int, wall: float, now: float, payload: bytes, key: str | None, future: object, attempt: int
    ) -> int:
        """Stage a message a broker delivered (it was accepted in Redis, perhaps by another node;
        ``attempt`` starts it were already given); returns its local seq."""
        seq = self.last_seq = self.last_seq + 1
        self._pending(1)
        self._stage(Entry(seq, level, wall, key, future, payload, now, attempt))
        return seq

    # -- accepting through the journal -------------------------------------------------------

    def accept_journaled(
        self,
        level: int,
        wall: float,
        now: float,
        payload: bytes,
        key: str | None,
        future: asyncio.Future[Any] | None,
        dedup_key: str | None,
    ) -> tuple[int, asyncio.Future[Any]]:
        """Journal one message; it is staged once committed. Returns its seq and the commit:
        it resolves (to None, or with ``dedup_key`` to True for a duplicate: nothing
        accepted) after the message is staged, or fails with ``JournalError`` (nothing accepted)."""
        journal = self.journal
        assert journal is not None
        seq = self.last_seq = self.last_seq + 1
        self._pending(1)
        if dedup_key is None:
            op: asyncio.Future[Any] = journal.insert(seq, payload, level, wall, key)
        else:
            op = journal.accept_once(dedup_key, seq, payload, level, wall, key)
        self.committing.add(op)

        def on_commit(done: asyncio.Future[Any]) -> None:
            self.committing.discard(done)
            if not done.cancelled() and done.exception() is None and done.result() is not True:
                self._stage(Entry(seq, level, wall, key, future, payload, now))
                fault_points.reached("after_commit")
                return
            self._unpending(1)
            if future is not None and not future.done():
                if done.cancelled():
                    future.cancel()
                else:
                    future.set_exception(
                        done.exception() or DuplicateMessage(f"dedup_key {dedup_key!r} was already accepted")
                    )
                    future.exception()  # retrieved: a caller may look only at the commit

        # Added before anyone can await ``op``: the message is staged before its caller resumes.
        op.add_done_callback(on_commit)
        return seq, op

    def accept_batch_journaled(
        self, batch: PayloadBatch, start: int, end: int, level: int, wall: float, now: float, key: str | None
    ) -> tuple[int, asyncio.Future[None]]:
        """Journal ``batch[start:end]``; staged once committed. Returns the first seq and the commit."""
        journal = self.journal
        assert journal is not None
        first = self.last_seq + 1
        count = end - start
        self.last_seq += count
        self._pending(count)
        op = journal.insert_batch(batch, start, end, first, level, wall, key)
        self.committing.add(op)

        def on_commit(done: asyncio.Future[None]) -> None:
            self.committing.discard(done)
            if done.cancelled() or done.exception() is not None:
                self._unpending(count)
                return
            if key is None:
                self.queue.accept_batch(batch, start, end, first, level, wall, now)
                self.wake()
            else:
                for entry in Entry.batch(batch, start, end, first, level, wall, key, now):
                    self._stage(entry)

        op.add_done_callback(on_commit)
        return first, op

    def replay(
        self,
        op: asyncio.Future[list[JournaledMessage]],
        count: int,
        now: float,
        result_of: Callable[[JournaledMessage], asyncio.Future[Any]] | None = None,
    ) -> int:
        """Dead letters the journal moves back to the messages (``op``, from seq ``last_seq + 1``);
        staged once committed (``result_of`` gives each a result future). Returns their first seq."""
        first = self.last_seq + 1
        self.last_seq += count
        self._pending(count)
        self.committing.add(op)

        def on_commit(done: asyncio.Future[list[JournaledMessage]]) -> None:
            self.committing.discard(done)
            if done.cancelled() or done.exception() is not None:
                self._unpending(count)
                _log.error("dead letters not replayed: %s", "cancelled" if done.cancelled() else done.exception())
                return
            messages = done.result()
            self.unfinished += len(messages) - count
            for m in messages:
                self.last_seq = max(self.last_seq, m.seq)
                future = None if result_of is None else result_of(m)
                self._stage(Entry(m.seq, m.priority, m.enqueued_at, m.ordering_key, future, m.payload, now))
            if self.unfinished == 0:
                self.idle.set()

        op.add_done_callback(on_commit)
        return first

    def _pending(self, count: int) -> None:
        if self.unfinished == 0 and count:
            self.idle.clear()
        self.unfinished += count

    def _unpending(self, count: int) -> None:
        self.unfinished -= count
        if self.unfinished == 0:
            self.idle.set()

    def _stage(self, entry: Entry) -> None:
        if entry.key is None:
            self.queue.push(entry)
        else:
            self._stage_keyed(entry)
        self.wake()

    # -- restart ---------------------------------------------------------------------------------

    def recover(
        self,
        recovery_messages: list[JournaledMessage],
        next_seq: int,
        now: float,
        result_of: Callable[[JournaledMessage], asyncio.Future[Any]] | None = None,
    ) -> None:
        """Re-queue what the last run left unfinished, in seq order, before any new work.

        A message with a retry pending waits out what is left of its backoff; one that was
        in a worker's hands is a crash suspect and re-runs alone (``exclusive``). Per
        ordering key the first unfinished message takes the key's turn, the rest park.
        ``result_of`` gives a recovered message a future for its handler's result.
        """
        wall_now = time.time()
        loop = asyncio.get_running_loop()
        self.last_seq = max(self.last_seq, next_seq - 1)
        self._seq_base = self.last_seq - len(recovery_messages)
        self._pending(len(recovery_messages))
        for m in recovery_messages:
            # ``enqueued`` is the monotonic clock's reading at acceptance (for latency).
            entry = Entry(
                m.seq,
                m.priority,
                m.enqueued_at,
                m.ordering_key,
                None if result_of is None else result_of(m),
                m.payload,
                now - max(0.0, wall_now - m.enqueued_at),
                m.attempt,
            )
            if m.ordering_key is not None:
                line = self._keys.get(m.ordering_key)
                if line is not None:
                    line.append(entry)
                    continue
                self._keys[m.ordering_key] = deque()
            if m.dispatched:
                self.suspects.append(entry)
                self.exclusive = True
            elif m.not_before is not None and m.not_before > wall_now:
                timer = loop.call_later(m.not_before - wall_now, self._retry_due, entry, False)
                self._retry_timers[entry.seq] = (timer, entry)
            else:
                self.queue.push(entry)
        self.wake()

    def record_dispatched(self, runs: list[tuple[int, int]]) -> asyncio.Future[int]:
        """Record a hand-over (with a journal); the future resolves once it is committed."""
        assert self.journal is not None
        return self.journal.dispatched(runs)

    def record_completed(self, seqs: list[int]) -> None:
        if self.journal is not None and seqs:
            self.journal.completed(seqs)

    def _stage_keyed(self, entry: Entry) -> None:
        """Queue ``entry`` if its key has nothing in flight or queued, else park it behind the key's line."""
        key = entry.key
        assert key is not None
        line = self._keys.get(key)
        if line is not None:
            line.append(entry)
        else:
            self._keys[key] = deque()
            self.queue.push(entry)

    def release_key(self, key: str) -> None:
        """A message with ``key`` finished (completed or dead-lettered; a retry keeps its turn): the next may go."""
        line = self._keys[key]
        if line:
            self.queue.push(line.popleft())
            self.wake()
        else:
            del self._keys[key]

    # -- finishing -----------------------------------------------------------------------------

    def completed_in_flight(self, count: int) -> None:
        """``count`` messages a worker held completed (their entries are already out of its table)."""
        self.completed += count
        self.in_flight -= count
        self.unfinished -= count
        if self.unfinished == 0:
            self.idle.set()

    def dead_letter(self, entry: Entry, reason: str, error: str, traceback: str) -> None:
        """``entry``'s delivery failed (it is held nowhere now) and it is given up on."""
        if self.journal is not None:
            self.journal.dead_letter(entry.seq, reason, error, traceback)
        self.failed_attempts += 1
        self.dead_lettered += 1
        self.unfinished -= 1
        if entry.key is not None:
            self.release_key(entry.key)
        if self.unfinished == 0:
            self.idle.set()

    # -- retrying and re-queueing --------------------------------------------------------------

    def retry(self, entry: Entry, delay: float | None, alone: bool) -> None:
        """``entry``'s delivery failed (it is held nowhere now): re-queue it after ``delay`` seconds, or now if None.

        ``alone``: it re-runs by itself on a worker (a crash suspect).
        """
        self.failed_attempts += 1
        self.retried += 1
        if self.journal is not None:
            self.journal.retry(entry.seq, entry.attempt, 0.0 if delay is None else time.time() + delay)
        if delay is None:
            self._line_up(entry, alone)
        else:
            timer = asyncio.get_running_loop().call_later(delay, self._retry_due, entry, alone)
            self._retry_timers[entry.seq] = (timer, entry)

    def _retry_due(self, entry: Entry, alone: bool) -> None:
        self._retry_timers.pop(entry.seq, None)
        self._line_up(entry, alone)
        self.wake()

    def requeue(self, entry: Entry, alone: bool = False) -> None:
        """Put an entry that is held nowhere back in line (``alone``: to re-run by itself on a worker).

        Its attempt count is recorded as it is now (a refunded attempt included).
        """
        if self.journal is not None:
            self.journal.retry(entry.seq, entry.attempt, 0.0)
        self._line_up(entry, alone)

    def _line_up(self, entry: Entry, alone: bool) -> None:
        if alone:
            self.suspects.append(entry)
        else:
            self.queue.push(entry)

    def returned(self, entries: list[Entry]) -> None:
        """``entries`` left a worker's table without settling (the caller re-queues or fails each)."""
        self.in_flight -= len(entries)

    def take_waiting(self) -> list[Entry]:
        """Remove every accepted message not held by a worker (queued, parked, suspect, awaiting retry)."""
        entries: list[Entry] = self.queue.take_all()
        entries += self.suspects
        self.suspects.clear()
        for line in self._keys.values():
            entries += line
            line.clear()
        for handle, entry in self._retry_timers.values():
            handle.cancel()
            entries.append(entry)
        self._retry_timers.clear()
        self.unfinished -= len(entries)
        return entries
