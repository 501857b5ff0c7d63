"""BatchSender: WhatsApp sends that respect every rate limit, lose nothing and recover on their own.

How it works: each recipient has its own FIFO of pending messages, and the
*recipients* (not the messages) wait in one ready queue per priority. A dispatch
round walks the ready queues high → low and, for each recipient, takes up to
``max_batch_size_per_recipient`` messages that the pair-rate limiter, the global
limiter and the circuit breaker all admit; the recipients' chains are then sent
concurrently (each chain in order, so one user's messages arrive in the order they
were queued). A recipient the pair rate holds back is parked on a timer and never
blocks anyone else. Failures are classified by ``error.code``
(:mod:`sluiceway.whatsapp.errors`) and either retried after backoff, throttled,
dead-lettered or held behind the breaker.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import msgspec

from sluiceway.histogram import LatencyHistogram
from sluiceway.whatsapp.breaker import BreakerState, CircuitBreaker
from sluiceway.whatsapp.config import SenderConfig
from sluiceway.whatsapp.errors import ErrorCategory, SendError
from sluiceway.whatsapp.limits import GlobalLimit, RecipientLimits
from sluiceway.whatsapp.messages import MAX_TEXT_LENGTH, MEDIA_TYPES, OutboundMessage, Text
from sluiceway.whatsapp.webhooks import Status, WebhookPayload
from sluiceway.whatsapp.outcomes import LIVE_STATES, DeadLetter, LeftOver, MessageState
from sluiceway.whatsapp.retry import RetryPolicy
from sluiceway.whatsapp.transport import Transport

log = logging.getLogger("sluiceway.whatsapp")

#: Priority names, served in this order.
PRIORITIES = ("high", "normal", "low")
_LEVEL = {name: level for level, name in enumerate(PRIORITIES)}
_HIGH = 0
#: Final outcomes remembered for ``state(message_id)`` after a message finishes (oldest forgotten first).
OUTCOME_HISTORY = 100_000
#: Status webhooks that arrive before their send's HTTP answer are held this many at most.
EARLY_STATUS_LIMIT = 10_000
#: Media kinds guessed from a ``media_url``'s extension by ``enqueue_message`` (default: document).
_MEDIA_BY_EXTENSION = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp"), "image"),
    **dict.fromkeys(("mp4", "3gp"), "video"),
    **dict.fromkeys(("mp3", "ogg", "aac", "amr", "m4a", "opus"), "audio"),
}

_READY, _WAITING, _BUSY = 0, 1, 2
#: A message in one of these needs no more sending.
_SETTLED = frozenset({MessageState.AWAITING_CONFIRMATION, MessageState.CONFIRMED, MessageState.DEAD_LETTERED, MessageState.UNCONFIRMED})
_decode_webhook = msgspec.json.Decoder(WebhookPayload).decode
_decode_status = msgspec.json.Decoder(Status).decode


class _Message:
    """One accepted message and its bookkeeping (mutable, private)."""

    __slots__ = (
        "attempts", "deadline", "error_code", "error_text", "id", "level", "message", "recipient",
        "riders", "send_as", "sends", "state", "throttles", "wamid",
    )

    def __init__(self, mid: str, message: OutboundMessage, level: int, deadline: float) -> None:
        self.id = mid
        self.message = message
        self.send_as = message  # the coalesced text when riders joined it
        self.recipient = message.to
        self.level = level
        self.deadline = deadline
        self.state = MessageState.QUEUED
        self.attempts = 0  # transient failures so far
        self.throttles = 0  # throughput / pair-rate refusals so far
        self.sends = 0  # requests made
        self.riders: list[_Message] = []
        self.wamid: str | None = None
        self.error_code: int | None = None
        self.error_text = ""


class BatchSender:
    """Sends WhatsApp messages in rate-limited dispatch rounds, with retries, a breaker and dead letters.

    Every accepted message ends in exactly one of: confirmed, dead-lettered (with the
    provider's code and text) or unconfirmed (no status within
    ``confirmation_timeout``), or is reported by :meth:`left_over` after shutdown.

    Example::

        async with WhatsAppCloudTransport.from_env() as transport, \\
                   BatchSender(transport, SenderConfig.cloud_api()) as sender:
            mid = await sender.enqueue_message("15551234567", "Your rent receipt is ready")
            await sender.drain(timeout=30)
            sender.stats()["confirmed"]

    ``clock`` and ``sleep`` are injectable so tests run on virtual time
    (``sluiceway.testing.ManualClock`` with a ``sleep`` that advances it).

    Warning: one recipient's messages are sent strictly in order, one at a time; the
    priority of the message at the head of a recipient's queue decides when that
    recipient is served, so a high-priority message queued behind normal ones to the
    same user waits for them. Order within a chat is worth more than that latency.
    """

    def __init__(
        self,
        transport: Transport,
        config: SenderConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        on_alert: Callable[[str, SendError], None] | None = None,
    ) -> None:
        self.config = cfg = config or SenderConfig()
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._on_alert = on_alert
        now = clock()
        self._global = GlobalLimit(cfg.rate_limit, decrease=cfg.throttle_decrease, recovery=cfg.throttle_recovery, now=now)
        self._recipients = RecipientLimits(cfg.per_recipient)
        self._breaker = CircuitBreaker(cfg.breaker, clock=clock)
        self._breaker.add_listener(self._on_breaker_change)
        self._retry = RetryPolicy(cfg.max_retries, cfg.initial_backoff, cfg.max_backoff, cfg.jitter)
        # Scheduling: per-recipient FIFOs, ready recipients per level, parked recipients on timers.
        self._pending: dict[str, deque[_Message]] = {}
        self._rstate: dict[str, int] = {}
        self._ready: list[deque[str]] = [deque() for _ in PRIORITIES]
        self._timers: list[tuple[float, int, str]] = []
        self._hold: dict[str, float] = {}
        self._seq = itertools.count()
        # Accounting.
        self._live: dict[str, _Message] = {}
        self._finished: dict[str, MessageState] = {}
        self._by_wamid: dict[str, _Message] = {}
        self._early: dict[str, Status] = {}
        self._confirm_timers: list[tuple[float, str]] = []
        self._idempotency: dict[str, tuple[str, float]] = {}
        self._idempotency_order: deque[tuple[float, str]] = deque()
        self._dead: list[DeadLetter] = []
        self._dead_by_level = [0, 0, 0]
        self._left_over: list[LeftOver] = []
        self._counts = dict.fromkeys(
            ("accepted", "sent", "confirmed", "failed", "unconfirmed", "retries", "throttle_events", "coalesced", "duplicates"), 0
        )
        self._latency = LatencyHistogram()
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        # Dispatch.
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._rounds: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._next_round_at = now
        self._express_used = False
        self._closed = False

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start dispatching (``async with`` does this)."""
        if self._closed:
            raise RuntimeError("this BatchSender is closed")
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="sluiceway-whatsapp-dispatch")

    async def __aenter__(self) -> BatchSender:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self, timeout: float | None = None) -> list[LeftOver]:
        """Drain for up to ``timeout`` (default ``shutdown_timeout``) seconds, stop, and report what is left.

        Sends in flight when the time is up are cancelled; their messages are reported
        in state ``in_flight`` because the provider may or may not have taken them.
        """
        if self._closed:
            return list(self._left_over)
        await self.drain(self.config.shutdown_timeout if timeout is None else timeout)
        self._closed = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        for task in list(self._rounds):
            task.cancel()
        await asyncio.gather(*self._rounds, return_exceptions=True)
        self._left_over = [
            LeftOver(m.id, m.message, PRIORITIES[m.level], m.state.value, m.attempts) for m in self._live.values()
        ]
        c = self._counts
        log.info(
            "whatsapp sender shutdown ◆ %d confirmed ◆ %d dead-lettered ◆ %d retries ◆ %d left unfinished",
            c["confirmed"], c["failed"], c["retries"], len(self._left_over),
        )
        return list(self._left_over)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every accepted message is final; ``False`` if ``timeout`` (real seconds) ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    # --- accepting messages ---------------------------------------------------------

    async def enqueue_message(
        self,
        recipient_id: str,
        text: str,
        priority: str = "normal",
        media_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Queue a text (or, with ``media_url``, a media message captioned with ``text``); returns our message id.

        ``ValueError`` at once for an empty recipient, a text over 4,096 characters, an
        unknown priority or a caption over 1,024 characters.
        """
        if media_url is None:
            message = OutboundMessage.of_text(recipient_id, text)
        else:
            extension = media_url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
            kind = _MEDIA_BY_EXTENSION.get(extension, "document")
            message = OutboundMessage.of_media(recipient_id, kind, media_url, caption=text or None)
        return await self.enqueue(message, priority=priority, idempotency_key=idempotency_key)

    async def enqueue(self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None) -> str:
        """Queue any :class:`OutboundMessage` (template, media, interactive...); returns our message id.

        With an ``idempotency_key`` seen in the last ``idempotency_window`` seconds this
        is a no-op that returns the first message's id.
        """
        return self.submit(message, priority, idempotency_key)

    def submit(self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None) -> str:
        """:meth:`enqueue` without the ``await``, for callers outside a coroutine on the sender's loop."""
        level = _LEVEL.get(priority)
        if level is None:
            raise ValueError(f"unknown priority {priority!r}; expected one of {PRIORITIES}")
        if not isinstance(message, OutboundMessage):
            raise TypeError(f"expected an OutboundMessage, got {type(message).__name__}")
        if self._closed:
            raise RuntimeError("this BatchSender is closed")
        now = self._clock()
        if idempotency_key is not None:
            self._expire_idempotency(now)
            seen = self._idempotency.get(idempotency_key)
            if seen is not None:
                self._counts["duplicates"] += 1
                return seen[0]
        mid = f"{self._id_prefix}-{next(self._ids):x}"
        if idempotency_key is not None and self.config.idempotency_window > 0:
            expires = now + self.config.idempotency_window
            self._idempotency[idempotency_key] = (mid, expires)
            self._idempotency_order.append((expires, idempotency_key))
        m = _Message(mid, message, level, now + self.config.message_ttl)
        self._live[mid] = m
        self._idle.clear()
        self._counts["accepted"] += 1
        recipient = m.recipient
        pending = self._pending.get(recipient)
        if pending is None:
            pending = self._pending[recipient] = deque()
        pending.append(m)
        if recipient not in self._rstate:
            self._rstate[recipient] = _READY
            self._ready[level].append(recipient)
        self._wake.set()
        return mid

    def _expire_idempotency(self, now: float) -> None:
        order = self._idempotency_order
        while order and order[0][0] <= now:
            expires, key = order.popleft()
            if self._idempotency.get(key, ("", 0.0))[1] == expires:
                del self._idempotency[key]

    # --- delivery confirmation -----------------------------------------------------

    def confirm_delivery(
        self, message_id: str, success: bool, timestamp: float | None = None, error: str | None = None
    ) -> bool:
        """Report the fate of a sent message by our id; ``False`` if it was already final.

        ``timestamp`` (the provider's Unix time of the report) and ``error`` are kept on
        the dead letter when ``success`` is false.

        ``ValueError`` for an id this sender never issued (or forgot, see ``OUTCOME_HISTORY``),
        or for a message not yet sent.
        """
        m = self._live.get(message_id)
        if m is None:
            if message_id in self._finished:
                return False
            raise ValueError(f"unknown message id {message_id!r}")
        if m.state is not MessageState.AWAITING_CONFIRMATION:
            raise ValueError(f"message {message_id!r} is {m.state.value}, not awaiting confirmation")
        if success:
            self._finish(m, MessageState.CONFIRMED)
        else:
            self._dead_letter(m, m.error_code, error or "delivery failed", timestamp)
        return True

    def handle_status(self, status: Status | bytes | dict[str, Any]) -> bool:
        """Apply one ``statuses`` object of the messages webhook; ``True`` if it settled a message.

        ``delivered`` and ``read`` confirm, ``failed`` dead-letters with the status's
        error code and title, ``sent`` only notes progress. A status for a ``wamid``
        whose send has not returned yet is kept until it does.
        """
        if isinstance(status, bytes):
            status = _decode_status(status)
        elif isinstance(status, dict):
            status = msgspec.convert(status, Status)
        m = self._by_wamid.get(status.id)
        if m is None:
            # Without confirmation_timeout nothing waits for statuses: holding them would only leak.
            awaited = self.config.confirmation_timeout is not None
            if awaited and status.status != "sent" and len(self._early) < EARLY_STATUS_LIMIT:
                self._early[status.id] = status
            return False
        return self._apply_status(m, status)

    def handle_webhook(self, body: bytes | WebhookPayload) -> int:
        """Apply every status in a whole webhook body; returns how many settled a message."""
        payload = _decode_webhook(body) if isinstance(body, bytes) else body
        return sum(self.handle_status(s) for s in payload.statuses())

    def _apply_status(self, m: _Message, status: Status) -> bool:
        if m.state is not MessageState.AWAITING_CONFIRMATION:
            return False
        if status.status in ("delivered", "read"):
            self._finish(m, MessageState.CONFIRMED)
            return True
        if status.status == "failed":
            err = status.errors[0] if status.errors else None
            text = (err.message or err.title) if err else "failed"
            self._dead_letter(m, err.code if err else None, text, float(status.timestamp) if status.timestamp.isdigit() else None)
            return True
        return False

    # --- introspection ---------------------------------------------------------------

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker; ``sender.breaker.add_listener(fn)`` observes its state changes."""
        return self._breaker

    def state(self, message_id: str) -> str:
        """The state of one message (see :class:`MessageState`); ``ValueError`` for an unknown id."""
        m = self._live.get(message_id)
        if m is not None:
            return m.state.value
        final = self._finished.get(message_id)
        if final is None:
            raise ValueError(f"unknown message id {message_id!r}")
        return final.value

    def queue_status(self) -> dict[str, dict[str, int]]:
        """Messages per priority per state: queued, in flight, awaiting confirmation, retrying, dead-lettered."""
        table = {p: dict.fromkeys([s.value for s in LIVE_STATES] + ["dead_lettered"], 0) for p in PRIORITIES}
        for m in self._live.values():
            table[PRIORITIES[m.level]][m.state.value] += 1
        for level, count in enumerate(self._dead_by_level):
            table[PRIORITIES[level]]["dead_lettered"] = count
        return table

    def stats(self) -> dict[str, Any]:
        """Counters (accepted, sent, confirmed, failed, retries, throttle events...), the current
        adaptive rate, the breaker state and p50/p99 send latency in seconds."""
        h = self._latency
        return {
            **self._counts,
            "unfinished": len(self._live),
            "rate": self._global.rate,
            "rate_limit": self._global.ceiling,
            "breaker": self._breaker.state.value,
            "latency_p50": h.quantile(0.5) if h.count else 0.0,
            "latency_p99": h.quantile(0.99) if h.count else 0.0,
        }

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead-lettered message so far, oldest first."""
        return list(self._dead)

    def left_over(self) -> list[LeftOver]:
        """Messages still unfinished when the sender closed (empty before ``close``)."""
        return list(self._left_over)

    # --- dispatch --------------------------------------------------------------------

    async def _dispatch(self) -> None:
        cfg = self.config
        while True:
            now = self._clock()
            self._fire_timers(now)
            wait = self._next_timer(now)
            if len(self._rounds) < cfg.max_concurrent_batches:
                state = self._breaker.state
                if state is BreakerState.OPEN:
                    wait = _earliest(wait, self._breaker.open_until - now)
                else:
                    express = now < self._next_round_at
                    if express and (self._express_used or not self._ready[_HIGH]):
                        wait = _earliest(wait, self._next_round_at - now)
                    else:
                        size = cfg.priority_batch_size if express else cfg.base_batch_size
                        chains, blocked = self._take_round(now, size, 1 if express else len(PRIORITIES))
                        if chains:
                            self._express_used = express
                            if not express:
                                self._next_round_at = now + cfg.min_delay_between_batches
                            task = asyncio.create_task(self._run_round(chains))
                            self._rounds.add(task)
                            task.add_done_callback(self._round_done)
                            continue
                        # The round may have parked recipients on new timers: wait for those too.
                        wait = _earliest(self._next_timer(now), blocked)
            await self._pause(wait)

    async def _pause(self, delay: float | None) -> None:
        if self._wake.is_set():
            self._wake.clear()
            return
        waiter = asyncio.ensure_future(self._wake.wait())
        if delay is None:
            await waiter
        else:
            sleeper = asyncio.ensure_future(self._sleep(max(delay, 0.0)))
            await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            waiter.cancel()
        self._wake.clear()

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            recipient = heapq.heappop(timers)[2]
            pending = self._pending.get(recipient)
            if self._rstate.get(recipient) == _WAITING and pending:
                self._rstate[recipient] = _READY
                self._ready[pending[0].level].append(recipient)
        confirms = self._confirm_timers
        while confirms and confirms[0][0] <= now:
            m = self._live.get(heapq.heappop(confirms)[1])
            if m is not None and m.state is MessageState.AWAITING_CONFIRMATION:
                self._finish(m, MessageState.UNCONFIRMED)

    def _next_timer(self, now: float) -> float | None:
        wait = self._timers[0][0] - now if self._timers else None
        if self._confirm_timers:
            wait = _earliest(wait, self._confirm_timers[0][0] - now)
        return wait

    def _take_round(self, now: float, slots: int, levels: int) -> tuple[list[tuple[str, list[_Message]]], float | None]:
        """Up to ``slots`` admitted messages as per-recipient chains, and how long to wait if blocked."""
        per_recipient = self.config.max_batch_size_per_recipient
        coalesce = self.config.coalesce_texts
        glimit, rlimit, breaker = self._global, self._recipients, self._breaker
        chains: list[tuple[str, list[_Message]]] = []
        for level in range(levels):
            ready = self._ready[level]
            while ready and slots > 0:
                global_wait = glimit.time_until(now)
                if global_wait > 0:
                    return chains, global_wait
                recipient = ready.popleft()
                pending = self._pending[recipient]
                chain: list[_Message] = []
                stop = False
                while pending and slots > 0 and len(chain) < per_recipient:
                    m = pending[0]
                    if m.deadline <= now:
                        pending.popleft()
                        self._dead_letter(m, None, "expired: not sent within message_ttl")
                        continue
                    if glimit.time_until(now) > 0 or not rlimit.try_acquire(recipient, now):
                        break
                    if not breaker.allow():
                        stop = True
                        break
                    if not glimit.try_acquire(now):  # time_until said 0; a rounding edge must not overspend
                        breaker.release()
                        break
                    pending.popleft()
                    if coalesce and pending:
                        self._coalesce(m, pending)
                    m.state = MessageState.IN_FLIGHT
                    for r in m.riders:
                        r.state = MessageState.IN_FLIGHT
                    chain.append(m)
                    slots -= 1
                if chain:
                    self._rstate[recipient] = _BUSY
                    chains.append((recipient, chain))
                elif not pending:
                    del self._rstate[recipient], self._pending[recipient]
                elif stop or glimit.time_until(now) > 0:
                    ready.appendleft(recipient)
                else:
                    self._park(recipient, now + rlimit.time_until(recipient, now))
                if stop:
                    return chains, None
        return chains, None

    def _coalesce(self, m: _Message, pending: deque[_Message]) -> None:
        """Join the plain texts queued right behind ``m`` into it, within the 4,096-character limit."""
        first = m.send_as
        if first.type != "text" or first.context is not None or first.text is None:
            return
        body = first.text.body
        sep = self.config.coalesce_separator
        joined: list[_Message] = []
        while pending:
            nxt = pending[0].message
            if (
                pending[0].riders
                or nxt.type != "text"
                or nxt.context is not None
                or nxt.text is None
                or nxt.text.preview_url != first.text.preview_url
                or len(body) + len(sep) + len(nxt.text.body) > MAX_TEXT_LENGTH
            ):
                break
            body = f"{body}{sep}{nxt.text.body}"
            joined.append(pending.popleft())
        if joined:
            m.riders.extend(joined)
            m.send_as = msgspec.structs.replace(first, text=Text(body, first.text.preview_url))
            self._counts["coalesced"] += len(joined)

    def _park(self, recipient: str, due: float) -> None:
        self._rstate[recipient] = _WAITING
        heapq.heappush(self._timers, (due, next(self._seq), recipient))

    def _release(self, recipient: str, now: float) -> None:
        """A recipient's chain finished: queue it again, park it, or forget it."""
        pending = self._pending.get(recipient)
        if not pending:
            self._rstate.pop(recipient, None)
            self._pending.pop(recipient, None)
            return
        due = max(self._hold.pop(recipient, now), now + self._recipients.time_until(recipient, now))
        if due > now:
            self._park(recipient, due)
        else:
            self._rstate[recipient] = _READY
            self._ready[pending[0].level].append(recipient)

    async def _run_round(self, chains: list[tuple[str, list[_Message]]]) -> None:
        await asyncio.gather(*(self._run_chain(r, chain) for r, chain in chains))

    def _round_done(self, task: asyncio.Task[None]) -> None:
        self._rounds.discard(task)
        self._wake.set()

    async def _run_chain(self, recipient: str, chain: list[_Message]) -> None:
        done = attempted = 0
        try:
            for m in chain:
                attempted += 1
                go_on = await self._send(m)
                if m.state in _SETTLED:
                    done += 1
                if not go_on:
                    break
        finally:
            for _ in chain[attempted:]:
                self._breaker.release()  # admitted but never sent: give a half-open trial back
            back = chain[done:]
            if back:
                pending = self._pending.setdefault(recipient, deque())
                for m in chain[attempted:]:
                    self._set_state(m, MessageState.QUEUED)
                pending.extendleft(reversed(back))
            if not self._closed:
                self._release(recipient, self._clock())

    async def _send(self, m: _Message) -> bool:
        """One attempt; ``True`` if the recipient's chain may go on."""
        start = self._clock()
        m.sends += 1
        try:
            result = await self._transport.send(m.send_as)
        except SendError as exc:
            return self._on_error(m, exc)
        except Exception as exc:  # a broken transport must not lose the message
            return self._on_error(m, SendError(f"transport raised {type(exc).__name__}: {exc}"))
        now = self._clock()
        self._latency.record(max(0.0, now - start))
        self._breaker.record_success()
        self._global.on_success(now)
        self._counts["sent"] += 1 + len(m.riders)
        m.wamid = result.message_id
        timeout = self.config.confirmation_timeout
        if timeout is None:
            self._finish(m, MessageState.CONFIRMED)
            return True
        self._set_state(m, MessageState.AWAITING_CONFIRMATION)
        self._by_wamid[result.message_id] = m
        heapq.heappush(self._confirm_timers, (now + timeout, m.id))
        early = self._early.pop(result.message_id, None)
        if early is not None:
            self._apply_status(m, early)
        return True

    def _on_error(self, m: _Message, exc: SendError) -> bool:
        now = self._clock()
        m.error_code, m.error_text = exc.code, exc.message
        category = exc.category
        if category is ErrorCategory.PERMANENT:
            self._breaker.record_success()  # the provider answered: it is healthy
            self._dead_letter(m, exc.code, exc.message)
            return True
        if category is ErrorCategory.TRANSIENT:
            self._breaker.record_failure()
            m.attempts += 1
            if self._retry.exhausted(m.attempts):
                self._dead_letter(m, exc.code, exc.message)
                return True
            self._counts["retries"] += 1
            self._hold_recipient(m.recipient, now + self._retry.delay(m.attempts))
            self._set_state(m, MessageState.RETRYING)
            return False
        if category is ErrorCategory.AUTH:
            self._breaker.trip()
            log.error("whatsapp access was refused (%s); breaker opened, messages wait", exc)
            if self._on_alert is not None:
                self._on_alert("auth", exc)
            self._set_state(m, MessageState.QUEUED)
            return False
        # THROUGHPUT or PAIR_RATE: our pace, not the provider's health.
        self._breaker.record_success()
        self._counts["throttle_events"] += 1
        m.throttles += 1
        if category is ErrorCategory.THROUGHPUT:
            if self._global.on_throttled(now):
                log.warning("whatsapp throughput limit hit (code %s); rate cut to %.1f/s", exc.code, self._global.rate)
            self._hold_recipient(m.recipient, now + self._retry.delay(min(m.throttles, 8)))
        else:
            self._recipients.penalize(m.recipient, now)
        self._set_state(m, MessageState.RETRYING)
        return False

    def _hold_recipient(self, recipient: str, until: float) -> None:
        self._hold[recipient] = max(until, self._hold.get(recipient, until))

    # --- outcomes ---------------------------------------------------------------------

    def _set_state(self, m: _Message, state: MessageState) -> None:
        m.state = state
        for r in m.riders:
            r.state = state

    def _finish(self, m: _Message, state: MessageState) -> None:
        key = "confirmed" if state is MessageState.CONFIRMED else "unconfirmed" if state is MessageState.UNCONFIRMED else "failed"
        if m.wamid is not None:
            self._by_wamid.pop(m.wamid, None)
        for part in (m, *m.riders):
            if self._live.pop(part.id, None) is None:
                continue  # a rider confirmed on its own earlier
            part.state = state
            self._finished[part.id] = state
            self._counts[key] += 1
        while len(self._finished) > OUTCOME_HISTORY:
            del self._finished[next(iter(self._finished))]
        if not self._live:
            self._idle.set()

    def _dead_letter(self, m: _Message, code: int | None, text: str, reported_at: float | None = None) -> None:
        now = self._clock()
        for part in (m, *m.riders):
            if part.id not in self._live:
                continue
            self._dead.append(DeadLetter(part.id, part.message, PRIORITIES[part.level], m.sends, code, text, now, reported_at))
            self._dead_by_level[part.level] += 1
        self._finish(m, MessageState.DEAD_LETTERED)

    def _on_breaker_change(self, old: BreakerState, new: BreakerState) -> None:
        log.warning("whatsapp circuit breaker %s → %s", old.value, new.value)
        self._wake.set()

    def __repr__(self) -> str:
        return f"BatchSender(unfinished={len(self._live)}, rate={self._global.rate:.1f}/s, breaker={self._breaker.state.value})"


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
