"""What a handler gets besides the message: ``ctx.reply`` and the other senders, ``ctx.media``, ``ctx.sheets``...

A handler runs in a worker process; the BatchSender runs in the supervisor, so that one set
of rate limits covers every worker. ``ctx.reply``, ``ctx.send`` and the ``reply_*`` helpers
therefore queue messages in the context, and the worker returns them to the supervisor over the
engine's channel when the handler finishes; the supervisor commits them to its outbox and hands
them to the sender. Each outbound message carries an idempotency key derived from the inbound
``wamid`` and its position among the handler's messages, so a message that is delivered twice
(Meta's re-delivery after a restart, or the engine's at-least-once retry) is answered once.

When the wamid is known: each send returns a :class:`SendHandle`. The message leaves only after
the handler returns, so its wamid cannot exist while the handler runs: ``await handle.sent()``
inside the handler would wait for itself. It raises :class:`ReplyPending` at once instead of
deadlocking. After the handler, the supervisor knows the outcome by the handle's ``key``
(``Runtime.reply_outcome(key)``: queued, sent with its wamid, or failed with the reason). A
handler that needs a wamid now uses ``await ctx.send_now(message)``, which sends from the
worker at once, outside the sender's rate limits, retries and outbox: for the rare message
whose wamid matters more than those.

Calls that need an answer inside the handler go from the worker itself, with the access token
(:mod:`sluiceway.app.media`): ``ctx.media.download(msg.image)``, ``ctx.upload_media(...)``,
``ctx.mark_read(typing=True)``, ``ctx.send_now(...)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import msgspec

from sluiceway.app.inbound import InboundMessage
from sluiceway.app.settings import Settings
from sluiceway.errors import SluicewayError
from sluiceway.whatsapp.messages import Context as ReplyContext
from sluiceway.whatsapp.messages import ListSection, OutboundMessage, ReplyButton

if TYPE_CHECKING:
    from sluiceway.app.media import WorkerGraph
    from sluiceway.whatsapp.media import MediaClient

SendPriority = Literal["high", "normal", "low"]

#: Replies quote the message they answer (the Cloud API's ``context.message_id``), so the
#: tenant sees which question each answer belongs to when several are in flight.
QUOTE_REPLIES = True


class Outgoing(msgspec.Struct, array_like=True, frozen=True):
    """One message a handler asked to send, as it travels from the worker to the supervisor."""

    message: OutboundMessage
    priority: SendPriority
    idempotency_key: str
    #: The business number to send from ("" for the default one): the number the message came to.
    phone_number_id: str = ""
    #: When the recipient last wrote to that number as far as the handler's side knew (Unix
    #: time, 0 for unknown): committed with the reply, so the 24-hour window check after a
    #: restart still knows it.
    window_opened_at: float = 0.0


class ReplyPending(SluicewayError, RuntimeError):
    """A reply's outcome was awaited inside the handler that sends it (it leaves after the handler returns)."""


class SendHandle(msgspec.Struct, frozen=True):
    """What ``ctx.reply``/``ctx.send`` return: the message queued and the ``key`` its outcome is kept under.

    The message leaves after the handler returns (see the module docstring): ``await sent()``
    raises :class:`ReplyPending`; ``Runtime.reply_outcome(handle.key)`` answers afterwards.
    """

    key: str
    message: OutboundMessage
    phone_number_id: str = ""

    async def sent(self) -> NoReturn:
        """Always :class:`ReplyPending`: inside the handler the message has not left yet."""
        raise ReplyPending(
            f"the message {self.key} is sent after the handler returns, so its wamid cannot be awaited inside it; "
            "use `await ctx.send_now(message)` for a wamid now, or Runtime.reply_outcome(key) afterwards"
        )


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
        phone_number_id: the business number the message came to; replies leave from it.

    Example::

        @bot.on_message
        async def handle(msg, ctx):
            rows = await ctx.sheets.get_values(ctx.settings.spreadsheet_id, "Units!A2:F")
            await ctx.reply(f"{len(rows)} units on file")

    Every sender builds the message at once, so Meta's limits (≤ 3 buttons, titles ≤ 20
    characters, captions ≤ 1,024...) raise ``ValueError`` naming the field and the limit
    inside the handler, before anything is queued.

    Warning: messages leave when the handler returns, not when ``reply`` is called: a
    handler that fails sends nothing, and its retry sends everything once.
    """

    def __init__(
        self,
        message: InboundMessage,
        settings: Settings,
        sheets: Any,
        attempt: int = 1,
        graph: WorkerGraph | None = None,
    ) -> None:
        self.message = message
        self.settings = settings
        self.sheets = sheets
        self.attempt = attempt
        self.metrics = Metrics()
        self.phone_number_id = message.phone_number_id or settings.whatsapp_phone_number_id or ""
        self._graph = graph
        self._outgoing: list[Outgoing] = []

    def _key(self) -> str:
        return f"{self.message.id}#{len(self._outgoing)}"

    def _quote(self) -> ReplyContext | None:
        return ReplyContext(message_id=self.message.id) if QUOTE_REPLIES else None

    async def reply(self, text: str, priority: SendPriority = "normal", *, preview_url: bool = False) -> SendHandle:
        """Answer the sender with ``text`` (at most 4,096 characters), quoting their message."""
        message = OutboundMessage.of_text(self.message.sender, text, preview_url=preview_url)
        return await self.send(msgspec.structs.replace(message, context=self._quote()), priority)

    async def reply_media(
        self,
        kind: str,
        link: str | None = None,
        *,
        media_id: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        priority: SendPriority = "normal",
    ) -> SendHandle:
        """Answer with an image, audio, video, document or sticker, by public ``link`` or uploaded ``media_id``."""
        message = OutboundMessage.of_media(
            self.message.sender, kind, link, media_id=media_id, caption=caption, filename=filename
        )
        return await self.send(msgspec.structs.replace(message, context=self._quote()), priority)

    async def reply_image(
        self,
        link: str | None = None,
        *,
        media_id: str | None = None,
        caption: str | None = None,
        priority: SendPriority = "normal",
    ) -> SendHandle:
        """Answer with an image (``link`` or ``media_id``, e.g. from ``upload_media``) and an optional caption."""
        return await self.reply_media("image", link, media_id=media_id, caption=caption, priority=priority)

    async def reply_buttons(
        self,
        body: str,
        buttons: Sequence[ReplyButton | tuple[str, str]],
        *,
        header: str | None = None,
        footer: str | None = None,
        priority: SendPriority = "normal",
    ) -> SendHandle:
        """Answer with 1-3 reply buttons, each a ``ReplyButton`` or an ``(id, title)`` pair (title ≤ 20 characters)."""
        chosen = [b if isinstance(b, ReplyButton) else ReplyButton(*b) for b in buttons]
        message = OutboundMessage.of_buttons(self.message.sender, body, chosen, header=header, footer=footer)
        return await self.send(msgspec.structs.replace(message, context=self._quote()), priority)

    async def reply_list(
        self,
        body: str,
        button: str,
        sections: Sequence[ListSection],
        *,
        header: str | None = None,
        footer: str | None = None,
        priority: SendPriority = "normal",
    ) -> SendHandle:
        """Answer with a list ``button`` opens: at most 10 sections and 10 rows in all."""
        message = OutboundMessage.of_list(self.message.sender, body, button, sections, header=header, footer=footer)
        return await self.send(msgspec.structs.replace(message, context=self._quote()), priority)

    async def reply_location(
        self, latitude: float, longitude: float, *, name: str | None = None, address: str | None = None
    ) -> SendHandle:
        """Answer with a location pin."""
        message = OutboundMessage.of_location(self.message.sender, latitude, longitude, name=name, address=address)
        return await self.send(message)

    async def react(self, emoji: str, message_id: str | None = None) -> SendHandle:
        """React with ``emoji`` to the message being handled (or ``message_id``); "" removes the reaction."""
        return await self.send(OutboundMessage.of_reaction(self.message.sender, message_id or self.message.id, emoji))

    async def send_template(
        self,
        to: str,
        name: str,
        language: str,
        components: list[dict[str, Any]] | None = None,
        *,
        priority: SendPriority = "normal",
    ) -> SendHandle:
        """Send the approved template ``name`` in ``language`` (e.g. ``en_US``) with its parameter ``components``.

        A template may go to anyone at any time; free-form messages only within 24 hours of the user's last one.
        """
        return await self.send(OutboundMessage.of_template(to, name, language, components), priority)

    async def send(
        self, message: OutboundMessage, priority: SendPriority = "normal", *, phone_number_id: str | None = None
    ) -> SendHandle:
        """Send any Cloud API message to anyone, from the number the message came to (or ``phone_number_id``)."""
        if priority not in ("high", "normal", "low"):
            raise ValueError(f"priority must be 'high', 'normal' or 'low', got {priority!r}")
        if not isinstance(message, OutboundMessage):
            raise TypeError(f"send() takes an OutboundMessage, got {type(message).__name__}")
        number = self.phone_number_id
        if phone_number_id is not None:
            known = self.settings.phone_numbers
            if phone_number_id not in known:
                raise ValueError(f"phone_number_id {phone_number_id!r} is not one of the bot's numbers {list(known)}")
            number = phone_number_id
        # The inbound message opened its sender's window on this number when it arrived.
        opened = self.message.received_at if message.to.lstrip("+") == self.message.sender.lstrip("+") else 0.0
        key = self._key()
        self._outgoing.append(Outgoing(message, priority, key, number, opened))
        return SendHandle(key, message, number)

    # -- calls answered inside the handler, from the worker ------------------------------------

    def _worker_graph(self) -> WorkerGraph:
        if self._graph is None:
            raise RuntimeError("this context has no Graph API access (no access token was given to the worker)")
        return self._graph

    @property
    def media(self) -> MediaClient:
        """Media of the number the message came to: ``await ctx.media.download(msg.image)`` (or a media id).

        Returns a ``DownloadedMedia``: ``data`` (bytes) up to ``media_spool_bytes``, else ``path``
        (a file the handler should delete). Refused over ``media_max_bytes`` (``MediaTooLarge``)
        and when the MIME type differs from the declared one (``MediaTypeMismatch``).
        """
        return self._worker_graph().media(self.phone_number_id)

    async def upload_media(self, data_or_path: bytes | str | os.PathLike[str], mime_type: str) -> str:
        """Upload a file (bytes or a path) for this number; its media id, for ``reply_image(media_id=...)`` etc."""
        return await self.media.upload(data_or_path, mime_type, phone_number_id=self.phone_number_id)

    async def mark_read(self, *, typing: bool = True) -> None:
        """Mark the message read (blue ticks) now and, with ``typing``, show "typing..." until the reply (≤ 25 s).

        Sent from the worker at once, not through the sender: it is meant for the start of a slow handler.
        """
        await self._worker_graph().mark_read(self.phone_number_id, self.message.id, typing=typing)

    async def send_now(self, message: OutboundMessage) -> str:
        """Send ``message`` from the worker at once and return its wamid (``SendError`` on failure).

        Warning: outside the sender's rate limits, retries, outbox and 24-hour window check; not
        idempotent on a handler's retry. For the rare message whose wamid the handler needs now.
        """
        return (await self._worker_graph().send_now(self.phone_number_id, message)).message_id

    def result(self) -> HandlerResult:
        """The messages and metrics this handler produced, and this worker's cache counters."""
        hits = misses = 0
        if self.sheets is not None:
            stats = self.sheets.cache.stats()
            hits, misses = int(stats["hits"] + stats["stale_hits"]), int(stats["misses"])
        return HandlerResult(list(self._outgoing), list(self.metrics.samples), os.getpid(), hits, misses)
