"""The WhatsApp Cloud API's webhook payloads as msgspec Structs, and the message a handler sees.

Shapes follow Meta's "messages webhook reference"
(developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages):
a ``whatsapp_business_account`` object whose ``entry[].changes[].value`` carries ``metadata``,
``contacts``, and either ``messages`` (a user wrote to the business) or ``statuses`` (sent,
delivered, read or failed for a message the business sent). Unknown fields are ignored, so new
fields Meta adds never break decoding; a missing required field is a 400 with msgspec's reason.
"""

from __future__ import annotations

from typing import Any

import msgspec

# The sender's Structs for the shapes both sides share (error objects, metadata).
from sluiceway.whatsapp.messages import Metadata, StatusError


class Profile(msgspec.Struct, frozen=True):
    name: str = ""


class Contact(msgspec.Struct, frozen=True):
    wa_id: str
    profile: Profile | None = None


class Text(msgspec.Struct, frozen=True):
    body: str


class Media(msgspec.Struct, frozen=True):
    """image, audio, video, document and sticker messages."""

    id: str
    mime_type: str = ""
    caption: str = ""
    filename: str = ""


class Location(msgspec.Struct, frozen=True):
    latitude: float
    longitude: float
    name: str = ""
    address: str = ""


class Button(msgspec.Struct, frozen=True):
    """A tap on a quick-reply button of a template."""

    text: str
    payload: str = ""


class Reply(msgspec.Struct, frozen=True):
    id: str
    title: str
    description: str = ""


class Interactive(msgspec.Struct, frozen=True):
    """A reply to an interactive message (``button_reply`` or ``list_reply``)."""

    type: str
    button_reply: Reply | None = None
    list_reply: Reply | None = None


class Reaction(msgspec.Struct, frozen=True):
    message_id: str
    emoji: str = ""


class MessageContext(msgspec.Struct, frozen=True):
    """Present when the user replied to (quoted) an earlier message."""

    id: str = ""
    from_: str = msgspec.field(default="", name="from")


class WebhookMessage(msgspec.Struct, frozen=True):
    """One entry of ``value.messages``."""

    from_: str = msgspec.field(name="from")
    id: str
    timestamp: str
    type: str
    text: Text | None = None
    image: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    button: Button | None = None
    interactive: Interactive | None = None
    reaction: Reaction | None = None
    context: MessageContext | None = None
    errors: list[StatusError] = []


class WebhookStatus(msgspec.Struct, frozen=True):
    """One entry of ``value.statuses``: what happened to a message the business sent.

    ``status`` is any string here (the sender's ``Status`` accepts only the kinds it knows):
    a kind Meta adds later must not turn the whole webhook into a 400 and a retry loop.
    """

    id: str
    status: str
    timestamp: str
    recipient_id: str
    errors: list[StatusError] = []
    conversation: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None
    biz_opaque_callback_data: str | None = None


class ChangeValue(msgspec.Struct, frozen=True):
    messaging_product: str = "whatsapp"
    metadata: Metadata | None = None
    contacts: list[Contact] = []
    messages: list[WebhookMessage] = []
    statuses: list[WebhookStatus] = []
    errors: list[StatusError] = []


class Change(msgspec.Struct, frozen=True):
    field: str
    value: ChangeValue


class Entry(msgspec.Struct, frozen=True):
    id: str
    changes: list[Change]


class WebhookPayload(msgspec.Struct, frozen=True):
    """The body of a webhook POST."""

    object: str
    entry: list[Entry]


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


def statuses(payload: WebhookPayload) -> list[WebhookStatus]:
    """Every status update in ``payload``, in delivery order."""
    return [status for entry in payload.entry for change in entry.changes for status in change.value.statuses]


_TYPED_FIELDS = frozenset(
    {"text", "image", "audio", "video", "document", "sticker", "location", "button", "interactive", "reaction"}
)

#: The one decoder for webhook bodies (msgspec decoders are reusable and faster than one-off calls).
DECODER = msgspec.json.Decoder(WebhookPayload)
