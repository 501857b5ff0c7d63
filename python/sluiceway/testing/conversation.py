"""The WhatsApp emulator's conversation view: what a user would read of each message, in and out."""

from __future__ import annotations

from typing import Literal

import msgspec

from sluiceway.whatsapp.messages import OutboundMessage


class InboundRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /_emulator/inbound``: a user's text message to the bot."""

    text: str
    from_: str = msgspec.field(name="from")
    name: str = "Test User"


class ChatMessage(msgspec.Struct, frozen=True):
    """One message of the conversation view: sent by the bot (``outbound``) or posted to it (``inbound``).

    ``text`` is what a user reads: a text's body, an interactive message's body, a template's
    name, a media caption; ``buttons`` are the titles of an interactive message's reply
    buttons or list rows. ``time`` is a Unix time in seconds.
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
    media = message.image or message.video or message.document or message.audio or message.sticker
    return (media.caption or "") if media is not None else "", []
