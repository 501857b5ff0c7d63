"""`AsyncJournal`: the journal's awaitable face, for the engine's event loop.

Each method queues its operation (no I/O, microseconds) and returns a future that the
loop resolves once the writer thread has committed it. The loop never blocks: it
watches the core's commit pipe with `add_reader`, and on each wake-up `drain()` hands
over the highest processed ticket and the results that have one; every pending ticket
up to it is resolved, in order. Operations are applied in submission order, so a caller
may queue e.g. an insert and a dispatch without awaiting the first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sluiceway._core import Journal as _CoreJournal
from sluiceway._core import JournalError, PayloadBatch
from sluiceway.journal import _convert
from sluiceway.journal.records import (
    DeadLetter,
    JournaledMessage,
    JournalStats,
    OutboxItem,
    Recovery,
    SenderDeadLetter,
)

T = TypeVar("T")


def _same(value: Any) -> Any:
    return value


class AsyncJournal:
    """Awaitable journal operations on the running loop; get it as `Journal.aio`."""

    def __init__(self, core: _CoreJournal, clock: Callable[[], float]) -> None:
        self._core = core
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        # (ticket, future, converter), in ticket order.
        self._waiting: deque[tuple[int, asyncio.Future[Any], Callable[[Any], Any]]] = deque()
        self._fd = core.fileno()
        self._loop.add_reader(self._fd, self._on_commit)
        self.closed = False

    def _track(self, ticket: int, convert: Callable[[Any], T] = _same) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self._loop.create_future()
        self._waiting.append((ticket, future, convert))
        return future

    def _on_commit(self) -> None:
        self._settle(final=False)

    def _settle(self, final: bool) -> None:
        """Resolve the futures of processed tickets; with ``final`` (or once the writer
        stopped), fail the rest: they will never be processed."""
        committed, results, stopped = self._core.drain()
        values = dict(results)
        waiting = self._waiting
        while waiting and waiting[0][0] <= committed:
            ticket, future, convert = waiting.popleft()
            if future.cancelled():
                continue
            value = values.get(ticket)
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                try:
                    future.set_result(convert(value))
                except Exception as error:  # a converter bug must not strand later futures
                    future.set_exception(error)
        if final or stopped:
            self.closed = True
            if not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            for _, future, _ in waiting:
                if not future.done():
                    future.set_exception(JournalError(f"journal {self._core.path} stopped before this committed"))
            waiting.clear()

    def detach(self) -> None:
        """Stop watching the core: resolve what committed, fail what never will with `JournalError`."""
        if not self.closed:
            self._settle(final=True)

    async def aclose(self) -> None:
        """Commit what is queued (resolving its futures), then release the file."""
        await self._loop.run_in_executor(None, self._core.close)
        self.detach()

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
    ) -> asyncio.Future[None]:
        return self._track(self._core.insert_batch(batch, start, stop, first_seq, priority, enqueued_at, ordering_key))

    def insert_payloads(
        self,
        first_seq: int,
        payloads: Sequence[bytes],
        priority: int,
        enqueued_at: float,
        ordering_key: str | None = None,
    ) -> asyncio.Future[None]:
        return self._track(self._core.insert_payloads(first_seq, list(payloads), priority, enqueued_at, ordering_key))

    def dispatch(self, runs: Sequence[tuple[int, int]]) -> asyncio.Future[int]:
        return self._track(self._core.dispatch(list(runs)))

    def complete(self, runs: Sequence[tuple[int, int]]) -> asyncio.Future[int]:
        return self._track(self._core.complete(list(runs)))

    def requeue(self, runs: Sequence[tuple[int, int]]) -> asyncio.Future[int]:
        return self._track(self._core.requeue(list(runs)))

    def retry(self, items: Sequence[tuple[int, int, float]]) -> asyncio.Future[int]:
        return self._track(self._core.retry(list(items)))

    def recover(self) -> asyncio.Future[Recovery]:
        return self._track(self._core.recover(), _convert.recovery)

    # -- dead letters ----------------------------------------------------------------------

    def dead_letter(self, seq: int, reason: str, error: str = "", traceback: str = "") -> asyncio.Future[int]:
        return self._track(self._core.dead_letter(seq, reason, error, traceback, self._clock()))

    def dead_letters(self, limit: int | None = None) -> asyncio.Future[list[DeadLetter]]:
        return self._track(self._core.dead_letters(limit), _convert.dead_letters)

    def replay_dead_letters(
        self, ids: Sequence[int] | None = None, first_seq: int | None = None
    ) -> asyncio.Future[list[JournaledMessage]]:
        chosen = None if ids is None else list(ids)
        return self._track(self._core.replay_dead_letters(chosen, first_seq), _convert.messages)

    def purge_dead_letters(self, ids: Sequence[int] | None = None) -> asyncio.Future[int]:
        return self._track(self._core.purge_dead_letters(None if ids is None else list(ids)))

    # -- webhooks ----------------------------------------------------------------------------

    def accept_webhook(
        self,
        wamid: str,
        seq: int,
        payload: bytes,
        priority: int,
        enqueued_at: float | None = None,
        ordering_key: str | None = None,
    ) -> asyncio.Future[bool]:
        """Resolves to True for a duplicate wamid (nothing inserted), False once accepted and committed."""
        now = self._clock()
        at = now if enqueued_at is None else enqueued_at
        return self._track(self._core.accept_webhook(wamid, seq, priority, at, ordering_key, payload, now))

    def expire(self, limit: int = 10_000) -> asyncio.Future[int]:
        """Forget at most ``limit`` old wamids and as many old sent replies; how many went."""
        return self._track(self._core.expire(self._clock(), limit))

    # -- outbox ------------------------------------------------------------------------------

    def outbox_add(
        self, recipient: str, body: bytes, inbound_wamid: str | None = None, inbound_seq: int | None = None
    ) -> asyncio.Future[int]:
        return self._track(self._core.outbox_add(recipient, body, inbound_wamid, inbound_seq, self._clock()))

    def outbox_sending(self, id: int) -> asyncio.Future[None]:
        return self._track(self._core.outbox_sending(id, self._clock()))

    def outbox_sent(self, id: int, wamid: str) -> asyncio.Future[None]:
        return self._track(self._core.outbox_sent(id, wamid, self._clock()))

    def outbox_status(self, wamid: str) -> asyncio.Future[bool]:
        return self._track(self._core.outbox_status(wamid))

    def outbox_unsent(self) -> asyncio.Future[list[OutboxItem]]:
        return self._track(self._core.outbox_unsent(), _convert.outbox)

    def outbox_fail(self, id: int, reason: str, error: str = "", attempts: int = 0) -> asyncio.Future[int]:
        return self._track(self._core.outbox_fail(id, reason, error, attempts, self._clock()))

    def sender_dead_letters(self, limit: int | None = None) -> asyncio.Future[list[SenderDeadLetter]]:
        return self._track(self._core.sender_dead_letters(limit), _convert.sender_dead_letters)

    def replay_sender_dead_letters(self, ids: Sequence[int] | None = None) -> asyncio.Future[list[OutboxItem]]:
        chosen = None if ids is None else list(ids)
        return self._track(self._core.replay_sender_dead_letters(self._clock(), chosen), _convert.outbox)

    def purge_sender_dead_letters(self, ids: Sequence[int] | None = None) -> asyncio.Future[int]:
        return self._track(self._core.purge_sender_dead_letters(None if ids is None else list(ids)))

    # -- state -------------------------------------------------------------------------------

    def stats(self) -> asyncio.Future[JournalStats]:
        return self._track(self._core.stats(), _convert.stats)

    def synchronous(self) -> asyncio.Future[str]:
        return self._track(self._core.synchronous())
