"""What a handler gets besides the message: ``ctx.reply``, ``ctx.send``, ``ctx.sheets``, ``ctx.metrics``.

A handler runs in a worker process; the BatchSender runs in the supervisor, so that one set
of rate limits covers every worker. ``ctx.reply`` and ``ctx.send`` therefore queue messages in
the context, and the worker returns them to the supervisor over the engine's channel when the
handler finishes; the supervisor hands them to the sender. Each outbound message carries an
idempotency key derived from the inbound ``wamid`` and its position among the handler's
messages, so a message that is delivered twice (Meta's re-delivery after a restart, or the
engine's at-least-once retry) is answered once.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import msgspec

from sluiceway.app.inbound import InboundMessage
from sluiceway.app.settings import Settings
from sluiceway.whatsapp.messages import Context as ReplyContext
from sluiceway.whatsapp.messages import OutboundMessage, Text

SendPriority = Literal["high", "normal", "low"]

#: Replies quote the message they answer (the Cloud API's ``context.message_id``), so the
#: tenant sees which question each answer belongs to when several are in flight.
QUOTE_REPLIES = True


class Outgoing(msgspec.Struct, array_like=True, frozen=True):
    """One message a handler asked to send, as it travels from the worker to the supervisor."""

    message: OutboundMessage
    priority: SendPriority
    idempotency_key: str


class MetricSample(msgspec.Struct, array_like=True, frozen=True):
    name: str
    value: float
    labels: dict[str, str]


class HandlerResult(msgspec.Struct, array_like=True, frozen=True):
    """What a worker returns for one inbound message: the messages to send and the metrics recorded.

    It also carries the worker's cumulative Sheets cache counters (cheap to read), so the
    supervisor can show a hit rate across worker processes without another channel.
    """

    outgoing: list[Outgoing] = []
    metrics: list[MetricSample] = []
    worker_pid: int = 0
    cache_hits: int = 0
    cache_misses: int = 0


class Metrics:
    """``ctx.metrics``: custom metrics, forwarded to the PerformanceMonitor with the handler's result.

    Example::

        ctx.metrics.record("intent", 1, intent="viewing")
    """

    def __init__(self) -> None:
        self.samples: list[MetricSample] = []

    def record(self, name: str, value: float, **labels: str) -> None:
        """Record ``value`` for the metric ``name`` (labels become Prometheus labels)."""
        if not name:
            raise ValueError("metric name must not be empty")
        self.samples.append(MetricSample(name, float(value), {k: str(v) for k, v in labels.items()}))


class Context:
    """The per-message context passed to ``handle(msg, ctx)``.

    Attributes:
        message: the inbound message being handled.
        settings: the bot's ``Settings``.
        sheets: this worker's cached ``SheetsClient`` (``None`` if the bot has no spreadsheet).
        metrics: custom metrics (see ``Metrics``).
        attempt: 1 on the first delivery, more on retries.

    Example::

        @bot.on_message
        async def handle(msg, ctx):
            rows = await ctx.sheets.get_values(ctx.settings.spreadsheet_id, "Units!A2:F")
            await ctx.reply(f"{len(rows)} units on file")

    Warning: messages leave when the handler returns, not when ``reply`` is called: a
    handler that fails sends nothing, and its retry sends everything once.
    """

    def __init__(self, message: InboundMessage, settings: Settings, sheets: Any, attempt: int = 1) -> None:
        self.message = message
        self.settings = settings
        self.sheets = sheets
        self.attempt = attempt
        self.metrics = Metrics()
        self._outgoing: list[Outgoing] = []

    def _key(self) -> str:
        return f"{self.message.id}#{len(self._outgoing)}"

    async def reply(self, text: str, priority: SendPriority = "normal") -> None:
        """Answer the sender with ``text`` (at most 4,096 characters), quoting their message."""
        quote = ReplyContext(message_id=self.message.id) if QUOTE_REPLIES else None
        outbound = OutboundMessage(to=self.message.sender, type="text", text=Text(text), context=quote)
        await self.send(outbound, priority)

    async def send(self, message: OutboundMessage, priority: SendPriority = "normal") -> None:
        """Send any Cloud API message (template, media, interactive) to anyone."""
        if priority not in ("high", "normal", "low"):
            raise ValueError(f"priority must be 'high', 'normal' or 'low', got {priority!r}")
        if not isinstance(message, OutboundMessage):
            raise TypeError(f"send() takes an OutboundMessage, got {type(message).__name__}")
        self._outgoing.append(Outgoing(message, priority, self._key()))

    def result(self) -> HandlerResult:
        """The messages and metrics this handler produced, and this worker's cache counters."""
        hits = misses = 0
        if self.sheets is not None:
            stats = self.sheets.cache.stats()
            hits, misses = int(stats["hits"] + stats["stale_hits"]), int(stats["misses"])
        return HandlerResult(list(self._outgoing), list(self.metrics.samples), os.getpid(), hits, misses)
