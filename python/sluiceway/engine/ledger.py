"""The ledger: every message accepted and not yet finished, and the engine's totals.

Every accepted message is held by exactly one of: the priority queue, its ordering key's
parking line, a retry timer, the crash-suspect line, or one worker's ``held`` table, until
it completes or is dead-lettered. Accepting, completing, retrying, dead-lettering and
re-queueing all pass through this object, which keeps the counts that follow from that
(unfinished, in flight, queued) and the idle flag ``wait_for_completion`` waits on. It is
the one place a durable store would hook in: what it accepts must be recorded, what it
finishes may be recorded in batches, and what a store hands back on restart is re-queued.

The queue and the ``held`` tables are Rust (``EntryQueue``, ``InFlight``): a batch goes
from accept to DISPATCH frame to settled ack with no Python object per message.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from sluiceway._core import Entry, EntryQueue, PayloadBatch


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
        #: The last seq given out: every message accepted so far.
        self.last_seq = 0
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

    def dead_letter(self, entry: Entry) -> None:
        """``entry``'s delivery failed (it is held nowhere now) and it is given up on."""
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
        if delay is None:
            self.requeue(entry, alone)
        else:
            timer = asyncio.get_running_loop().call_later(delay, self._retry_due, entry, alone)
            self._retry_timers[entry.seq] = (timer, entry)

    def _retry_due(self, entry: Entry, alone: bool) -> None:
        self._retry_timers.pop(entry.seq, None)
        self.requeue(entry, alone)
        self.wake()

    def requeue(self, entry: Entry, alone: bool = False) -> None:
        """Put an entry that is held nowhere back in line (``alone``: to re-run by itself on a worker)."""
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
