"""The sender's ledger: every accepted message from queued to its final state, and the statuses that settle it.

This is the one place a send is recorded: as queued (:meth:`SendLedger.record_queued`), as
sent with the provider's ``wamid`` (:meth:`~SendLedger.record_sent`), and as finished:
confirmed or unconfirmed (:meth:`~SendLedger.record_final`) or failed
(:meth:`~SendLedger.record_failed`), or as uncertain (:meth:`~SendLedger.record_uncertain`:
written to the API, never answered). A durable outbox (:class:`SendJournal`, e.g. the bot
runtime's journal) hears of each of these steps, plus :meth:`~SendLedger.record_sending` just
before a request goes on the wire, without the sender importing any journal.

Delivery statuses (status webhooks, or ``confirm_delivery`` by our id) are matched to
sends by ``wamid``; one that arrives before its send's HTTP answer is held until the
answer comes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

from sluiceway.whatsapp.failed_sends import FailedSendLog
from sluiceway.whatsapp.messages import OutboundMessage
from sluiceway.whatsapp.outcomes import LIVE_STATES, LeftOver, MessageState
from sluiceway.whatsapp.records import PRIORITIES, SendRecord
from sluiceway.whatsapp.webhooks import Status, WebhookPayload

#: Final outcomes remembered for ``state(message_id)`` after a message finishes (oldest forgotten first).
OUTCOME_HISTORY = 100_000
#: Status webhooks that arrive before their send's HTTP answer are held this many at most.
EARLY_STATUS_LIMIT = 10_000

_decode_webhook = msgspec.json.Decoder(WebhookPayload).decode
_decode_status = msgspec.json.Decoder(Status).decode
#: The ``stats()`` counter each final state adds to.
_COUNTER = {
    MessageState.CONFIRMED: "confirmed",
    MessageState.UNCONFIRMED: "unconfirmed",
    MessageState.DEAD_LETTERED: "failed",
}


class SendJournal(Protocol):
    """A durable record of sends, told of each step by the ``SendLedger`` (ids are the sender's).

    Each call is made for a message and each of its coalesced riders. Only ``sending`` is
    awaited (a send must be known to be on its way before it is, so that a crash leaves it
    marked uncertain rather than unsent); the others are recorded in the background.
    """

    def sending(self, message_ids: list[str]) -> Awaitable[None]:
        """These messages go on the wire now."""

    def sent(self, message_ids: list[str], wamid: str) -> None:
        """The provider took them as ``wamid``."""

    def failed(self, message_id: str, code: int | None, text: str, attempts: int) -> None:
        """The message will not be delivered (a failed send)."""

    def uncertain(self, message_ids: list[str]) -> None:
        """Written to the API, never answered: not to be sent again."""


class SendLedger:
    """Records each accepted message's progress and final outcome; ``idle`` is set while none is unfinished.

    ``confirmation_timeout`` (seconds, or ``None`` to take the provider's acceptance as
    confirmation) is how long a sent message waits for a delivery status before it is
    final as unconfirmed.
    """

    __slots__ = (
        "_by_wamid",
        "_clock",
        "_confirm_deadlines",
        "_confirmation_timeout",
        "_early",
        "_failed",
        "_finished",
        "_id_prefix",
        "_ids",
        "_journal",
        "counts",
        "idle",
        "live",
    )

    def __init__(
        self,
        failed: FailedSendLog,
        *,
        confirmation_timeout: float | None,
        clock: Callable[[], float],
        journal: SendJournal | None = None,
    ) -> None:
        self._failed = failed
        self._journal = journal
        self._confirmation_timeout = confirmation_timeout
        self._clock = clock
        #: Unfinished messages by our id.
        self.live: dict[str, SendRecord] = {}
        self._finished: dict[str, MessageState] = {}
        self._by_wamid: dict[str, SendRecord] = {}
        self._early: dict[str, Status] = {}
        self._confirm_deadlines: list[tuple[float, str]] = []
        self.idle = asyncio.Event()
        self.idle.set()
        self.counts = dict.fromkeys(("accepted", "sent", "confirmed", "failed", "unconfirmed", "uncertain_sends"), 0)
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()

    # --- recording a send's progress ---------------------------------------------------

    def record_queued(self, message: OutboundMessage, level: int, deadline: float) -> SendRecord:
        """Accept ``message`` under a new id of ours; it must be sent by ``deadline`` (sender's clock)."""
        record = SendRecord(f"{self._id_prefix}-{next(self._ids):x}", message, level, deadline)
        self.live[record.id] = record
        self.idle.clear()
        self.counts["accepted"] += 1
        return record

    async def record_sending(self, m: SendRecord) -> None:
        """``m`` (and its riders) go on the wire now: with a journal, returns once it has recorded that."""
        if self._journal is not None:
            await self._journal.sending([part.id for part in (m, *m.riders)])

    def record_sent(self, m: SendRecord, wamid: str, now: float) -> None:
        """The provider took ``m`` (and its riders) as ``wamid``: confirmed at once, or awaiting its status."""
        self.counts["sent"] += 1 + len(m.riders)
        m.wamid = wamid
        if self._journal is not None:
            self._journal.sent([part.id for part in (m, *m.riders)], wamid)
        timeout = self._confirmation_timeout
        if timeout is None:
            self.record_final(m, MessageState.CONFIRMED)
            return
        m.set_state(MessageState.AWAITING_CONFIRMATION)
        self._by_wamid[wamid] = m
        heapq.heappush(self._confirm_deadlines, (now + timeout, m.id))
        early = self._early.pop(wamid, None)
        if early is not None:
            self._apply(m, early)

    def record_uncertain(self, m: SendRecord, text: str) -> None:
        """``m`` was written to the API but no answer came: it may have been sent, so it is not sent again.

        It finishes as unconfirmed (no ``wamid`` came back, so no status can ever match it)
        and is counted in ``uncertain_sends``, with ``text`` kept as its error.
        """
        self.counts["uncertain_sends"] += 1 + len(m.riders)
        m.error_text = text
        if self._journal is not None:
            self._journal.uncertain([part.id for part in (m, *m.riders)])
        self.record_final(m, MessageState.UNCONFIRMED)

    def record_final(self, m: SendRecord, state: MessageState) -> None:
        """``m`` and its riders are done in ``state`` (confirmed, unconfirmed or dead-lettered)."""
        key = _COUNTER[state]
        if m.wamid is not None:
            self._by_wamid.pop(m.wamid, None)
        for part in (m, *m.riders):
            if self.live.pop(part.id, None) is None:
                continue  # a rider confirmed on its own earlier
            part.state = state
            self._finished[part.id] = state
            self.counts[key] += 1
        while len(self._finished) > OUTCOME_HISTORY:
            del self._finished[next(iter(self._finished))]
        if not self.live:
            self.idle.set()

    def record_failed(self, m: SendRecord, code: int | None, text: str, reported_at: float | None = None) -> None:
        """``m`` will not be delivered: keep it (and each unfinished rider) as a failed send, then finish it."""
        now = self._clock()
        for part in (m, *m.riders):
            if part.id in self.live:
                self._failed.add(part, m.sends, code, text, now, reported_at)
                if self._journal is not None:
                    self._journal.failed(part.id, code, text, m.sends)
        self.record_final(m, MessageState.DEAD_LETTERED)

    # --- confirmations -------------------------------------------------------------------

    def expire_confirmations(self, now: float) -> None:
        """Finish as unconfirmed every sent message whose ``confirmation_timeout`` ran out by ``now``."""
        deadlines = self._confirm_deadlines
        while deadlines and deadlines[0][0] <= now:
            m = self.live.get(heapq.heappop(deadlines)[1])
            if m is not None and m.state is MessageState.AWAITING_CONFIRMATION:
                self.record_final(m, MessageState.UNCONFIRMED)

    def next_deadline(self, now: float) -> float | None:
        """Seconds until the next confirmation deadline, ``None`` if nothing awaits one."""
        return self._confirm_deadlines[0][0] - now if self._confirm_deadlines else None

    def confirm(self, message_id: str, success: bool, timestamp: float | None, error: str | None) -> bool:
        """See :meth:`BatchSender.confirm_delivery <sluiceway.whatsapp.BatchSender.confirm_delivery>`."""
        m = self.live.get(message_id)
        if m is None:
            if message_id in self._finished:
                return False
            raise ValueError(f"unknown message id {message_id!r}")
        if m.state is not MessageState.AWAITING_CONFIRMATION:
            raise ValueError(f"message {message_id!r} is {m.state.value}, not awaiting confirmation")
        if success:
            self.record_final(m, MessageState.CONFIRMED)
        else:
            self.record_failed(m, m.error_code, error or "delivery failed", timestamp)
        return True

    def apply_status(self, status: Status | bytes | dict[str, Any]) -> bool:
        """See :meth:`BatchSender.handle_status <sluiceway.whatsapp.BatchSender.handle_status>`."""
        if isinstance(status, bytes):
            status = _decode_status(status)
        elif isinstance(status, dict):
            status = msgspec.convert(status, Status)
        m = self._by_wamid.get(status.id)
        if m is None:
            # Without confirmation_timeout nothing waits for statuses: holding them would only leak.
            awaited = self._confirmation_timeout is not None
            if awaited and status.status != "sent" and len(self._early) < EARLY_STATUS_LIMIT:
                self._early[status.id] = status
            return False
        return self._apply(m, status)

    def apply_webhook(self, body: bytes | WebhookPayload) -> int:
        """Apply every status of a webhook body; how many settled a message."""
        payload = _decode_webhook(body) if isinstance(body, bytes) else body
        return sum(self.apply_status(s) for s in payload.statuses())

    def _apply(self, m: SendRecord, status: Status) -> bool:
        if m.state is not MessageState.AWAITING_CONFIRMATION:
            return False
        if status.status in ("delivered", "read"):
            self.record_final(m, MessageState.CONFIRMED)
            return True
        if status.status == "failed":
            err = status.errors[0] if status.errors else None
            text = (err.message or err.title) if err else "failed"
            reported_at = float(status.timestamp) if status.timestamp.isdigit() else None
            self.record_failed(m, err.code if err else None, text, reported_at)
            return True
        return False

    # --- reading ---------------------------------------------------------------------------

    def state(self, message_id: str) -> str:
        """The state of one message; ``ValueError`` for an id never issued or already forgotten."""
        m = self.live.get(message_id)
        if m is not None:
            return m.state.value
        final = self._finished.get(message_id)
        if final is None:
            raise ValueError(f"unknown message id {message_id!r}")
        return final.value

    def queue_status(self) -> dict[str, dict[str, int]]:
        """Messages per priority per live state, and the failed sends per priority as ``dead_lettered``."""
        table = {p: dict.fromkeys([s.value for s in LIVE_STATES] + ["dead_lettered"], 0) for p in PRIORITIES}
        for m in self.live.values():
            table[PRIORITIES[m.level]][m.state.value] += 1
        for level, priority in enumerate(PRIORITIES):
            table[priority]["dead_lettered"] = self._failed.count(level)
        return table

    def left_over(self) -> list[LeftOver]:
        """Every unfinished message, with the state it is in."""
        return [LeftOver(m.id, m.message, PRIORITIES[m.level], m.state.value, m.attempts) for m in self.live.values()]


class IdempotencyWindow:
    """Idempotency keys seen in the last ``window`` seconds, each with the id of the message it was first given to."""

    __slots__ = ("_ids", "_order", "duplicates", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._ids: dict[str, tuple[str, float]] = {}
        self._order: deque[tuple[float, str]] = deque()
        #: Enqueues answered with an earlier message's id.
        self.duplicates = 0

    def seen(self, key: str, now: float) -> str | None:
        """The message id ``key`` was given to within the window, counting the duplicate; else ``None``."""
        order = self._order
        while order and order[0][0] <= now:
            expires, old = order.popleft()
            if self._ids.get(old, ("", 0.0))[1] == expires:
                del self._ids[old]
        seen = self._ids.get(key)
        if seen is None:
            return None
        self.duplicates += 1
        return seen[0]

    def remember(self, key: str, message_id: str, now: float) -> None:
        """``key`` now stands for ``message_id`` until the window has passed (nothing is kept for a zero window)."""
        if self.window > 0:
            expires = now + self.window
            self._ids[key] = (message_id, expires)
            self._order.append((expires, key))
