"""The Cloud API's ``messages`` webhook as msgspec Structs: what Meta POSTs to a bot.

Shapes follow Meta's messages webhook reference
(developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages):
a ``whatsapp_business_account`` object whose ``entry[].changes[].value`` carries ``metadata``,
``contacts``, and either ``messages`` (a user wrote to the business) or ``statuses`` (sent,
delivered, read or failed for a message the business sent). Decoding is lenient: unknown fields
are ignored and ``status`` may be a kind Meta adds later, so a new field never turns a webhook
into a 400 and a re-delivery loop; a missing required field is an error with msgspec's reason.
The envelope and status Structs omit unset fields when encoded, as Meta's bodies do (the
emulator builds them); a message's own objects keep every field, so a handler's
``InboundMessage.data`` always has the same keys.
The ingress (``sluiceway.app``) decodes with :data:`DECODER` and checks :func:`sign`'s signature;
the sender applies :class:`Status`; the emulators sign what they post with :func:`sign`.
"""

from __future__ import annotations

import hmac
from typing import Any, Literal

import msgspec

from sluiceway.whatsapp.messages import ErrorData

#: The signature header Meta sets on every webhook POST: ``sha256=<hex HMAC of the raw body>``.
SIGNATURE_HEADER = "X-Hub-Signature-256"

#: The only ``object`` a WhatsApp Business webhook carries.
WHATSAPP_OBJECT = "whatsapp_business_account"


def sign(body: bytes, app_secret: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``: ``sha256=`` + hex HMAC-SHA256."""
    return "sha256=" + hmac.digest(app_secret, body, "sha256").hex()  # one-shot digest: no HMAC object per call


#: The status kinds the sender acts on (others are accepted and ignored).
StatusKind = Literal["sent", "delivered", "read", "failed", "deleted"]


class StatusError(msgspec.Struct, frozen=True, omit_defaults=True):
    """An entry of an ``errors`` list (e.g. a failed status's code 131026, undeliverable)."""

    code: int
    title: str = ""
    message: str | None = None
    error_data: ErrorData | None = None


class Metadata(msgspec.Struct, frozen=True, omit_defaults=True):
    """The business phone number the webhook is about."""

    display_phone_number: str
    phone_number_id: str


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


class Status(msgspec.Struct, frozen=True, omit_defaults=True):
    """One entry of ``value.statuses``: what happened to a message the business sent.

    ``id`` is the ``wamid`` it reports on; ``timestamp`` is a Unix time in seconds, sent as
    a string. ``status`` is any string (the sender acts on the ``StatusKind`` values and
    ignores others): a kind Meta adds later must not turn the whole webhook into a 400 and
    a retry loop.
    """

    id: str
    status: str
    timestamp: str
    recipient_id: str
    errors: list[StatusError] = []
    conversation: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None
    biz_opaque_callback_data: str | None = None


class ChangeValue(msgspec.Struct, frozen=True, omit_defaults=True):
    messaging_product: str = ""  # always "whatsapp" from Meta; a default of "" keeps it in encoded bodies
    metadata: Metadata | None = None
    contacts: list[Contact] = []
    messages: list[WebhookMessage] = []
    statuses: list[Status] = []
    errors: list[StatusError] = []


class Change(msgspec.Struct, frozen=True, omit_defaults=True):
    field: str
    value: ChangeValue


class Entry(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    changes: list[Change]


class WebhookPayload(msgspec.Struct, frozen=True, omit_defaults=True):
    """The body of a webhook POST (``object`` is ``"whatsapp_business_account"``)."""

    object: str
    entry: list[Entry]

    def statuses(self) -> list[Status]:
        """Every status update in the payload, in delivery order."""
        return [status for entry in self.entry for change in entry.changes for status in change.value.statuses]


#: The one decoder for webhook bodies (msgspec decoders are reusable and faster than one-off calls).
DECODER = msgspec.json.Decoder(WebhookPayload)
