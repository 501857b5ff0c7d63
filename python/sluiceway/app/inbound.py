"""The message a bot's handler sees (``InboundMessage``), normalised from the messages webhook.

The webhook's own shapes (``WebhookPayload``, ``InboundMedia``...) live in ``sluiceway.whatsapp.webhooks``;
an ``InboundMessage`` keeps the typed object of its kind (``msg.image``, ``msg.location``...) and says
which kind it is in one word (``msg.kind``), the word routes match on (``sluiceway.app.routing``).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import msgspec

from sluiceway.whatsapp.webhooks import (
    Button,
    InboundAudio,
    InboundInteractive,
    InboundMedia,
    Location,
    Reaction,
    Referral,
    Reply,
    SharedContact,
    System,
    Unsupported,
    WebhookMessage,
    WebhookPayload,
)

#: What a message is, in one word. ``button_reply`` and ``list_reply`` are taps on the bot's
#: interactive messages (Meta's ``interactive`` type); ``quick_reply`` is a tap on a template's
#: quick-reply button (Meta's ``button`` type); ``unsupported`` is whatever Meta cannot deliver
#: to the API (a poll, a view-once photo...) and any kind it adds after this release.
MessageKind = Literal[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "button_reply",
    "list_reply",
    "quick_reply",
    "reaction",
    "system",
    "unsupported",
]
MESSAGE_KINDS: frozenset[str] = frozenset(get_args(MessageKind))
#: The kinds that carry a media object (``msg.media``), downloadable by its id.
MEDIA_KINDS: frozenset[str] = frozenset({"image", "audio", "video", "document", "sticker"})
#: Kinds named as Meta names the message type, each with the object of the same name.
_SAME_NAME_KINDS: frozenset[str] = MEDIA_KINDS | {"location", "contacts", "reaction", "system"}
#: The types whose object ``InboundMessage.data`` has always given as plain builtins.
_DATA_TYPES: frozenset[str] = frozenset(
    {"image", "audio", "video", "document", "sticker", "location", "button", "interactive", "reaction"}
)
#: The webhook fields an ``InboundMessage`` keeps, when the message's type names them.
_KEPT_FIELDS: frozenset[str] = _DATA_TYPES | {"contacts", "system", "unsupported"}


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A message from a WhatsApp user, as a handler receives it (``msg`` in ``handle(msg, ctx)``).

    ``kind`` says what it is (see ``MessageKind``) and the field of that name holds its typed
    object: ``msg.image`` (an ``InboundMedia``: ``id``, ``mime_type``, ``caption``...),
    ``msg.location``, ``msg.contacts``, ``msg.button_reply``/``msg.list_reply`` (a ``Reply``:
    ``id``, ``title``), ``msg.quick_reply`` (a ``Button``: ``text``, ``payload``), ``msg.reaction``,
    ``msg.system``, ``msg.unsupported``. ``type`` is Meta's own word (``interactive`` for both
    kinds of reply, ``button`` for a quick reply, anything for a kind Meta adds later).

    ``text`` is the message text for text messages, the caption of media, the title of a
    tapped button or list item, and "" otherwise; ``reply_id`` is the id of a tapped button or
    list row (a quick reply's payload); ``reply_to`` the ``wamid`` of the message it quotes;
    ``referral`` the ad or post the user came from. ``received_at`` is the wall-clock time
    (``time.time()``) the ingress accepted it.

    Example::

        @bot.on_message
        async def handle(msg: InboundMessage, ctx: Context) -> None:
            if msg.kind == "image":
                await ctx.reply(f"Thanks for the photo {msg.image.id}")
            else:
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
    received_at: float = 0.0
    image: InboundMedia | None = None
    audio: InboundAudio | None = None
    video: InboundMedia | None = None
    document: InboundMedia | None = None
    sticker: InboundMedia | None = None
    location: Location | None = None
    contacts: list[SharedContact] | None = None
    interactive: InboundInteractive | None = None
    button: Button | None = None
    reaction: Reaction | None = None
    system: System | None = None
    unsupported: Unsupported | None = None
    referral: Referral | None = None
    forwarded: bool = False

    @property
    def kind(self) -> MessageKind:
        """What this message is; a type whose object is missing or unknown is ``"unsupported"``."""
        kind = self.type
        if kind == "text":
            return "text"
        if kind in _SAME_NAME_KINDS:
            return kind if getattr(self, kind) is not None else "unsupported"  # type: ignore[return-value]
        if self.interactive is not None:
            if self.interactive.button_reply is not None:
                return "button_reply"
            if self.interactive.list_reply is not None:
                return "list_reply"
        if self.button is not None:
            return "quick_reply"
        return "unsupported"

    @property
    def media(self) -> InboundMedia | None:
        """The media object of an image, audio, video, document or sticker; None for other kinds."""
        return getattr(self, self.type) if self.type in MEDIA_KINDS else None

    @property
    def button_reply(self) -> Reply | None:
        """The reply button the user tapped (``id``, ``title``), if this is a ``button_reply``."""
        return self.interactive.button_reply if self.interactive is not None else None

    @property
    def list_reply(self) -> Reply | None:
        """The list row the user chose (``id``, ``title``, ``description``), if this is a ``list_reply``."""
        return self.interactive.list_reply if self.interactive is not None else None

    @property
    def quick_reply(self) -> Button | None:
        """The template quick-reply button the user tapped (``text``, ``payload``), if this is a ``quick_reply``."""
        return self.button

    @property
    def reply_id(self) -> str:
        """The id of the tapped reply button or list row, or a quick reply's payload; "" for other kinds."""
        reply = self.button_reply or self.list_reply
        if reply is not None:
            return reply.id
        return self.button.payload if self.button is not None else ""

    @property
    def data(self) -> dict[str, Any]:
        """The kind's object as plain builtins (e.g. ``{"latitude": ..., "longitude": ...}``); {} for contacts,
        system and unsupported messages, whose objects are ``msg.contacts``, ``msg.system``, ``msg.unsupported``.
        """
        if self.type == "text":
            return {"body": self.text}
        specific = getattr(self, self.type) if self.type in _DATA_TYPES else None
        return msgspec.to_builtins(specific) if specific is not None else {}


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
                # Only the object the type names: a stray field of another kind must not change ``kind``.
                typed = {message.type: getattr(message, message.type)} if message.type in _KEPT_FIELDS else {}
                out.append(
                    InboundMessage(
                        id=message.id,
                        sender=message.from_,
                        type=message.type,
                        text=_text_of(message),
                        timestamp=int(message.timestamp) if message.timestamp.isdigit() else 0,
                        sender_name=names.get(message.from_, ""),
                        phone_number_id=phone_number_id,
                        reply_to=message.reply_to,
                        received_at=received_at,
                        referral=message.referral,
                        forwarded=message.context is not None and message.context.forwarded,
                        **typed,
                    )
                )
    return out
