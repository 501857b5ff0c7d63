"""The bot runtime's durable reply outbox: the journal's ``outbox`` between the handlers and the BatchSender.

The store is an :class:`OutboxStore`: the SQLite journal, or with ``redis_url`` Redis
(:mod:`sluiceway.app.redis_outbox`), which also keeps the sender's dead letters.

A reply a handler produced is committed to the journal (``pending``) before the sender gets
it; the sender's ledger tells this outbox (as its :class:`~sluiceway.whatsapp.ledger.SendJournal`)
when the reply goes on the wire (``sending``, committed before the request is written), when
WhatsApp took it (``sent``, with its wamid) and when it failed (moved to the journal's sender
dead letters). A status webhook for the wamid finishes the row.

After a crash the next start sends every ``pending`` reply once, and re-sends those that were
``sending``: the request may or may not have reached WhatsApp, and no answer (so no wamid)
came back to tell. Those re-sends are counted (``uncertain_resends``, in ``stats()`` and on
``/metrics``); the recipient may see such a reply twice.

The 24-hour window is checked as each reply goes to the sender (:mod:`sluiceway.app.windows`):
a free-form reply to a user known to be outside it is replaced by the configured fallback template, or,
without one, moved to the sender dead letters with the reason; a 131047 from the API (the window
closed while the reply waited) takes the same path. Several business numbers: each reply goes to
the sender of its ``phone_number_id`` (``attach(sender, number)``), and each sender reports
through ``journal_for(number)``, which also remembers which number sent each wamid, so that
status webhooks reach the right sender (``number_of``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import msgspec

from sluiceway import fault_points
from sluiceway.app.context import Outgoing
from sluiceway.app.windows import ConversationWindows
from sluiceway.journal import OutboxItem, SenderDeadLetter
from sluiceway.whatsapp.messages import OutboundMessage

#: Outcomes (``outcome(key)``) and wamid→number entries kept; the oldest are forgotten first.
MAX_REMEMBERED = 100_000
#: Graph's "more than 24 hours since the user last replied" error.
OUTSIDE_WINDOW_CODE = 131047

logger = logging.getLogger("sluiceway.app")

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Outgoing).decode


class Sender(Protocol):
    """The part of the BatchSender the outbox hands replies to."""

    def enqueue_nowait(
        self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None
    ) -> str: ...


class OutboxStore(Protocol):
    """Where the outbox is kept: the journal (:class:`~sluiceway.journal.AsyncJournal`) or Redis
    (:class:`~sluiceway.app.redis_outbox.RedisOutboxStore`). Futures resolve in submission order."""

    def outbox_add(
        self, recipient: str, body: bytes, inbound_wamid: str | None = None, inbound_seq: int | None = None
    ) -> asyncio.Future[int]: ...

    def outbox_sending(self, id: int) -> asyncio.Future[None]: ...

    def outbox_sent(self, id: int, wamid: str) -> asyncio.Future[None]: ...

    def outbox_status(self, wamid: str) -> asyncio.Future[bool]: ...

    def outbox_unsent(self) -> asyncio.Future[list[OutboxItem]]: ...

    def outbox_fail(self, id: int, reason: str, error: str = "", attempts: int = 0) -> asyncio.Future[int]: ...

    def sender_dead_letters(self, limit: int | None = None) -> asyncio.Future[list[SenderDeadLetter]]: ...

    def replay_sender_dead_letters(self, ids: Sequence[int] | None = None) -> asyncio.Future[list[OutboxItem]]: ...

    def purge_sender_dead_letters(self, ids: Sequence[int] | None = None) -> asyncio.Future[int]: ...


class ReplyOutcome(msgspec.Struct, frozen=True):
    """What became of a reply (``Runtime.reply_outcome(handle.key)``): ``queued``, ``sent`` (with its
    ``wamid``) or ``failed`` (with the ``error``); ``replaced_by`` names a fallback template sent instead."""

    state: Literal["queued", "sent", "failed"]
    wamid: str = ""
    error: str = ""
    replaced_by: str = ""


class _NumberJournal:
    """One number's sender reports through this: to the outbox, remembering which number sent each wamid."""

    def __init__(self, outbox: DurableOutbox, number: str) -> None:
        self._outbox, self._number = outbox, number

    def sending(self, message_ids: list[str]) -> asyncio.Future[None]:
        return self._outbox.sending(message_ids)

    def sent(self, message_ids: list[str], wamid: str) -> None:
        self._outbox.remember_number(wamid, self._number)
        self._outbox.sent(message_ids, wamid)

    def uncertain(self, message_ids: list[str]) -> None:
        self._outbox.uncertain(message_ids)

    def failed(self, message_id: str, code: int | None, text: str, attempts: int) -> None:
        self._outbox.failed(message_id, code, text, attempts)


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

    def __init__(
        self,
        *,
        windows: ConversationWindows | None = None,
        fallback_template: tuple[str, str] | None = None,
        on_reply_latency: Callable[[float], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        #: Called with each reply's seconds from its webhook's arrival to WhatsApp taking it (the latency
        #: tenants feel); replies re-sent after a restart have no arrival time and are not reported.
        self._on_reply_latency = on_reply_latency
        self._wall_clock = wall_clock
        self._received_at: dict[str, float] = {}
        self._journal: OutboxStore | None = None
        #: Set by ``closing()`` once nothing more may be written (the runtime is stopping).
        self._closing = False
        #: The sender of each business number; the first attached also sends for "".
        self._senders: dict[str, Sender] = {}
        self._default_number = ""
        #: The 24-hour windows checked before a free-form reply goes out (None: not checked).
        self.windows = windows
        #: ``(name, language)`` of the template sent instead of a free-form reply outside the window.
        self.fallback_template = fallback_template
        #: The replies the senders hold, by the sender's message id (for the window's second chance).
        self._held: dict[str, Outgoing] = {}
        self._keys: dict[str, str] = {}
        self._outcomes: collections.OrderedDict[str, ReplyOutcome] = collections.OrderedDict()
        self._numbers: collections.OrderedDict[str, str] = collections.OrderedDict()
        #: The last wamids whose status finished their reply (see ``status``).
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.window_fallbacks = 0
        self.window_dead_letters = 0
        #: Replies dead-lettered here, never given to a sender (outside the window, unknown number).
        self.refused = 0
        #: The journal's outbox ids of the replies the sender holds, by the sender's message id
        #: (several when a re-run handler's reply had the idempotency key of one already held).
        self._rows: dict[str, list[int]] = {}
        self.replies = 0
        self._committing = 0
        self._all_committed = asyncio.Event()
        self._all_committed.set()
        self.resent = 0
        #: Of ``resent``: the replies taken over from dead nodes (Redis mode).
        self.adopted = 0
        self._replays = 0
        self.uncertain_resends = 0
        #: Resolves once what the last run left unsent is with the sender (and counted).
        self.recovered: asyncio.Future[None] | None = None

    def attach(self, sender: Sender, phone_number_id: str = "") -> None:
        """The sender of ``phone_number_id``'s replies (made with ``journal=`` this outbox, or ``journal_for``).

        The first one attached also sends the replies that name no number.
        """
        if not self._senders:
            self._default_number = phone_number_id
        self._senders[phone_number_id] = sender

    def journal_for(self, phone_number_id: str) -> _NumberJournal:
        """What ``phone_number_id``'s sender reports to (as its ``journal=``)."""
        return _NumberJournal(self, phone_number_id)

    def remember_number(self, wamid: str, phone_number_id: str) -> None:
        _remember(self._numbers, wamid, phone_number_id)

    def number_of(self, wamid: str) -> str | None:
        """The business number that sent ``wamid`` (None if not known: sent before a restart, or long ago)."""
        return self._numbers.get(wamid)

    def outcome(self, key: str) -> ReplyOutcome | None:
        """What became of the reply with idempotency ``key`` (a ``SendHandle.key``); None if not known (yet)."""
        return self._outcomes.get(key)

    @property
    def opened(self) -> bool:
        return self._journal is not None

    def open(self, journal: OutboxStore) -> asyncio.Future[None]:
        """Start committing to ``journal`` (or a Redis store); resolves once what the last run left unsent is
        with the sender.

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
        self.take_over(unsent.result())
        opened.set_result(None)

    def take_over(self, items: list[OutboxItem], *, adopted: bool = False) -> None:
        """Hand unsent replies of an earlier run (or, ``adopted``, of a dead node) to the senders, in order.

        Each is sent once; one that was ``sending`` (on the wire, no answer came back) is sent again
        and counted in ``uncertain_resends``: the recipient may see it twice.
        """
        uncertain = 0
        for item in items:
            self.resent += 1
            self.adopted += adopted
            if item.state == "sending":
                uncertain += 1
            self._to_sender(item.id, _decode(item.body))
        self.uncertain_resends += uncertain
        if uncertain:
            whose = "a dead node's" if adopted else "the last run's"
            logger.warning(
                "%d of %s replies were on the wire when it ended: sent again (the recipient may see them twice)",
                uncertain,
                whose,
            )

    def put(self, reply: Outgoing, inbound_wamid: str | None, received_at: float | None = None) -> None:
        """Commit ``reply`` (to ``inbound_wamid``, which arrived at wall-clock ``received_at``), then give it
        to the sender; replies keep their order."""
        journal = self._journal
        if journal is None:
            raise RuntimeError("open() the outbox before putting replies in it")
        self.replies += 1
        # The journal resolves its futures in submission order, so these callbacks run in the
        # order of the puts: per recipient the sender gets replies in the handlers' order.
        committed = journal.outbox_add(reply.message.to, _encode(reply), inbound_wamid)
        self._committing += 1
        self._all_committed.clear()
        committed.add_done_callback(functools.partial(self._committed, reply, received_at))

    def _committed(self, reply: Outgoing, received_at: float | None, committed: asyncio.Future[int]) -> None:
        self._committing -= 1
        if not self._committing:
            self._all_committed.set()
        if committed.cancelled() or committed.exception() is not None:
            # Not durable, but the reply exists: send it anyway rather than drop it.
            logger.error("reply to %s not journaled (%s): sending it unrecorded", reply.message.to, committed)
            self._to_sender(None, reply, received_at)
            return
        self._to_sender(committed.result(), reply, received_at)

    def _to_sender(self, row: int | None, reply: Outgoing, received_at: float | None = None) -> None:
        assert self._senders, "attach() the sender first"
        # One sender sends everything (today's single-number bot); with several, each reply leaves
        # from the number its message came to, and one for a number without a sender is refused.
        number = reply.phone_number_id or self._default_number
        sender = self._senders.get(number) if len(self._senders) > 1 else self._senders[self._default_number]
        if sender is None:
            self._dead_letter(
                row,
                reply,
                "unknown number",
                f"no sender for business number {number!r}: add it to whatsapp_phone_number_ids",
            )
            return
        outcome = self._outcomes.get(reply.idempotency_key)
        if outcome is not None and outcome.state == "failed":
            # A replayed dead letter: its sender remembers the key (idempotency_window) and would drop it.
            self._replays += 1
            reply = msgspec.structs.replace(reply, idempotency_key=f"{reply.idempotency_key}~replay{self._replays}")
        windows = self.windows
        if (
            windows is not None
            and reply.message.type != "template"
            and windows.is_closed(number or windows.default_number, reply.message.to, reply.window_opened_at)
        ):
            fallback = self._fallback(reply)
            if fallback is None:
                self.window_dead_letters += 1
                self._dead_letter(
                    row,
                    reply,
                    "outside the 24-hour window",
                    f"{reply.message.to} last wrote to {number or 'the number'} over 24 hours ago: a free-form "
                    "message cannot be sent; set window_fallback_template to send a template instead",
                )
                return
            self.window_fallbacks += 1
            reply = fallback
        try:
            message_id = sender.enqueue_nowait(reply.message, reply.priority, reply.idempotency_key)
        except Exception:
            logger.exception("the sender refused a reply to %s", reply.message.to)
            return
        self._held[message_id] = reply
        self._keys[message_id] = reply.idempotency_key
        if reply.idempotency_key not in self._outcomes:
            _remember(self._outcomes, reply.idempotency_key, ReplyOutcome("queued", replaced_by=_template_name(reply)))
        if row is not None:
            self._rows.setdefault(message_id, []).append(row)
        if received_at is not None and self._on_reply_latency is not None:
            self._received_at.setdefault(message_id, received_at)

    def _fallback(self, reply: Outgoing) -> Outgoing | None:
        """The fallback template in ``reply``'s place (same recipient, number, key), or None without one."""
        if self.fallback_template is None:
            return None
        name, language = self.fallback_template
        message = OutboundMessage.of_template(reply.message.to, name, language)
        return msgspec.structs.replace(reply, message=message)

    def _dead_letter(self, row: int | None, reply: Outgoing, reason: str, text: str) -> None:
        logger.warning("reply to %s not sent: %s", reply.message.to, reason)
        self.refused += 1
        _remember(self._outcomes, reply.idempotency_key, ReplyOutcome("failed", error=f"{reason}: {text}"))
        if row is not None and self._journal is not None:
            self._background(self._journal.outbox_fail(row, reason, text, 0), "failed send")

    async def wait_committed(self, timeout: float | None = None) -> None:
        """Return once every reply ``put`` so far is committed and with the sender."""
        await asyncio.wait_for(self._all_committed.wait(), timeout)

    def status(self, wamid: str) -> None:
        """A status webhook for ``wamid`` arrived: its reply is finished.

        Only the first status of a wamid is recorded: the later ones (Meta posts ``sent``, then
        ``delivered``, then ``read``) would find nothing left to finish, and each would cost a
        journal (or Redis) operation on the supervisor's busiest path.
        """
        if self._journal is None or self._closing or wamid in self._finished:
            return
        _remember(self._finished, wamid, None)
        self._background(self._journal.outbox_status(wamid), "status")

    def closing(self) -> None:
        """The senders are closed and the journal is about to close: statuses are no longer recorded.

        Harmless: a reply WhatsApp took is ``sent`` already and is never sent again; its row only
        waits for a later status (or the expiry) to be cleared.
        """
        self._closing = True

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
            self._settled(message_id, "sent", wamid=wamid)
            received_at = self._received_at.pop(message_id, None)
            if received_at is not None and self._on_reply_latency is not None:
                self._on_reply_latency(max(0.0, self._wall_clock() - received_at))
            for row in self._rows.pop(message_id, ()):
                if journal is not None:
                    self._background(journal.outbox_sent(row, wamid), "sent")

    def uncertain(self, message_ids: list[str]) -> None:
        # Never answered, so no wamid: the live sender does not send it again, and neither
        # should a restart. A wamid no status can carry marks it sent.
        journal = self._journal
        for message_id in message_ids:
            self._settled(message_id, "sent", error="no answer from the API: it may or may not have been sent")
            self._received_at.pop(message_id, None)
            for row in self._rows.pop(message_id, ()):
                if journal is not None:
                    self._background(journal.outbox_sent(row, f"unanswered:{row}"), "uncertain")

    def failed(self, message_id: str, code: int | None, text: str, attempts: int) -> None:
        reason = "rejected" if code is None else f"error {code}"
        reply = self._settled(message_id, "failed", error=f"{reason}: {text}")
        fallback = None
        if code == OUTSIDE_WINDOW_CODE and reply is not None and reply.message.type != "template":
            # The window closed while the reply waited: the same path as one found outside at once.
            fallback = self._fallback(reply)
            if fallback is not None:
                # A key of its own: the sender already holds the failed reply's key.
                fallback = msgspec.structs.replace(fallback, idempotency_key=f"{reply.idempotency_key}~template")
            reason = "outside the 24-hour window (error 131047)"
            if fallback is None:
                self.window_dead_letters += 1
            else:
                self.window_fallbacks += 1
                text = f"{text}; template {fallback.message.template.name if fallback.message.template else ''} sent"
        self._received_at.pop(message_id, None)
        for row in self._rows.pop(message_id, ()):
            if self._journal is not None:
                self._background(self._journal.outbox_fail(row, reason, text, attempts), "failed send")
        if fallback is not None and self._journal is not None:
            self.put(fallback, None)

    def _settled(
        self, message_id: str, state: Literal["sent", "failed"], *, wamid: str = "", error: str = ""
    ) -> Outgoing | None:
        """Record a held reply's outcome under its key; the reply (None if this outbox did not hand it over)."""
        reply = self._held.pop(message_id, None)
        key = self._keys.pop(message_id, None)
        if key is not None:
            replaced = self._outcomes.get(key)
            _remember(self._outcomes, key, ReplyOutcome(state, wamid, error, replaced.replaced_by if replaced else ""))
        return reply

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
            "resent_after_restart": self.resent - self.adopted,
            "adopted_from_dead_nodes": self.adopted,
            "uncertain_resends": self.uncertain_resends,
            "held_by_sender": len(self._rows),
            "window_fallbacks": self.window_fallbacks,
            "window_dead_letters": self.window_dead_letters,
            "refused": self.refused,
        }

    def _background(self, future: asyncio.Future[Any], what: str) -> None:
        future.add_done_callback(functools.partial(_report, what))


def _remember(table: collections.OrderedDict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    table.move_to_end(key)
    if len(table) > MAX_REMEMBERED:
        table.popitem(last=False)


def _template_name(reply: Outgoing) -> str:
    template = reply.message.template
    return template.name if template is not None else ""


def _report(what: str, future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("journal: reply %s not recorded: %s", what, future.exception())
