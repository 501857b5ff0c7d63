"""The message a bot's handler sees (``InboundMessage``), normalised from the messages webhook.

The webhook's own shapes (``WebhookPayload``, ``Status``...) live in ``sluiceway.whatsapp.webhooks``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sluiceway.whatsapp.webhooks import WebhookMessage, WebhookPayload


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message from a WhatsApp user, as a handler receives it (``msg`` in ``handle(msg, ctx)``).

    ``text`` is the message text for text messages, the caption of media, the title of a
    tapped button or list item, and "" otherwise; ``data`` keeps the type-specific object
    (e.g. ``{"latitude": ..., "longitude": ...}`` for a location) as plain builtins.
    ``received_at`` is the wall-clock time (``time.time()``) the ingress accepted it.

    Example::

        @bot.on_message
        async def handle(msg: InboundMessage, ctx: Context) -> None:
            await ctx.reply(f"You wrote {msg.text!r}")
    """

    id: str
    sender: str
    type: str
    text: str = ""
    timestamp: int = 0
    sender_name: str = ""
    phone_number_id: str = ""
    reply_to: str = ""
    data: dict[str, Any] = {}
    received_at: float = 0.0


def _text_of(message: WebhookMessage) -> str:
    if message.text is not None:
        return message.text.body
    if message.button is not None:
        return message.button.text
    if message.interactive is not None:
        reply = message.interactive.button_reply or message.interactive.list_reply
        return reply.title if reply is not None else ""
    for media in (message.image, message.video, message.document):
        if media is not None:
            return media.caption
    return ""


def inbound_messages(payload: WebhookPayload, received_at: float) -> list[InboundMessage]:
    """Every user message in ``payload``, in delivery order, normalised for handlers."""
    out: list[InboundMessage] = []
    for entry in payload.entry:
        for change in entry.changes:
            value = change.value
            names = {c.wa_id: c.profile.name for c in value.contacts if c.profile is not None}
            phone_number_id = value.metadata.phone_number_id if value.metadata is not None else ""
            for message in value.messages:
                specific = getattr(message, message.type, None) if message.type in _TYPED_FIELDS else None
                out.append(
                    InboundMessage(
                        id=message.id,
                        sender=message.from_,
                        type=message.type,
                        text=_text_of(message),
                        timestamp=int(message.timestamp) if message.timestamp.isdigit() else 0,
                        sender_name=names.get(message.from_, ""),
                        phone_number_id=phone_number_id,
                        reply_to=message.context.id if message.context is not None else "",
                        data=msgspec.to_builtins(specific) if specific is not None else {},
                        received_at=received_at,
                    )
                )
    return out


_TYPED_FIELDS = frozenset(
    {"text", "image", "audio", "video", "document", "sticker", "location", "button", "interactive", "reaction"}
)
