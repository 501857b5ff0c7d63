"""The Cloud API's send calls as msgspec Structs: outbound messages, responses, error envelopes.

Field names and nesting mirror the ``POST /{version}/{phone_number_id}/messages``
request body and response documented in Meta's messages reference
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages), so
``msgspec.json.encode(message)`` *is* the request body. Every Struct omits unset optional
fields, as the API expects. The webhooks Meta posts back are in
:mod:`sluiceway.whatsapp.webhooks`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

#: The Cloud API's limit on a text message body (characters), per the messages reference.
MAX_TEXT_LENGTH = 4096
#: The Cloud API's limit on a media caption (characters).
MAX_CAPTION_LENGTH = 1024

MessageType = Literal["text", "image", "audio", "video", "document", "sticker", "template", "interactive"]
MEDIA_TYPES: frozenset[str] = frozenset({"image", "audio", "video", "document", "sticker"})


class Text(msgspec.Struct, frozen=True, omit_defaults=True):
    """A text message's ``text`` object: the body and whether to render a link preview."""

    body: str
    preview_url: bool = False


class Media(msgspec.Struct, frozen=True, omit_defaults=True):
    """An ``image``/``audio``/``video``/``document``/``sticker`` object: a public ``link`` or an uploaded ``id``."""

    link: str | None = None
    id: str | None = None
    caption: str | None = None
    filename: str | None = None

    def __post_init__(self) -> None:
        if (self.link is None) == (self.id is None):
            raise ValueError("media needs exactly one of `link` or `id`")
        if self.caption is not None and len(self.caption) > MAX_CAPTION_LENGTH:
            raise ValueError(f"media caption is {len(self.caption)} characters, over the {MAX_CAPTION_LENGTH} limit")


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


class InteractiveText(msgspec.Struct, frozen=True, omit_defaults=True):
    """The ``body``/``footer`` of an interactive message."""

    text: str


class Interactive(msgspec.Struct, frozen=True, omit_defaults=True):
    """An ``interactive`` object (``button``, ``list``, ``cta_url``, ``flow``...).

    ``action`` and ``header`` stay free-form JSON: their shape depends on ``type``.
    """

    type: str
    body: InteractiveText
    action: dict[str, Any]
    header: dict[str, Any] | None = None
    footer: InteractiveText | None = None


class Context(msgspec.Struct, frozen=True, omit_defaults=True):
    """Makes a message a reply: ``message_id`` is the ``wamid`` being answered."""

    message_id: str


class OutboundMessage(msgspec.Struct, frozen=True, omit_defaults=True, tag_field="messaging_product", tag="whatsapp"):
    """One message to one WhatsApp user: exactly the JSON body of a send request.

    Set ``type`` and the one field of the same name (``text``, ``image``, ``template``...).
    Construction validates: an empty ``to``, a missing or extra payload, or a text over
    4,096 characters raises ``ValueError`` naming the problem.

    Example::

        msg = OutboundMessage.of_text("15551234567", "Your rent receipt is ready")
        tpl = OutboundMessage(to="15551234567", type="template",
                              template=Template("rent_reminder", Language("en_US")))
    """

    to: str
    type: MessageType
    text: Text | None = None
    image: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
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
        payloads = (
            self.text,
            self.image,
            self.audio,
            self.video,
            self.document,
            self.sticker,
            self.template,
            self.interactive,
        )
        if getattr(self, self.type) is None or payloads.count(None) != len(payloads) - 1:
            present = [name for name in _PAYLOAD_FIELDS if getattr(self, name) is not None]
            raise ValueError(f"a {self.type!r} message needs exactly its {self.type!r} field set, got {present}")
        if self.text is not None:
            if not self.text.body:
                raise ValueError("text body must not be empty")
            if len(self.text.body) > MAX_TEXT_LENGTH:
                raise ValueError(f"text body is {len(self.text.body)} characters, over the {MAX_TEXT_LENGTH} limit")

    @classmethod
    def of_text(cls, to: str, body: str, *, preview_url: bool = False) -> OutboundMessage:
        """A plain text message."""
        return cls(to=to, type="text", text=Text(body, preview_url))

    @classmethod
    def of_media(cls, to: str, kind: str, link: str, *, caption: str | None = None) -> OutboundMessage:
        """A media message of ``kind`` (image, audio, video, document, sticker) sent by public link."""
        if kind not in MEDIA_TYPES:
            raise ValueError(f"unknown media kind {kind!r}; expected one of {sorted(MEDIA_TYPES)}")
        return cls(to=to, type=kind, **{kind: Media(link=link, caption=caption)})  # type: ignore[arg-type]

    @property
    def recipient(self) -> str:
        """The recipient, as rate limits key it."""
        return self.to


_PAYLOAD_FIELDS = ("text", "image", "audio", "video", "document", "sticker", "template", "interactive")


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
