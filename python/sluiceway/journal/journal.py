"""`Journal`: the durable journal's blocking face, for tooling and start-up.

Each method waits (with the GIL released) until its operation is committed and returns
its result. The engine uses `Journal.aio`, whose methods return awaitables instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from sluiceway._core import Journal as _CoreJournal
from sluiceway._core import PayloadBatch
from sluiceway.journal import _convert
from sluiceway.journal.aio import AsyncJournal
from sluiceway.journal.records import (
    DeadLetter,
    JournaledMessage,
    JournalStats,
    OutboxItem,
    Recovery,
    SenderDeadLetter,
)

SyncLevel = Literal["full", "normal"]

#: A week: a wamid WhatsApp re-delivers later than this is accepted again.
DEFAULT_DEDUP_WINDOW = 7 * 86400.0
DEFAULT_DEDUP_MAX_ENTRIES = 1_000_000
#: Rows `expire()` deletes per transaction, so expiry never holds the writer long.
EXPIRE_BATCH = 10_000


class Journal:
    """One node's durable journal (one SQLite file); see `sluiceway.journal`.

    Open it with `Journal.open`; close it (or use ``with``) to release the file.
    """

    def __init__(self, core: _CoreJournal, clock: Callable[[], float]) -> None:
        self._core = core
        self._clock = clock
        self._aio: AsyncJournal | None = None

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        sync: SyncLevel = "full",
        clock: Callable[[], float] = time.time,
        dedup_window: float = DEFAULT_DEDUP_WINDOW,
        dedup_max_entries: int = DEFAULT_DEDUP_MAX_ENTRIES,
        max_batch_ops: int = 4096,
        max_wait: float = 0.0,
        idle_interval: float = 1.0,
    ) -> Journal:
        """Open (creating it and its directory if needed) the journal at ``path``.

        Args:
            sync: "full" (a commit survives power loss) or "normal" (it survives a
                process crash; the last commits before a power loss may be lost).
            clock: wall-clock seconds, stamped on dead letters, wamids and replies.
            dedup_window: seconds a webhook's wamid is remembered.
            dedup_max_entries: most wamids remembered; the oldest are forgotten first.
            max_batch_ops: most operations committed in one transaction.
            max_wait: seconds the writer waits for more operations after the first
                before committing (0: commit at once; operations queued meanwhile
                share the next commit anyway).
            idle_interval: seconds idle before the WAL is truncated and free pages returned.

        Raises:
            JournalLocked: another process (or Journal) has it open; names the pid.
            JournalError: the file is unreadable, not a journal, corrupt or from a newer
                sluiceway, or its directory cannot be created. It is never modified.
            ValueError: an option out of range.
        """
        core = _CoreJournal(
            str(path),
            sync=sync,
            dedup_window=dedup_window,
            dedup_max_entries=dedup_max_entries,
            max_batch_ops=max_batch_ops,
            max_wait=max_wait,
            idle_interval=idle_interval,
        )
        return cls(core, clock)

    @property
    def path(self) -> str:
        return self._core.path

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def aio(self) -> AsyncJournal:
        """The awaitable face, bound to the running event loop (made on first use there)."""
        if self._aio is None or self._aio.closed:
            self._aio = AsyncJournal(self._core, self._clock)
        return self._aio

    def close(self) -> None:
        """Commit what is queued (resolving `aio` futures of it) and release the file. Idempotent."""
        self._core.close()
        if self._aio is not None:
            self._aio.detach()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- accepted messages ---------------------------------------------------------------

    def insert_batch(
        self,
        batch: PayloadBatch,
        start: int,
        stop: int,
        first_seq: int,
        priority: int,
        enqueued_at: float,
        ordering_key: str | None = None,
    ) -> None:
        """Journal ``batch[start:stop]`` as messages ``first_seq, first_seq + 1, ...``.

        ``ValueError`` if ``first_seq`` is below `Recovery.next_seq` (seqs must rise).
        """
        c = self._core
        c.wait(c.insert_batch(batch, start, stop, first_seq, priority, enqueued_at, ordering_key, True))

    def insert_payloads(
        self,
        first_seq: int,
        payloads: Sequence[bytes],
        priority: int,
        enqueued_at: float,
        ordering_key: str | None = None,
    ) -> None:
        """Journal ``payloads`` as messages ``first_seq, first_seq + 1, ...``."""
        c = self._core
        c.wait(c.insert_payloads(first_seq, list(payloads), priority, enqueued_at, ordering_key, True))

    def dispatch(self, runs: Sequence[tuple[int, int]]) -> int:
        """Messages in the inclusive seq runs went to a worker: attempt + 1, dispatched. Rows changed."""
        c = self._core
        result: int = c.wait(c.dispatch(list(runs), True))
        return result

    def complete(self, runs: Sequence[tuple[int, int]]) -> int:
        """The messages in the runs are finished: deleted. Rows deleted."""
        c = self._core
        result: int = c.wait(c.complete(list(runs), True))
        return result

    def requeue(self, runs: Sequence[tuple[int, int]]) -> int:
        """The messages are back in the queue (attempt kept). Rows changed."""
        c = self._core
        result: int = c.wait(c.requeue(list(runs), True))
        return result

    def retry(self, items: Sequence[tuple[int, int, float]]) -> int:
        """``(seq, attempt, not_before)``: each waits for a retry at wall time ``not_before``. Rows changed."""
        c = self._core
        result: int = c.wait(c.retry(list(items), True))
        return result

    def recover(self) -> Recovery:
        """Every unfinished message in seq order, and where new seqs start."""
        c = self._core
        return _convert.recovery(c.wait(c.recover(True)))

    # -- dead letters ----------------------------------------------------------------------

    def dead_letter(self, seq: int, reason: str, error: str = "", traceback: str = "") -> int:
        """Move message ``seq`` to the dead letters; its id. ``ValueError`` for an unknown seq."""
        c = self._core
        result: int = c.wait(c.dead_letter(seq, reason, error, traceback, self._clock(), True))
        return result

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters, oldest first."""
        c = self._core
        return _convert.dead_letters(c.wait(c.dead_letters(limit, True)))

    def replay_dead_letters(
        self, ids: Sequence[int] | None = None, first_seq: int | None = None
    ) -> list[JournaledMessage]:
        """Move dead letters (all, or ``ids``) back to the messages, attempt 0, in one transaction.

        They get new seqs from ``first_seq`` (default: `Recovery.next_seq`); returns the
        new messages. ``ValueError`` for an unknown id (then nothing moves).
        """
        c = self._core
        chosen = None if ids is None else list(ids)
        return _convert.messages(c.wait(c.replay_dead_letters(chosen, first_seq, True)))

    def purge_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Delete dead letters (all, or ``ids``); how many."""
        c = self._core
        result: int = c.wait(c.purge_dead_letters(None if ids is None else list(ids), True))
        return result

    # -- webhooks ----------------------------------------------------------------------------

    def accept_webhook(
        self,
        wamid: str,
        seq: int,
        payload: bytes,
        priority: int,
        enqueued_at: float | None = None,
        ordering_key: str | None = None,
    ) -> bool:
        """Journal the message and its wamid in one transaction, unless the wamid was seen.

        Returns True for a duplicate (then nothing was inserted), False if accepted.
        """
        c = self._core
        now = self._clock()
        at = now if enqueued_at is None else enqueued_at
        duplicate: bool = c.wait(c.accept_webhook(wamid, seq, priority, at, ordering_key, payload, now, True))
        return duplicate

    def expire(self) -> int:
        """Forget wamids (and sent replies) older than the dedup window; how many rows went."""
        total = 0
        while True:
            c = self._core
            n: int = c.wait(c.expire(self._clock(), EXPIRE_BATCH, True))
            total += n
            if n < EXPIRE_BATCH:
                return total

    # -- outbox ------------------------------------------------------------------------------

    def outbox_add(
        self, recipient: str, body: bytes, inbound_wamid: str | None = None, inbound_seq: int | None = None
    ) -> int:
        """Record a reply to send; its id."""
        c = self._core
        result: int = c.wait(c.outbox_add(recipient, body, inbound_wamid, inbound_seq, self._clock(), True))
        return result

    def outbox_sending(self, id: int) -> None:
        """The reply goes on the wire now (a reply already "sending" counts as an uncertain re-send)."""
        c = self._core
        c.wait(c.outbox_sending(id, self._clock(), True))

    def outbox_sent(self, id: int, wamid: str) -> None:
        """WhatsApp accepted the reply as ``wamid``; it waits for its status webhook."""
        c = self._core
        c.wait(c.outbox_sent(id, wamid, self._clock(), True))

    def outbox_status(self, wamid: str) -> bool:
        """A status webhook for ``wamid`` arrived: the reply is finished. False if none matched."""
        c = self._core
        found: bool = c.wait(c.outbox_status(wamid, True))
        return found

    def outbox_unsent(self) -> list[OutboxItem]:
        """Replies still "pending" or "sending" (uncertain), oldest first."""
        c = self._core
        return _convert.outbox(c.wait(c.outbox_unsent(True)))

    def outbox_fail(self, id: int, reason: str, error: str = "", attempts: int = 0) -> int:
        """Move a reply to the sender's dead letters; its dead-letter id."""
        c = self._core
        result: int = c.wait(c.outbox_fail(id, reason, error, attempts, self._clock(), True))
        return result

    def sender_dead_letters(self, limit: int | None = None) -> list[SenderDeadLetter]:
        c = self._core
        return _convert.sender_dead_letters(c.wait(c.sender_dead_letters(limit, True)))

    def replay_sender_dead_letters(self, ids: Sequence[int] | None = None) -> list[OutboxItem]:
        """Move sender dead letters (all, or ``ids``) back to the outbox as pending; the new replies."""
        c = self._core
        chosen = None if ids is None else list(ids)
        return _convert.outbox(c.wait(c.replay_sender_dead_letters(self._clock(), chosen, True)))

    def purge_sender_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        c = self._core
        result: int = c.wait(c.purge_sender_dead_letters(None if ids is None else list(ids), True))
        return result

    # -- state -------------------------------------------------------------------------------

    def stats(self) -> JournalStats:
        c = self._core
        return _convert.stats(c.wait(c.stats(True)))

    def synchronous(self) -> str:
        """What SQLite reports for ``PRAGMA synchronous``: "full" or "normal"."""
        c = self._core
        level: str = c.wait(c.synchronous(True))
        return level
