"""The engine's durable side: what the ledger records in ``sluiceway.journal`` and reads back on restart.

An accept is committed before it is reported (the caller awaits it; concurrent accepts
share a transaction, the journal's writer groups whatever is queued). Everything after
that (dispatch per DISPATCH frame, completions per REPORT frame, retries, dead letters)
is queued without awaiting: the journal applies operations in submission order, so a
completion can never overtake the insert it completes, and the supervisor loop never
waits on the disk. A failure of such a background operation is logged: the message's
row then stays behind and it runs again after a restart (delivery is at-least-once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sluiceway._core import PayloadBatch
from sluiceway.journal import AsyncJournal, Journal, JournalStats, Recovery, seq_runs
from sluiceway.journal import DeadLetter as JournalDeadLetter

_log = logging.getLogger("sluiceway.engine")


class EngineJournal:
    """One engine's journal: open in ``start()``, closed at the end of ``shutdown()``."""

    def __init__(self, journal: Journal, aio: AsyncJournal) -> None:
        self._journal = journal
        self.aio = aio
        #: Journal ids of dead letters, by seq (for a purge of chosen ones).
        self.dead_letter_ids: dict[int, int] = {}
        #: Dead-letter operations not yet committed, by seq.
        self._dead_letter_pending: dict[int, asyncio.Future[int]] = {}
        #: The last figures read (refreshed each statistics interval).
        self.stats: JournalStats | None = None

    @classmethod
    async def open(
        cls,
        path: str,
        sync: str,
        dedup_window: float,
        dedup_max_entries: int,
        clock: Callable[[], float] = time.time,
    ) -> tuple[EngineJournal, Recovery, list[JournalDeadLetter]]:
        """Open the journal and read what the last run left: unfinished messages and dead letters.

        ``JournalLocked`` (naming the holder's pid) or ``JournalError`` (path and reason) if
        it cannot be used; nothing is changed then.
        """
        journal = Journal.open(
            path,
            sync="full" if sync == "full" else "normal",
            clock=clock,
            dedup_window=dedup_window,
            dedup_max_entries=dedup_max_entries,
        )
        try:
            aio = journal.aio
            recovery, letters = await asyncio.gather(aio.recover(), aio.dead_letters())
        except BaseException:
            journal.close()
            raise
        engine_journal = cls(journal, aio)
        engine_journal.dead_letter_ids = {letter.seq: letter.id for letter in letters}
        return engine_journal, recovery, letters

    @property
    def path(self) -> str:
        return self._journal.path

    # -- what a caller awaits ------------------------------------------------------------------

    def insert(self, seq: int, payload: bytes, level: int, wall: float, key: str | None) -> asyncio.Future[None]:
        return self.aio.insert_payloads(seq, [payload], level, wall, key)

    def insert_batch(
        self, batch: PayloadBatch, start: int, end: int, first: int, level: int, wall: float, key: str | None
    ) -> asyncio.Future[None]:
        return self.aio.insert_batch(batch, start, end, first, level, wall, key)

    def accept_once(
        self, dedup_key: str, seq: int, payload: bytes, level: int, wall: float, key: str | None
    ) -> asyncio.Future[bool]:
        """The message and its dedup record in one transaction; resolves to True for a duplicate."""
        return self.aio.accept_webhook(dedup_key, seq, payload, level, wall, key)

    def replay_dead_letters(self, first_seq: int) -> asyncio.Future[list[Any]]:
        return self.aio.replay_dead_letters(None, first_seq)

    # -- queued without waiting ------------------------------------------------------------------

    def dispatched(self, runs: list[tuple[int, int]]) -> asyncio.Future[int]:
        """Record a hand-over; the caller sends the frames once it resolves (failed or not)."""
        future = self.aio.dispatch(runs)
        self._background(future, "dispatch")
        return future

    def completed(self, seqs: Sequence[int]) -> None:
        self._background(self.aio.complete(seq_runs(seqs)), "completion")

    def retry(self, seq: int, attempt: int, not_before: float) -> None:
        """``seq`` waits (attempt ``attempt``) until wall time ``not_before`` (0.0: due now)."""
        self._background(self.aio.retry([(seq, attempt, not_before)]), "retry")

    def dead_letter(self, seq: int, reason: str, error: str, traceback: str) -> None:
        future = self.aio.dead_letter(seq, reason, error, traceback)
        self._dead_letter_pending[seq] = future
        future.add_done_callback(lambda done: self._dead_lettered(seq, done))

    def _dead_lettered(self, seq: int, future: asyncio.Future[int]) -> None:
        self._dead_letter_pending.pop(seq, None)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            _log.error("journal %s: could not record dead letter of seq %d: %s", self.path, seq, error)
        else:
            self.dead_letter_ids[seq] = future.result()

    def purge_dead_letters(self, seqs: Sequence[int] | None) -> None:
        """Forget the dead letters of ``seqs`` (None: all of them)."""
        if seqs is None:
            self.dead_letter_ids.clear()
            self._background(self.aio.purge_dead_letters(None), "purge")
            return
        known = [self.dead_letter_ids.pop(seq) for seq in seqs if seq in self.dead_letter_ids]
        if known:
            self._background(self.aio.purge_dead_letters(known), "purge")
        for seq in seqs:
            pending = self._dead_letter_pending.get(seq)
            if pending is not None:  # its id is known once it commits: purge it then
                pending.add_done_callback(functools.partial(self._purge_later, seq))

    def _purge_later(self, seq: int, _: asyncio.Future[int]) -> None:
        self.purge_dead_letters([seq])

    def refresh_stats(self) -> None:
        future = self.aio.stats()
        future.add_done_callback(self._stats_read)

    def _stats_read(self, future: asyncio.Future[JournalStats]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.stats = future.result()

    def _background(self, future: asyncio.Future[Any], what: str) -> None:
        future.add_done_callback(lambda done: self._report(done, what))

    def _report(self, future: asyncio.Future[Any], what: str) -> None:
        if not future.cancelled() and future.exception() is not None:
            _log.error("journal %s: %s not recorded: %s", self.path, what, future.exception())

    async def close(self) -> None:
        """Commit what is queued, then release the file."""
        await self.aio.aclose()
        self._journal.close()

    def synchronous(self) -> asyncio.Future[str]:
        return self.aio.synchronous()
