"""The WhatsApp emulator's conversation view: what a user would read of each message, in and out."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from sluiceway.whatsapp.messages import OutboundMessage
from sluiceway.whatsapp.webhooks import INBOUND_KINDS, WebhookMessage


class InboundRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /_emulator/inbound``: a user's message to the bot.

    A text by default (``text``); another kind with ``type`` and ``content``, the kind's object in
    Meta's webhook shape (e.g. ``{"type": "location", "content": {"latitude": 51.5, "longitude": -0.1}}``).
    ``reply_to`` quotes an earlier message's ``wamid``; ``to`` picks the business number (phone number
    id) it is sent to, by default the emulator's first.
    """

    from_: str = msgspec.field(name="from")
    text: str = ""
    name: str = "Test User"
    type: str = "text"
    content: Any = None
    reply_to: str | None = None
    to: str | None = None


class ChatMessage(msgspec.Struct, frozen=True):
    """One message of the conversation view: sent by the bot (``outbound``) or posted to it (``inbound``).

    ``text`` is what a user reads: a text's body, an interactive message's body, a template's
    name, a media caption (or ``[image]`` etc. without one), a location's name and address, a
    reaction's emoji; ``buttons`` are the titles of an interactive message's reply buttons or
    list rows. ``time`` is a Unix time in seconds.
    """

    direction: Literal["outbound", "inbound"]
    wamid: str
    from_: str = msgspec.field(name="from")
    to: str
    type: str
    text: str
    time: float
    buttons: list[str] = []
    reply_to: str | None = None


def inbound_message(
    wa_id: str,
    wamid: str,
    timestamp: int,
    kind: str,
    text: str,
    content: Any,
    reply_to: str | None,
    business: str,
) -> WebhookMessage:
    """A user's message of ``kind`` as Meta's webhook carries it; ``ValueError`` naming what is not Meta's shape.

    A text takes ``text``; any other kind ``content``, its object in Meta's shape. ``reply_to``
    quotes the ``business``'s earlier message.
    """
    if kind == "text":
        if not text:
            raise ValueError("text must not be empty")
        content = {"body": text}
    elif kind not in INBOUND_KINDS:
        raise ValueError(f"unknown inbound kind {kind!r}; expected one of {sorted(INBOUND_KINDS)}")
    elif content is None:
        raise ValueError(f"a {kind!r} message needs its content (the {kind!r} object of Meta's webhook)")
    raw: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(timestamp), "type": kind, kind: content}
    if reply_to is not None:
        raw["context"] = {"from": business, "id": reply_to}
    try:
        return msgspec.convert(raw, WebhookMessage)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{kind} content is not Meta's shape: {exc}") from None


def readable(message: OutboundMessage) -> tuple[str, list[str]]:
    """The text a user would read in ``message``, and the titles of its buttons or list rows."""
    if message.text is not None:
        return message.text.body, []
    if message.interactive is not None:
        action = message.interactive.action
        titles = [b.get("reply", {}).get("title", "") for b in action.get("buttons", [])]
        titles += [row.get("title", "") for section in action.get("sections", []) for row in section.get("rows", [])]
        return message.interactive.body.text, titles
    if message.template is not None:
        return message.template.name, []
    if message.location is not None:
        place = message.location
        return _place(place.name or "", place.address or "", place.latitude, place.longitude), []
    if message.reaction is not None:
        return message.reaction.emoji or "(reaction removed)", []
    media = message.image or message.video or message.document or message.audio or message.sticker
    return (media.caption or f"[{message.type}]") if media is not None else "", []


def readable_inbound(message: WebhookMessage) -> str:
    """The text the business would read in a user's ``message``, of any kind."""
    if message.text is not None:
        return message.text.body
    if message.button is not None:
        return message.button.text
    if message.interactive is not None:
        reply = message.interactive.button_reply or message.interactive.list_reply
        return reply.title if reply is not None else f"[{message.interactive.type}]"
    if message.location is not None:
        place = message.location
        return _place(place.name, place.address, place.latitude, place.longitude)
    if message.contacts is not None:
        return "contact: " + ", ".join(card.name.formatted_name for card in message.contacts)
    if message.reaction is not None:
        return message.reaction.emoji or "(reaction removed)"
    if message.system is not None:
        return message.system.body
    media = message.image or message.video or message.document or message.audio or message.sticker
    if media is not None:
        return media.caption or f"[{message.type}]"
    return f"[{message.type}]"


def _place(name: str, address: str, latitude: float, longitude: float) -> str:
    label = ", ".join(part for part in (name, address) if part)
    return f"📍 {label} ({latitude}, {longitude})" if label else f"📍 ({latitude}, {longitude})"
