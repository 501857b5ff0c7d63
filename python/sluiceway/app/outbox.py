"""The bot runtime's durable reply outbox: the journal's ``outbox`` between the handlers and the BatchSender.

A reply a handler produced is committed to the journal (``pending``) before the sender gets
it; the sender's ledger tells this outbox (as its :class:`~sluiceway.whatsapp.ledger.SendJournal`)
when the reply goes on the wire (``sending``, committed before the request is written), when
WhatsApp took it (``sent``, with its wamid) and when it failed (moved to the journal's sender
dead letters). A status webhook for the wamid finishes the row.

After a crash the next start sends every ``pending`` reply once, and re-sends those that were
``sending``: the request may or may not have reached WhatsApp, and no answer (so no wamid)
came back to tell. Those re-sends are counted (``uncertain_resends``, in ``stats()`` and on
``/metrics``); the recipient may see such a reply twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Protocol

import msgspec

from sluiceway import fault_points
from sluiceway.app.context import Outgoing
from sluiceway.journal import AsyncJournal, OutboxItem, SenderDeadLetter
from sluiceway.whatsapp.messages import OutboundMessage

logger = logging.getLogger("sluiceway.app")

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Outgoing).decode


class Sender(Protocol):
    """The part of the BatchSender the outbox hands replies to."""

    def enqueue_nowait(
        self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None
    ) -> str: ...


class DurableOutbox:
    """Commits each reply to the journal, then hands it to the sender; records its sending.

    ``open`` it on the journal before the first ``put``: the bot runtime does so as soon as the
    engine has opened its journal (in the first ``on_recovered`` call, or after ``start``).

    Example::

        outbox = DurableOutbox()
        sender = BatchSender(transport, config, journal=outbox)
        outbox.attach(sender)
        await engine.start()
        outbox.open(engine.journal)
    """

    def __init__(self) -> None:
        self._journal: AsyncJournal | None = None
        self._sender: Sender | None = None
        #: The journal's outbox ids of the replies the sender holds, by the sender's message id
        #: (several when a re-run handler's reply had the idempotency key of one already held).
        self._rows: dict[str, list[int]] = {}
        self.replies = 0
        self._committing = 0
        self._all_committed = asyncio.Event()
        self._all_committed.set()
        self.resent = 0
        self.uncertain_resends = 0
        #: Resolves once what the last run left unsent is with the sender (and counted).
        self.recovered: asyncio.Future[None] | None = None

    def attach(self, sender: Sender) -> None:
        """The sender replies go to (made with ``journal=`` this outbox)."""
        self._sender = sender

    @property
    def opened(self) -> bool:
        return self._journal is not None

    def open(self, journal: AsyncJournal) -> asyncio.Future[None]:
        """Start committing to ``journal``; resolves once what the last run left unsent is with the sender.

        The journal answers in submission order, so those replies reach the sender before any
        ``put`` after this call, and a ``put`` may come at once.
        """
        if self._journal is not None:
            raise RuntimeError("this outbox is already open")
        self._journal = journal
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        journal.outbox_unsent().add_done_callback(functools.partial(self._resend, opened))
        self.recovered = opened
        return opened

    def _resend(self, opened: asyncio.Future[None], unsent: asyncio.Future[list[OutboxItem]]) -> None:
        if unsent.cancelled() or unsent.exception() is not None:
            logger.error("journal: unsent replies not read (%s); they stay for the next start", unsent)
            opened.set_result(None)
            return
        for item in unsent.result():
            self.resent += 1
            if item.state == "sending":
                self.uncertain_resends += 1
            self._to_sender(item.id, _decode(item.body))
        opened.set_result(None)
        if self.uncertain_resends:
            logger.warning(
                "%d replies were on the wire when the last run ended: sent again (the recipient may see them twice)",
                self.uncertain_resends,
            )

    def put(self, reply: Outgoing, inbound_wamid: str | None) -> None:
        """Commit ``reply`` (to ``inbound_wamid``), then give it to the sender; replies keep their order."""
        journal = self._journal
        if journal is None:
            raise RuntimeError("open() the outbox before putting replies in it")
        self.replies += 1
        # The journal resolves its futures in submission order, so these callbacks run in the
        # order of the puts: per recipient the sender gets replies in the handlers' order.
        committed = journal.outbox_add(reply.message.to, _encode(reply), inbound_wamid)
        self._committing += 1
        self._all_committed.clear()
        committed.add_done_callback(functools.partial(self._committed, reply))

    def _committed(self, reply: Outgoing, committed: asyncio.Future[int]) -> None:
        self._committing -= 1
        if not self._committing:
            self._all_committed.set()
        if committed.cancelled() or committed.exception() is not None:
            # Not durable, but the reply exists: send it anyway rather than drop it.
            logger.error("reply to %s not journaled (%s): sending it unrecorded", reply.message.to, committed)
            self._to_sender(None, reply)
            return
        self._to_sender(committed.result(), reply)

    def _to_sender(self, row: int | None, reply: Outgoing) -> None:
        assert self._sender is not None, "attach() the sender first"
        try:
            message_id = self._sender.enqueue_nowait(reply.message, reply.priority, reply.idempotency_key)
        except Exception:
            logger.exception("the sender refused a reply to %s", reply.message.to)
            return
        if row is not None:
            self._rows.setdefault(message_id, []).append(row)

    async def wait_committed(self, timeout: float | None = None) -> None:
        """Return once every reply ``put`` so far is committed and with the sender."""
        await asyncio.wait_for(self._all_committed.wait(), timeout)

    def status(self, wamid: str) -> None:
        """A status webhook for ``wamid`` arrived: its reply is finished."""
        if self._journal is not None:
            self._background(self._journal.outbox_status(wamid), "status")

    # -- SendJournal: the sender's ledger reports here --------------------------------------

    def sending(self, message_ids: list[str]) -> asyncio.Future[None]:
        """Mark the replies ``sending``; resolves once committed (a journal failure is logged, not raised)."""
        journal = self._journal
        rows = [row for i in message_ids for row in self._rows.get(i, ())]
        if journal is None or not rows:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        # Operations commit in order: the last one's commit covers them all.
        futures = [journal.outbox_sending(row) for row in rows]
        for future in futures[:-1]:
            self._background(future, "sending")
        last = asyncio.get_running_loop().create_future()
        futures[-1].add_done_callback(functools.partial(self._sending_committed, last))
        return last

    @staticmethod
    def _sending_committed(last: asyncio.Future[None], op: asyncio.Future[None]) -> None:
        if not op.cancelled() and op.exception() is not None:
            logger.error("journal: reply not marked sending (%s); sending it anyway", op.exception())
        if not last.done():
            last.set_result(None)

    def sent(self, message_ids: list[str], wamid: str) -> None:
        fault_points.reached("before_mark_sent")
        journal = self._journal
        for message_id in message_ids:
            for row in self._rows.pop(message_id, ()):
                if journal is not None:
                    self._background(journal.outbox_sent(row, wamid), "sent")

    def uncertain(self, message_ids: list[str]) -> None:
        # Never answered, so no wamid: the live sender does not send it again, and neither
        # should a restart. A wamid no status can carry marks it sent.
        journal = self._journal
        for message_id in message_ids:
            for row in self._rows.pop(message_id, ()):
                if journal is not None:
                    self._background(journal.outbox_sent(row, f"unanswered:{row}"), "uncertain")

    def failed(self, message_id: str, code: int | None, text: str, attempts: int) -> None:
        reason = "rejected" if code is None else f"error {code}"
        for row in self._rows.pop(message_id, ()):
            if self._journal is not None:
                self._background(self._journal.outbox_fail(row, reason, text, attempts), "failed send")

    # -- dead letters ----------------------------------------------------------------------

    async def dead_letters(self) -> list[SenderDeadLetter]:
        """Replies the sender gave up on (this run and earlier ones), oldest first."""
        return [] if self._journal is None else await self._journal.sender_dead_letters()

    async def replay_dead_letters(self) -> int:
        """Send every failed reply again (back to the outbox as pending); how many."""
        if self._journal is None:
            return 0
        items: list[OutboxItem] = await self._journal.replay_sender_dead_letters()
        for item in items:
            self._to_sender(item.id, _decode(item.body))
        return len(items)

    async def purge_dead_letters(self) -> int:
        """Forget every failed reply; how many."""
        return 0 if self._journal is None else await self._journal.purge_sender_dead_letters()

    def stats(self) -> dict[str, Any]:
        """Counters for ``/metrics``: replies journaled, re-sent after a restart, and of those the uncertain ones."""
        return {
            "replies": self.replies,
            "resent_after_restart": self.resent,
            "uncertain_resends": self.uncertain_resends,
            "held_by_sender": len(self._rows),
        }

    def _background(self, future: asyncio.Future[Any], what: str) -> None:
        future.add_done_callback(functools.partial(_report, what))


def _report(what: str, future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("journal: reply %s not recorded: %s", what, future.exception())
