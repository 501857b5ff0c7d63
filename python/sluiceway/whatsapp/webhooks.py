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


class InboundText(msgspec.Struct, frozen=True):
    """A user's text message's ``text`` object."""

    body: str


class InboundMedia(msgspec.Struct, frozen=True):
    """A user's image, video, document or sticker: the uploaded media's ``id`` and what describes it.

    Fetch the bytes with ``GET /{id}`` (a short-lived ``url``) and then that url, both with the
    access token.
    """

    id: str
    mime_type: str = ""
    sha256: str = ""
    caption: str = ""
    filename: str = ""


class InboundAudio(InboundMedia, frozen=True):
    """A user's audio: ``voice`` is true for a voice note recorded in WhatsApp."""

    voice: bool = False


class Location(msgspec.Struct, frozen=True):
    latitude: float
    longitude: float
    name: str = ""
    address: str = ""


class ContactName(msgspec.Struct, frozen=True):
    formatted_name: str = ""
    first_name: str = ""
    last_name: str = ""
    middle_name: str = ""
    prefix: str = ""
    suffix: str = ""


class ContactPhone(msgspec.Struct, frozen=True):
    phone: str = ""
    type: str = ""
    wa_id: str = ""


class ContactEmail(msgspec.Struct, frozen=True):
    email: str = ""
    type: str = ""


class ContactAddress(msgspec.Struct, frozen=True):
    street: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    country: str = ""
    country_code: str = ""
    type: str = ""


class ContactOrg(msgspec.Struct, frozen=True):
    company: str = ""
    department: str = ""
    title: str = ""


class ContactUrl(msgspec.Struct, frozen=True):
    url: str = ""
    type: str = ""


class SharedContact(msgspec.Struct, frozen=True):
    """One contact card of a ``contacts`` message (a user shared someone's details)."""

    name: ContactName = ContactName()
    phones: list[ContactPhone] = []
    emails: list[ContactEmail] = []
    addresses: list[ContactAddress] = []
    org: ContactOrg | None = None
    urls: list[ContactUrl] = []
    birthday: str = ""


class Button(msgspec.Struct, frozen=True):
    """A tap on a quick-reply button of a template (``type: "button"``)."""

    text: str
    payload: str = ""


class Reply(msgspec.Struct, frozen=True):
    id: str
    title: str
    description: str = ""


class InboundInteractive(msgspec.Struct, frozen=True):
    """A reply to an interactive message: ``button_reply`` or ``list_reply`` (other types are kept as ``type``)."""

    type: str
    button_reply: Reply | None = None
    list_reply: Reply | None = None


class Reaction(msgspec.Struct, frozen=True):
    """A user's reaction to ``message_id``; an empty ``emoji`` means the reaction was removed."""

    message_id: str
    emoji: str = ""


class System(msgspec.Struct, frozen=True):
    """A ``system`` message, e.g. the user changed number (``type: "user_changed_number"``, ``wa_id`` the new one)."""

    body: str = ""
    type: str = ""
    wa_id: str = ""
    customer: str = ""
    identity: str = ""


class Unsupported(msgspec.Struct, frozen=True):
    """What Meta says of a message it cannot deliver to the API (a poll, a view-once...)."""

    type: str = ""


class Referral(msgspec.Struct, frozen=True):
    """Present when the user wrote from an ad or a post (click-to-WhatsApp): where they came from."""

    source_url: str = ""
    source_id: str = ""
    source_type: str = ""
    headline: str = ""
    body: str = ""
    media_type: str = ""
    image_url: str = ""
    video_url: str = ""
    thumbnail_url: str = ""
    ctwa_clid: str = ""


class MessageContext(msgspec.Struct, frozen=True):
    """Present when the user replied to (quoted) an earlier message, or forwarded one."""

    id: str = ""
    from_: str = msgspec.field(default="", name="from")
    forwarded: bool = False
    frequently_forwarded: bool = False


#: The message kinds with a typed object of the same name on ``WebhookMessage``.
INBOUND_KINDS: frozenset[str] = frozenset(
    {
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "button",
        "interactive",
        "reaction",
        "system",
        "unsupported",
    }
)


class WebhookMessage(msgspec.Struct, frozen=True):
    """One entry of ``value.messages``: ``type`` names the field that carries the content.

    Every kind Meta documents has a typed field; a kind added later keeps its ``type`` and
    its fields are ignored, never an error. ``errors`` explains an ``unsupported`` message;
    ``context`` is the replied-to message; ``referral`` the ad the user came from.
    """

    from_: str = msgspec.field(name="from")
    id: str
    timestamp: str
    type: str
    text: InboundText | None = None
    image: InboundMedia | None = None
    audio: InboundAudio | None = None
    video: InboundMedia | None = None
    document: InboundMedia | None = None
    sticker: InboundMedia | None = None
    location: Location | None = None
    contacts: list[SharedContact] | None = None
    button: Button | None = None
    interactive: InboundInteractive | None = None
    reaction: Reaction | None = None
    system: System | None = None
    unsupported: Unsupported | None = None
    context: MessageContext | None = None
    referral: Referral | None = None
    errors: list[StatusError] = []

    @property
    def reply_to(self) -> str:
        """The ``wamid`` this message answers (``context.id``), ``""`` if it answers none."""
        return self.context.id if self.context is not None else ""


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

    def has_messages(self) -> bool:
        """Whether the payload carries any user message (cheaper than building them)."""
        return any(change.value.messages for entry in self.entry for change in entry.changes)

    def statuses(self) -> list[Status]:
        """Every status update in the payload, in delivery order."""
        return [status for entry in self.entry for change in entry.changes for status in change.value.statuses]


#: The one decoder for webhook bodies (msgspec decoders are reusable and faster than one-off calls).
DECODER = msgspec.json.Decoder(WebhookPayload)
