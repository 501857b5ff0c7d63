"""The Cloud API's send calls as msgspec Structs: outbound messages, responses, error envelopes.

Field names and nesting mirror the ``POST /{version}/{phone_number_id}/messages``
request body and response documented in Meta's messages reference
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages), so
``msgspec.json.encode(message)`` *is* the request body. Every Struct omits unset optional
fields, as the API expects. Construction checks Meta's documented limits
(:mod:`sluiceway.whatsapp.message_checks`): a ``ValueError`` naming the field and the limit.
Builders (``OutboundMessage.of_text``, ``of_media``, ``of_location``, ``of_buttons``, ``of_list``,
``of_reaction``, ``of_template``; ``ReadReceipt.of``) cover every kind. The webhooks Meta posts
back are in :mod:`sluiceway.whatsapp.webhooks`.

Over 300 lines on purpose: the request shapes, their builders and the response shapes are one
reference a reader keeps side by side with Meta's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import msgspec

from sluiceway.whatsapp.message_checks import MAX_CAPTION_LENGTH as MAX_CAPTION_LENGTH
from sluiceway.whatsapp.message_checks import MAX_FOOTER_LENGTH, check_interactive, check_length
from sluiceway.whatsapp.message_checks import MAX_TEXT_LENGTH as MAX_TEXT_LENGTH

MessageType = Literal[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "reaction",
    "template",
    "interactive",
]
MEDIA_TYPES: frozenset[str] = frozenset({"image", "audio", "video", "document", "sticker"})
#: Media kinds Meta renders no caption for (the API rejects one).
_NO_CAPTION: frozenset[str] = frozenset({"audio", "sticker"})


class Text(msgspec.Struct, frozen=True, omit_defaults=True):
    """A text message's ``text`` object: the body and whether to render a link preview."""

    body: str
    preview_url: bool = False


class Media(msgspec.Struct, frozen=True, omit_defaults=True):
    """An ``image``/``audio``/``video``/``document``/``sticker`` object: a public ``link`` or an uploaded ``id``.

    Which of ``caption`` and ``filename`` a kind allows is checked by ``OutboundMessage``,
    which knows the kind.
    """

    link: str | None = None
    id: str | None = None
    caption: str | None = None
    filename: str | None = None

    def __post_init__(self) -> None:
        if (self.link is None) == (self.id is None):
            raise ValueError("media needs exactly one of `link` or `id`")
        if self.caption is not None:
            check_length("caption", self.caption, MAX_CAPTION_LENGTH, required=False)


class OutboundLocation(msgspec.Struct, frozen=True, omit_defaults=True):
    """A ``location`` object: a pin with an optional name and address."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude <= 90.0:
            raise ValueError(f"latitude must be within -90..90, got {self.latitude}")
        if not -180.0 <= self.longitude <= 180.0:
            raise ValueError(f"longitude must be within -180..180, got {self.longitude}")


class OutboundReaction(msgspec.Struct, frozen=True):
    """A ``reaction`` object: an emoji on the message ``message_id``; an empty emoji removes the reaction."""

    message_id: str
    emoji: str

    def __post_init__(self) -> None:
        if not self.message_id:
            raise ValueError("reaction message_id must not be empty")


class Language(msgspec.Struct, frozen=True, omit_defaults=True):
    """A template's language, e.g. ``Language("en_US")``."""

    code: str
    policy: str | None = None


class Template(msgspec.Struct, frozen=True, omit_defaults=True):
    """A ``template`` object: an approved template's name, language and parameter components.

    ``components`` stays free-form JSON (header/body/button parameter lists) because
    its shape depends on the template.
    """

    name: str
    language: Language
    components: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("template name must not be empty")
        if not self.language.code:
            raise ValueError("template language code must not be empty")


class InteractiveText(msgspec.Struct, frozen=True, omit_defaults=True):
    """The ``body``/``footer`` of an interactive message."""

    text: str


class Interactive(msgspec.Struct, frozen=True, omit_defaults=True):
    """An ``interactive`` object (``button``, ``list``, ``cta_url``, ``flow``...).

    ``action`` and ``header`` stay free-form JSON: their shape depends on ``type``. Reply
    buttons and lists are checked against Meta's limits (see ``message_checks``); build them
    with ``OutboundMessage.of_buttons`` and ``of_list``.
    """

    type: str
    body: InteractiveText
    action: dict[str, Any]
    header: dict[str, Any] | None = None
    footer: InteractiveText | None = None

    def __post_init__(self) -> None:
        check_interactive(self.type, self.body.text, self.action, self.header)
        if self.footer is not None:
            check_length("footer text", self.footer.text, MAX_FOOTER_LENGTH)


class ReplyButton(msgspec.Struct, frozen=True):
    """One reply button for ``OutboundMessage.of_buttons``: the ``id`` a tap sends back and the ``title`` shown."""

    id: str
    title: str


class ListRow(msgspec.Struct, frozen=True, omit_defaults=True):
    """One row of a list message: the ``id`` a tap sends back, its ``title`` and optional ``description``."""

    id: str
    title: str
    description: str | None = None


class ListSection(msgspec.Struct, frozen=True, omit_defaults=True):
    """One section of a list message (a ``title`` is required once there are several sections)."""

    rows: list[ListRow]
    title: str | None = None


class Context(msgspec.Struct, frozen=True, omit_defaults=True):
    """Makes a message a reply: ``message_id`` is the ``wamid`` being answered."""

    message_id: str


class OutboundMessage(msgspec.Struct, frozen=True, omit_defaults=True, tag_field="messaging_product", tag="whatsapp"):
    """One message to one WhatsApp user: exactly the JSON body of a send request.

    Set ``type`` and the one field of the same name (``text``, ``image``, ``template``...),
    or use a builder (``of_text``, ``of_media``, ``of_location``, ``of_buttons``, ``of_list``,
    ``of_reaction``, ``of_template``). Construction validates: an empty ``to``, a missing or
    extra payload, a caption on audio or a sticker, a filename on anything but a document, or
    any of Meta's length and count limits raises ``ValueError`` naming the field and the limit.

    Example::

        msg = OutboundMessage.of_text("15551234567", "Your rent receipt is ready")
        ask = OutboundMessage.of_buttons("15551234567", "Pay now?", [ReplyButton("y", "Yes"), ReplyButton("n", "No")])
        tpl = OutboundMessage.of_template("15551234567", "rent_reminder", "en_US")
    """

    to: str
    type: MessageType
    text: Text | None = None
    image: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: OutboundLocation | None = None
    reaction: OutboundReaction | None = None
    template: Template | None = None
    interactive: Interactive | None = None
    context: Context | None = None
    biz_opaque_callback_data: str | None = None
    #: Omitted when "individual", the API's default; ``messaging_product: "whatsapp"``
    #: is the Struct's tag, so it is always written (and required when decoding).
    recipient_type: Literal["individual"] = "individual"

    def __post_init__(self) -> None:
        if not self.to or not self.to.strip():
            raise ValueError("recipient `to` must be a non-empty phone number or WhatsApp id")
        present = [name for name in _PAYLOAD_FIELDS if getattr(self, name) is not None]
        if present != [self.type]:
            raise ValueError(f"a {self.type!r} message needs exactly its {self.type!r} field set, got {present}")
        if self.text is not None:
            check_length("text body", self.text.body, MAX_TEXT_LENGTH)
        media: Media | None = getattr(self, self.type) if self.type in MEDIA_TYPES else None
        if media is not None:
            if media.caption is not None and self.type in _NO_CAPTION:
                raise ValueError(f"caption is not allowed on {self.type} messages")
            if media.filename is not None and self.type != "document":
                raise ValueError(f"filename is only allowed on document messages, not {self.type}")

    @classmethod
    def of_text(cls, to: str, body: str, *, preview_url: bool = False) -> OutboundMessage:
        """A plain text message (at most 4,096 characters); ``preview_url`` renders a link preview."""
        return cls(to=to, type="text", text=Text(body, preview_url))

    @classmethod
    def of_media(
        cls,
        to: str,
        kind: str,
        link: str | None = None,
        *,
        media_id: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
    ) -> OutboundMessage:
        """A media message of ``kind`` (image, audio, video, document, sticker) by ``link`` or uploaded ``media_id``.

        ``caption`` (at most 1,024 characters) is not allowed on audio and stickers; ``filename`` only on documents.
        """
        if kind not in MEDIA_TYPES:
            raise ValueError(f"unknown media kind {kind!r}; expected one of {sorted(MEDIA_TYPES)}")
        media = Media(link=link, id=media_id, caption=caption, filename=filename)
        return cls(to=to, type=kind, **{kind: media})  # type: ignore[arg-type]

    @classmethod
    def of_location(
        cls, to: str, latitude: float, longitude: float, *, name: str | None = None, address: str | None = None
    ) -> OutboundMessage:
        """A location pin."""
        return cls(to=to, type="location", location=OutboundLocation(latitude, longitude, name, address))

    @classmethod
    def of_buttons(
        cls,
        to: str,
        body: str,
        buttons: Sequence[ReplyButton],
        *,
        header: str | None = None,
        footer: str | None = None,
    ) -> OutboundMessage:
        """An interactive message with 1-3 reply buttons (titles at most 20 characters, ids unique)."""
        action = {"buttons": [{"type": "reply", "reply": msgspec.to_builtins(b)} for b in buttons]}
        return cls(to=to, type="interactive", interactive=_interactive("button", body, action, header, footer))

    @classmethod
    def of_list(
        cls,
        to: str,
        body: str,
        button: str,
        sections: Sequence[ListSection],
        *,
        header: str | None = None,
        footer: str | None = None,
    ) -> OutboundMessage:
        """An interactive list: ``button`` opens it; at most 10 sections and 10 rows in total."""
        action = {"button": button, "sections": msgspec.to_builtins(list(sections))}
        return cls(to=to, type="interactive", interactive=_interactive("list", body, action, header, footer))

    @classmethod
    def of_reaction(cls, to: str, message_id: str, emoji: str) -> OutboundMessage:
        """React with ``emoji`` to the message ``message_id``; an empty ``emoji`` removes the reaction."""
        return cls(to=to, type="reaction", reaction=OutboundReaction(message_id, emoji))

    @classmethod
    def of_template(
        cls, to: str, name: str, language: str, components: list[dict[str, Any]] | None = None
    ) -> OutboundMessage:
        """An approved template by ``name`` and ``language`` code, with its parameter ``components``."""
        return cls(to=to, type="template", template=Template(name, Language(language), components))

    @property
    def recipient(self) -> str:
        """The recipient, as rate limits key it."""
        return self.to


#: The body fields, one per message type (in ``MessageType``'s order).
_PAYLOAD_FIELDS: tuple[str, ...] = get_args(MessageType)


def _interactive(kind: str, body: str, action: dict[str, Any], header: str | None, footer: str | None) -> Interactive:
    return Interactive(
        type=kind,
        body=InteractiveText(body),
        action=action,
        header={"type": "text", "text": header} if header is not None else None,
        footer=InteractiveText(footer) if footer is not None else None,
    )


class TypingIndicator(msgspec.Struct, frozen=True):
    type: Literal["text"] = "text"


class ReadReceipt(msgspec.Struct, frozen=True, omit_defaults=True, tag_field="messaging_product", tag="whatsapp"):
    """Marks an inbound message read (blue ticks), optionally showing a typing indicator: the request body.

    Sent to the same ``/messages`` endpoint as messages; the API answers ``{"success": true}``.
    """

    message_id: str
    status: Literal["read"]  # no default: ``omit_defaults`` would drop it, and the API needs it
    typing_indicator: TypingIndicator | None = None

    def __post_init__(self) -> None:
        if not self.message_id:
            raise ValueError("read receipt message_id must not be empty")

    @classmethod
    def of(cls, message_id: str, *, typing: bool = False) -> ReadReceipt:
        """Mark ``message_id`` read; ``typing`` also shows "typing..." until the reply (or 25 seconds)."""
        return cls(message_id, "read", typing_indicator=TypingIndicator() if typing else None)


# --- responses -------------------------------------------------------------------


class ResponseContact(msgspec.Struct, frozen=True):
    input: str
    wa_id: str


class ResponseMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    message_status: str | None = None


class SendResponse(msgspec.Struct, frozen=True):
    """A successful send's body: the recipient's ``wa_id`` and the new message's ``wamid``."""

    messages: list[ResponseMessage]
    contacts: list[ResponseContact] = []
    messaging_product: str = "whatsapp"


class ErrorData(msgspec.Struct, frozen=True, omit_defaults=True):
    messaging_product: str | None = None
    details: str | None = None


class GraphError(msgspec.Struct, frozen=True, omit_defaults=True):
    """The ``error`` object of a failed Graph API call (Graph API error-handling guide)."""

    message: str
    code: int
    type: str | None = None
    error_subcode: int | None = None
    error_user_title: str | None = None
    error_user_msg: str | None = None
    error_data: ErrorData | None = None
    fbtrace_id: str | None = None


class ErrorEnvelope(msgspec.Struct, frozen=True):
    """``{"error": {...}}``, the body of every failed call."""

    error: GraphError
