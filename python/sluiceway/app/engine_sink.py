"""The supervisor's side of a bot: inbound messages into the engine, handler results out to the sender."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from sluiceway import fault_points
from sluiceway.app.context import HandlerResult, Outgoing
from sluiceway.app.inbound import InboundMessage
from sluiceway.app.on_error import carried_replies
from sluiceway.app.priority import PriorityLevel
from sluiceway.app.windows import ConversationWindows
from sluiceway.engine import Backpressure, BrokerUnavailable, DuplicateMessage, MessageParallelizer, Priority
from sluiceway.journal import JournalError

logger = logging.getLogger("sluiceway.app")

_PRIORITY = {"high": Priority.HIGH, "normal": Priority.NORMAL, "low": Priority.LOW}
#: Seconds between tries while the engine's own queue pushes back (it offers no wait that
#: keeps a ``dedup_key``); the ingress bounds the whole wait with its ``enqueue_timeout``.
_BACKPRESSURE_POLL = 0.01


class ReplyOutbox(Protocol):
    """Where replies go (the runtime's ``DurableOutbox``): kept in order, on to the sender."""

    def put(self, reply: Outgoing, inbound_wamid: str | None, received_at: float | None = None) -> None: ...


class MetricsSink(Protocol):
    def record_metric(self, name: str, value: float, **labels: str) -> None: ...


class SinkStats(msgspec.Struct):
    """Counters of the bridge between ingress, engine and sender."""

    accepted: int = 0
    duplicates: int = 0
    #: Messages a restart found unfinished in the journal and ran again.
    recovered: int = 0
    handled: int = 0
    failed: int = 0
    replies: int = 0
    outstanding: int = 0


class EngineSink:
    """Feeds accepted webhooks to the engine and hands each handler's replies to the sender.

    Each message goes in with ``engine.accept`` (ordering key = the sender, dedup key = its
    ``wamid``), whose result is the handler's ``HandlerResult``; its messages are passed to
    ``outbox.put``, in order. ``enqueue`` returns once
    the message is committed (with a journal: durable), or once the engine said its ``wamid``
    was accepted before. Messages a restart re-queues from the journal reach ``adopt``, so
    their replies are sent too.

    Backpressure: at most ``high_water`` messages may be outstanding (accepted, not yet
    handled); past that ``enqueue`` waits until they drop to ``low_water`` (hysteresis), which
    the ingress turns into a slow answer and then a 503.

    Example::

        sink = EngineSink(engine, outbox, high_water=1000, low_water=100)
        ingress = WebhookIngress.from_settings(settings, sink=sink, status_sink=sender)

    Warning: a message whose handler fails on every attempt gets no reply (but what the bot's
    ``on_error`` sent, which rides on the exception: ``sluiceway.app.on_error``): the engine keeps
    it as a dead letter (in the journal, with the error) until ``engine.replay_dead_letters``
    sends it through again (its reply then reaches ``adopt``) or ``purge_dead_letters`` drops it.
    """

    def __init__(
        self,
        engine: MessageParallelizer,
        outbox: ReplyOutbox,
        *,
        high_water: int,
        low_water: int,
        metrics: MetricsSink | None = None,
        on_handled: Callable[[InboundMessage, HandlerResult | None], None] | None = None,
        windows: ConversationWindows | None = None,
    ) -> None:
        if not 0 <= low_water < high_water:
            raise ValueError(f"need 0 <= low_water < high_water, got {low_water} and {high_water}")
        self._engine = engine
        self._outbox = outbox
        self._metrics = metrics
        self._on_handled = on_handled
        #: Each accepted message opens its sender's 24-hour window on the number it came to.
        self._windows = windows
        self._high = high_water
        self._low = low_water
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._cache_by_worker: dict[int, tuple[int, int]] = {}
        self.stats = SinkStats()

    async def enqueue(self, payload: InboundMessage, priority: PriorityLevel, ordering_key: str) -> bool:
        """Put ``payload`` into the engine: True once committed, False if its ``wamid`` was accepted before.

        Waits while ``high_water`` messages are outstanding. ``JournalError`` if the journal
        could not commit it (then it was not accepted; Meta re-delivers a 503).
        """
        while not self._open.is_set():
            await self._open.wait()
        builtins = msgspec.to_builtins(payload)
        while True:
            try:
                accepted = self._engine.accept(
                    builtins, _PRIORITY[priority], ordering_key=ordering_key, dedup_key=payload.id
                )
                break
            except Backpressure:
                await asyncio.sleep(_BACKPRESSURE_POLL)
        # Settled by a callback (no task per message), attached before the commit is awaited:
        # a request that times out meanwhile still gets its reply once the commit lands.
        # With a broker the node that runs it hands the result to ``adopt`` instead.
        if self._engine.broker is None:
            self._track(payload, accepted.result)
        # Shielded: a timed-out request must not cancel the engine's own commit future.
        new = await asyncio.shield(accepted.committed)
        if new:
            self.stats.accepted += 1
            if self._windows is not None:
                self._windows.opened(payload.phone_number_id, payload.sender, payload.received_at)
        else:
            self.stats.duplicates += 1
        return new

    def adopt(self, payload: Any, result: asyncio.Future[Any]) -> None:
        """A message a restart re-queued from the journal: its reply goes out like any other's.

        Pass it as ``MessageParallelizer(..., on_recovered=sink.adopt)``.
        """
        self.stats.recovered += 1
        inbound = msgspec.convert(payload, InboundMessage)
        if self._windows is not None:
            self._windows.opened(inbound.phone_number_id, inbound.sender, inbound.received_at)
        self._track(inbound, result)

    def _track(self, payload: InboundMessage, result: asyncio.Future[Any]) -> None:
        self.stats.outstanding += 1
        self._idle.clear()
        if self.stats.outstanding >= self._high:
            self._open.clear()
        result.add_done_callback(functools.partial(self._settle, payload))

    def _settle(self, inbound: InboundMessage, submission: asyncio.Future[Any]) -> None:
        result: HandlerResult | None = None
        accepted = True
        try:
            if submission.cancelled():
                raise asyncio.CancelledError("the engine dropped the message")
            error = submission.exception()
            if error is not None:
                raise error
            result = msgspec.convert(submission.result(), HandlerResult)
        except (DuplicateMessage, JournalError, BrokerUnavailable):
            accepted = False  # enqueue() told the ingress (200 for a duplicate, 503 for the journal)
        except (Exception, asyncio.CancelledError) as error:
            self.stats.failed += 1
            logger.error(
                "message %s from %s got no reply: %s: %s", inbound.id, inbound.sender, type(error).__name__, error
            )
            for outgoing in carried_replies(error):  # what the bot's on_error sent instead
                self._outbox.put(outgoing, inbound.id, inbound.received_at)
                self.stats.replies += 1
        else:
            self.stats.handled += 1
            if result.worker_pid:
                self._cache_by_worker[result.worker_pid] = (result.cache_hits, result.cache_misses)
            fault_points.reached("after_handler")
            for outgoing in result.outgoing:
                self._outbox.put(outgoing, inbound.id, inbound.received_at)
                self.stats.replies += 1
            if self._metrics is not None:
                for sample in result.metrics:
                    self._metrics.record_metric(sample.name, sample.value, **sample.labels)
        finally:
            self.stats.outstanding -= 1
            if not self._open.is_set() and self.stats.outstanding <= self._low:
                self._open.set()
            if self.stats.outstanding == 0:
                self._idle.set()
            if accepted and self._on_handled is not None:
                self._on_handled(inbound, result)

    def cache_totals(self) -> tuple[int, int]:
        """Sheets cache hits and misses over every worker that has reported (dead ones included)."""
        counts = list(self._cache_by_worker.values())
        return sum(h for h, _ in counts), sum(m for _, m in counts)

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Return once every accepted message is handled and its replies are with the sender."""
        await asyncio.wait_for(self._idle.wait(), timeout)
