"""The supervisor's side of a bot: inbound messages into the engine, handler results out to the sender."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from sluiceway.app.context import HandlerResult
from sluiceway.app.inbound import InboundMessage
from sluiceway.app.priority import PriorityLevel
from sluiceway.engine import Backpressure, MessageParallelizer, Priority
from sluiceway.whatsapp.messages import OutboundMessage

logger = logging.getLogger("sluiceway.app")

_PRIORITY = {"high": Priority.HIGH, "normal": Priority.NORMAL, "low": Priority.LOW}


class Outbox(Protocol):
    """Where replies go: the BatchSender's synchronous ``enqueue_nowait``."""

    def enqueue_nowait(
        self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None
    ) -> str: ...


class MetricsSink(Protocol):
    def record_metric(self, name: str, value: float, **labels: str) -> None: ...


class FailedMessage(msgspec.Struct, frozen=True):
    """An inbound message whose handler failed on every attempt: it got no reply."""

    message: InboundMessage
    error: str
    failed_at: float


class SinkStats(msgspec.Struct):
    """Counters of the bridge between ingress, engine and sender."""

    accepted: int = 0
    handled: int = 0
    failed: int = 0
    replies: int = 0
    outstanding: int = 0


class EngineSink:
    """Feeds accepted webhooks to the engine and hands each handler's replies to the sender.

    Each message goes in with ``engine.submit`` (ordering key = the sender), whose result is
    the handler's ``HandlerResult``; its messages are passed to ``outbox.enqueue_nowait`` with their
    idempotency keys, in order. ``enqueue`` returns as soon as the message is in the engine.

    Backpressure: at most ``high_water`` messages may be outstanding (accepted, not yet
    handled); past that ``enqueue`` waits until they drop to ``low_water`` (hysteresis), which
    the ingress turns into a slow answer and then a 503.

    Example::

        sink = EngineSink(engine, sender, high_water=1000, low_water=100)
        ingress = WebhookIngress.from_settings(settings, sink=sink, status_sink=sender)

    Warning: a message whose handler fails on every attempt gets no reply: it is kept in
    ``dead_letters`` (in memory, with the error) until ``replay_dead_letters`` sends it
    through again or ``purge_dead_letters`` drops it, and is logged.
    """

    def __init__(
        self,
        engine: MessageParallelizer,
        outbox: Outbox,
        *,
        high_water: int,
        low_water: int,
        metrics: MetricsSink | None = None,
        on_handled: Callable[[InboundMessage, HandlerResult | None], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= low_water < high_water:
            raise ValueError(f"need 0 <= low_water < high_water, got {low_water} and {high_water}")
        self._engine = engine
        self._outbox = outbox
        self._metrics = metrics
        self._on_handled = on_handled
        self._high = high_water
        self._low = low_water
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._clock = clock
        self.dead_letters: list[FailedMessage] = []
        self._cache_by_worker: dict[int, tuple[int, int]] = {}
        self.stats = SinkStats()

    async def enqueue(self, payload: InboundMessage, priority: PriorityLevel, ordering_key: str) -> object:
        """Put ``payload`` into the engine; waits while ``high_water`` messages are outstanding."""
        while not self._open.is_set():
            await self._open.wait()
        builtins = msgspec.to_builtins(payload)
        try:
            # Accepted now, settled by a callback: no task and no extra loop turn per message.
            submission: asyncio.Future[Any] = self._engine.submit_nowait(
                builtins, _PRIORITY[priority], ordering_key=ordering_key
            )
        except Backpressure:
            # The engine's own queue is full: wait for room as submit() does. submit() accepts
            # in its first step, so start it and let an error there reach the ingress.
            submission = asyncio.ensure_future(
                self._engine.submit(builtins, _PRIORITY[priority], ordering_key=ordering_key)
            )
            await asyncio.sleep(0)
            if submission.done() and submission.exception() is not None:
                raise submission.exception() from None  # type: ignore[misc]  # the backpressure was handled
        self.stats.accepted += 1
        self.stats.outstanding += 1
        self._idle.clear()
        if self.stats.outstanding >= self._high:
            self._open.clear()
        submission.add_done_callback(functools.partial(self._settle, payload))
        return payload.id

    def _settle(self, inbound: InboundMessage, submission: asyncio.Future[Any]) -> None:
        result: HandlerResult | None = None
        try:
            if submission.cancelled():
                raise asyncio.CancelledError("the engine dropped the message")
            error = submission.exception()
            if error is not None:
                raise error
            result = msgspec.convert(submission.result(), HandlerResult)
        except (Exception, asyncio.CancelledError) as error:
            self.stats.failed += 1
            self.dead_letters.append(FailedMessage(inbound, f"{type(error).__name__}: {error}", self._clock()))
            logger.error("message %s from %s got no reply: %s", inbound.id, inbound.sender, error)
        else:
            self.stats.handled += 1
            if result.worker_pid:
                self._cache_by_worker[result.worker_pid] = (result.cache_hits, result.cache_misses)
            for outgoing in result.outgoing:
                try:
                    key = outgoing.idempotency_key
                    self._outbox.enqueue_nowait(outgoing.message, outgoing.priority, idempotency_key=key)
                    self.stats.replies += 1
                except Exception:
                    logger.exception("the sender refused a reply to %s", inbound.id)
            if self._metrics is not None:
                for sample in result.metrics:
                    self._metrics.record_metric(sample.name, sample.value, **sample.labels)
        finally:
            self.stats.outstanding -= 1
            if not self._open.is_set() and self.stats.outstanding <= self._low:
                self._open.set()
            if self.stats.outstanding == 0:
                self._idle.set()
            if self._on_handled is not None:
                self._on_handled(inbound, result)

    def cache_totals(self) -> tuple[int, int]:
        """Sheets cache hits and misses over every worker that has reported (dead ones included)."""
        counts = list(self._cache_by_worker.values())
        return sum(h for h, _ in counts), sum(m for _, m in counts)

    async def replay_dead_letters(self, classify: Callable[[str], PriorityLevel]) -> int:
        """Send every failed message through the handler again (replies keep their idempotency keys)."""
        letters, self.dead_letters = self.dead_letters, []
        for letter in letters:
            await self.enqueue(letter.message, classify(letter.message.text), letter.message.sender)
        return len(letters)

    def purge_dead_letters(self) -> int:
        """Forget every failed message; returns how many."""
        count, self.dead_letters = len(self.dead_letters), []
        return count

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Return once every accepted message is handled and its replies are with the sender."""
        await asyncio.wait_for(self._idle.wait(), timeout)
