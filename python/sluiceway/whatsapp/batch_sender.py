"""BatchSender: WhatsApp sends that respect every rate limit, lose nothing and recover on their own.

How it works: the sender composes a few parts, each in its own module, and runs the
dispatch loop between them:

* :mod:`~sluiceway.whatsapp.rounds` queues each recipient's messages and forms rounds,
  high priority first, of what the limits admit;
* :mod:`~sluiceway.whatsapp.limits` (``SendLimits``) is the one place asked for
  permission: pair rate, global windows with adaptive pacing, the circuit breaker;
* :mod:`~sluiceway.whatsapp.attempts` sends each round's chains (each recipient's in
  order, the recipients concurrently) and turns failures into retries, throttling,
  failed sends or a held breaker;
* :mod:`~sluiceway.whatsapp.ledger` records each message from queued to sent to final,
  and applies delivery statuses; :mod:`~sluiceway.whatsapp.failed_sends` keeps the
  messages that will not be delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from sluiceway.whatsapp.attempts import SendAttempts
from sluiceway.whatsapp.breaker import BreakerState, CircuitBreaker
from sluiceway.whatsapp.cloud_api import Transport
from sluiceway.whatsapp.config import SenderConfig
from sluiceway.whatsapp.errors import SenderClosed, SendError
from sluiceway.whatsapp.failed_sends import FailedSendLog
from sluiceway.whatsapp.ledger import IdempotencyWindow, SendJournal, SendLedger
from sluiceway.whatsapp.limits import RateLimitBackend, SendLimits
from sluiceway.whatsapp.messages import OutboundMessage
from sluiceway.whatsapp.outcomes import FailedSend, LeftOver
from sluiceway.whatsapp.records import HIGH, LEVELS, PRIORITIES, SendRecord
from sluiceway.whatsapp.retry import SendRetryPolicy
from sluiceway.whatsapp.rounds import RoundScheduler
from sluiceway.whatsapp.webhooks import Status, WebhookPayload

log = logging.getLogger("sluiceway.whatsapp")

#: Media kinds guessed from a ``media_url``'s extension by ``enqueue_message`` (default: document).
_MEDIA_BY_EXTENSION = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp"), "image"),
    **dict.fromkeys(("mp4", "3gp"), "video"),
    **dict.fromkeys(("mp3", "ogg", "aac", "amr", "m4a", "opus"), "audio"),
}


class BatchSender:
    """Sends WhatsApp messages in rate-limited dispatch rounds, with retries, a breaker and failed sends.

    Every accepted message ends in exactly one of: confirmed, dead-lettered (a
    :class:`FailedSend` with the provider's code and text) or unconfirmed (no status
    within ``confirmation_timeout``), or is reported by :meth:`left_over` after shutdown.

    Example::

        async with WhatsAppCloudTransport.from_env() as transport, \\
                   BatchSender(transport, SenderConfig.cloud_api()) as sender:
            mid = await sender.enqueue_message("15551234567", "Your rent receipt is ready")
            await sender.drain(timeout=30)
            sender.stats()["confirmed"]

    ``clock`` and ``sleep`` are injectable so tests run on virtual time
    (``sluiceway.testing.ManualClock`` with a ``sleep`` that advances it).
    ``journal`` (a :class:`~sluiceway.whatsapp.ledger.SendJournal`, e.g. the bot runtime's
    durable outbox) is told of each send's steps; without one nothing outlives the process.
    ``limits`` keeps the rate limits elsewhere than in this process, e.g. a
    :class:`~sluiceway.whatsapp.redis_limits.RedisRateLimits` shared by every node on the number.

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
        journal: SendJournal | None = None,
        limits: RateLimitBackend | None = None,
    ) -> None:
        self.config = cfg = config or SenderConfig()
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._breaker = CircuitBreaker(cfg.breaker, clock=clock)
        self._breaker.add_listener(self._on_breaker_change)
        self._limits = SendLimits(cfg, self._breaker, now=now, backend=limits)
        self._failed = FailedSendLog()
        self._ledger = SendLedger(
            self._failed, confirmation_timeout=cfg.confirmation_timeout, clock=clock, journal=journal
        )
        self._idempotency = IdempotencyWindow(cfg.idempotency_window)
        self._scheduler = RoundScheduler(cfg, self._limits, self._expire)
        self._attempts = SendAttempts(
            transport,
            scheduler=self._scheduler,
            limits=self._limits,
            breaker=self._breaker,
            ledger=self._ledger,
            retry=SendRetryPolicy(cfg.max_retries, cfg.initial_backoff, cfg.max_backoff, cfg.jitter),
            clock=clock,
            on_alert=on_alert,
        )
        self._left_over: list[LeftOver] = []
        # Dispatch.
        self._wake = asyncio.Event()
        self._rounds: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._next_round_at = now
        self._express_used = False
        self._closed = False

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start dispatching (``async with`` does this)."""
        if self._closed:
            raise SenderClosed("this BatchSender is closed")
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
        self._scheduler.close()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        for task in list(self._rounds):
            task.cancel()
        await asyncio.gather(*self._rounds, return_exceptions=True)
        await self._limits.backend.aclose()
        self._left_over = self._ledger.left_over()
        counts = self._ledger.counts
        log.info(
            "whatsapp sender shutdown ◆ %d confirmed ◆ %d dead-lettered ◆ %d retries ◆ %d left unfinished",
            counts["confirmed"],
            counts["failed"],
            self._attempts.retries,
            len(self._left_over),
        )
        return list(self._left_over)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every accepted message is final; ``False`` if ``timeout`` (real seconds) ran out first."""
        try:
            await asyncio.wait_for(self._ledger.idle.wait(), timeout)
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
        return self.enqueue_nowait(message, priority, idempotency_key)

    async def enqueue(
        self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None
    ) -> str:
        """Queue any :class:`OutboundMessage` (template, media, interactive...); returns our message id.

        With an ``idempotency_key`` seen in the last ``idempotency_window`` seconds this
        is a no-op that returns the first message's id.
        """
        return self.enqueue_nowait(message, priority, idempotency_key)

    def enqueue_nowait(
        self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None
    ) -> str:
        """:meth:`enqueue` without the ``await``, for callers outside a coroutine on the sender's loop.

        The sender never refuses for lack of room, so this never waits: ``ValueError``
        for an unknown priority, ``TypeError`` for anything but an ``OutboundMessage``,
        :class:`SenderClosed` once the sender is closed.
        """
        level = LEVELS.get(priority)
        if level is None:
            raise ValueError(f"unknown priority {priority!r}; expected one of {PRIORITIES}")
        if not isinstance(message, OutboundMessage):
            raise TypeError(f"expected an OutboundMessage, got {type(message).__name__}")
        if self._closed:
            raise SenderClosed("this BatchSender is closed")
        now = self._clock()
        if idempotency_key is not None:
            first = self._idempotency.seen(idempotency_key, now)
            if first is not None:
                return first
        record = self._ledger.record_queued(message, level, now + self.config.message_ttl)
        if idempotency_key is not None:
            self._idempotency.remember(idempotency_key, record.id, now)
        self._scheduler.add(record)
        self._wake.set()
        return record.id

    def _expire(self, m: SendRecord) -> None:
        self._ledger.record_failed(m, None, "expired: not sent within message_ttl")

    # --- delivery confirmation -----------------------------------------------------

    def confirm_delivery(
        self, message_id: str, success: bool, timestamp: float | None = None, error: str | None = None
    ) -> bool:
        """Report the fate of a sent message by our id; ``False`` if it was already final.

        ``timestamp`` (the provider's Unix time of the report) and ``error`` are kept on
        the failed send when ``success`` is false.

        ``ValueError`` for an id this sender never issued (or forgot, see
        ``ledger.OUTCOME_HISTORY``), or for a message not yet sent.
        """
        return self._ledger.confirm(message_id, success, timestamp, error)

    def handle_status(self, status: Status | bytes | dict[str, Any]) -> bool:
        """Apply one ``statuses`` object of the messages webhook; ``True`` if it settled a message.

        ``delivered`` and ``read`` confirm, ``failed`` dead-letters with the status's
        error code and title, ``sent`` only notes progress. A status for a ``wamid``
        whose send has not returned yet is kept until it does.
        """
        return self._ledger.apply_status(status)

    def handle_webhook(self, body: bytes | WebhookPayload) -> int:
        """Apply every status in a whole webhook body; returns how many settled a message."""
        return self._ledger.apply_webhook(body)

    # --- introspection ---------------------------------------------------------------

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker; ``sender.breaker.add_listener(fn)`` observes its state changes."""
        return self._breaker

    def state(self, message_id: str) -> str:
        """The state of one message (see :class:`MessageState`); ``ValueError`` for an unknown id."""
        return self._ledger.state(message_id)

    def queue_status(self) -> dict[str, dict[str, int]]:
        """Messages per priority per state: queued, in flight, awaiting confirmation, retrying, dead-lettered."""
        return self._ledger.queue_status()

    def stats(self) -> dict[str, Any]:
        """Counters (accepted, sent, confirmed, failed, retries, throttle events...), the current
        adaptive rate, the breaker state and p50/p99 send latency in seconds."""
        counts, attempts, h = self._ledger.counts, self._attempts, self._attempts.latency
        return {
            **counts,
            "retries": attempts.retries,
            "throttle_events": attempts.throttle_events,
            "pair_rate_holds": attempts.pair_rate_holds,
            "coalesced": self._scheduler.coalesced,
            "duplicates": self._idempotency.duplicates,
            "unfinished": len(self._ledger.live),
            "rate": self._limits.rate,
            "rate_limit": self._limits.ceiling,
            "breaker": self._breaker.state.value,
            "latency_p50": h.quantile(0.5) if h.count else 0.0,
            "latency_p99": h.quantile(0.99) if h.count else 0.0,
        }

    def dead_letters(self) -> list[FailedSend]:
        """Every failed send so far, oldest first."""
        return self._failed.all()

    def left_over(self) -> list[LeftOver]:
        """Messages still unfinished when the sender closed (empty before ``close``)."""
        return list(self._left_over)

    # --- dispatch --------------------------------------------------------------------

    async def _dispatch(self) -> None:
        cfg = self.config
        scheduler, ledger, breaker = self._scheduler, self._ledger, self._breaker
        while True:
            now = self._clock()
            scheduler.release_due(now)
            ledger.expire_confirmations(now)
            wait = _earliest(scheduler.next_due(now), ledger.next_deadline(now))
            if len(self._rounds) < cfg.max_concurrent_batches:
                if breaker.state is BreakerState.OPEN:
                    wait = _earliest(wait, breaker.open_until - now)
                else:
                    # Between rounds one small express round may serve the high priority.
                    express = now < self._next_round_at
                    if express and (self._express_used or not scheduler.has_ready(HIGH)):
                        wait = _earliest(wait, self._next_round_at - now)
                    else:
                        size = cfg.priority_batch_size if express else cfg.base_batch_size
                        chains, blocked = scheduler.take_round(now, size, 1 if express else len(PRIORITIES))
                        if chains:
                            self._express_used = express
                            if not express:
                                self._next_round_at = now + cfg.min_delay_between_batches
                            task = asyncio.create_task(self._attempts.run_round(chains))
                            self._rounds.add(task)
                            task.add_done_callback(self._round_done)
                            continue
                        # The round may have parked recipients on new timers: wait for those too.
                        wait = _earliest(_earliest(scheduler.next_due(now), ledger.next_deadline(now)), blocked)
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

    def _round_done(self, task: asyncio.Task[None]) -> None:
        self._rounds.discard(task)
        self._wake.set()

    def _on_breaker_change(self, old: BreakerState, new: BreakerState) -> None:
        log.warning("whatsapp circuit breaker %s → %s", old.value, new.value)
        self._wake.set()

    def __repr__(self) -> str:
        unfinished, rate, breaker = len(self._ledger.live), self._limits.rate, self._breaker.state.value
        return f"BatchSender(unfinished={unfinished}, rate={rate:.1f}/s, breaker={breaker})"


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
