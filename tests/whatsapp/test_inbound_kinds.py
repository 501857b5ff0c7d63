"""Every inbound kind Meta documents decodes to its typed field, and decoding stays lenient.

The examples are the message objects of Meta's messages-webhook reference, one per kind
(written here in Meta's shapes, values made up). The property adds random unknown fields at
any level and random unknown kinds: decoding never raises and every known field survives.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.whatsapp.webhooks import DECODER, WebhookMessage

_COMMON = {"from": "16505551234", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRB", "timestamp": "1749416383"}

#: kind -> the rest of a message object, per Meta's webhook reference
EXAMPLES: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": {"body": "Is the flat still free?"}},
    "image": {
        "type": "image",
        "image": {"caption": "the leak", "mime_type": "image/jpeg", "sha256": "1Bl6o+V2Mg=", "id": "1003383421387256"},
    },
    "audio": {
        "type": "audio",
        "audio": {"mime_type": "audio/ogg; codecs=opus", "sha256": "O4O/2k=", "id": "1003383421387257", "voice": True},
    },
    "video": {"type": "video", "video": {"mime_type": "video/mp4", "sha256": "dS8=", "id": "1003383421387258"}},
    "document": {
        "type": "document",
        "document": {
            "caption": "my lease",
            "filename": "lease.pdf",
            "mime_type": "application/pdf",
            "sha256": "Ck=",
            "id": "1003383421387259",
        },
    },
    "sticker": {
        "type": "sticker",
        "sticker": {"mime_type": "image/webp", "sha256": "Zz=", "id": "1003383421387260", "animated": False},
    },
    "location": {
        "type": "location",
        "location": {"latitude": 51.5072, "longitude": -0.1276, "name": "Flat 3", "address": "1 High St"},
    },
    "contacts": {
        "type": "contacts",
        "contacts": [
            {
                "name": {"formatted_name": "Ann Lee", "first_name": "Ann", "last_name": "Lee"},
                "phones": [{"phone": "+1 650-555-0101", "type": "CELL", "wa_id": "16505550101"}],
                "emails": [{"email": "ann@example.com", "type": "WORK"}],
                "addresses": [{"street": "1 High St", "city": "London", "country_code": "GB", "type": "HOME"}],
                "org": {"company": "Plumbers Ltd", "title": "Plumber"},
                "urls": [{"url": "https://plumbers.example", "type": "WORK"}],
                "birthday": "1980-01-31",
            }
        ],
    },
    "button": {
        "type": "button",
        "button": {"payload": "PAY_NOW", "text": "Pay now"},
        "context": {"from": "15550783881", "id": "wamid.TEMPLATE"},
    },
    "button_reply": {
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}},
        "context": {"from": "15550783881", "id": "wamid.ASKED"},
    },
    "list_reply": {
        "type": "interactive",
        "interactive": {
            "type": "list_reply",
            "list_reply": {"id": "mon-9", "title": "Monday 9:00", "description": "Viewing slot"},
        },
        "context": {"from": "15550783881", "id": "wamid.LISTED"},
    },
    "reaction": {"type": "reaction", "reaction": {"message_id": "wamid.OURS", "emoji": "👍"}},
    "reaction_removed": {"type": "reaction", "reaction": {"message_id": "wamid.OURS"}},
    "system": {
        "type": "system",
        "system": {"body": "User A changed from 1650 to 1651", "wa_id": "16505551235", "type": "user_changed_number"},
    },
    "unsupported": {
        "type": "unsupported",
        "unsupported": {"type": "poll_creation"},
        "errors": [
            {
                "code": 131051,
                "title": "Message type unknown",
                "message": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."},
            }
        ],
    },
    "referral": {
        "type": "text",
        "text": {"body": "Hi, I saw your ad"},
        "referral": {
            "source_url": "https://fb.me/ad",
            "source_id": "120",
            "source_type": "ad",
            "headline": "Flats in town",
            "body": "Two bedrooms",
            "media_type": "image",
            "image_url": "https://x.test/i.jpg",
            "ctwa_clid": "ARAk",
        },
    },
    "forwarded": {"type": "text", "text": {"body": "fwd"}, "context": {"forwarded": True}},
}


def _webhook(messages: list[dict[str, Any]]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
        "messages": messages,
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    return msgspec.json.encode(body)


def _decode_one(message: dict[str, Any]) -> WebhookMessage:
    [decoded] = DECODER.decode(_webhook([message])).entry[0].changes[0].value.messages
    return decoded


def _known(message: WebhookMessage) -> dict[str, Any]:
    known: dict[str, Any] = msgspec.to_builtins(message)
    return known


def test_each_documented_kind_lands_in_its_typed_field() -> None:
    """What a handler relies on per kind: the content is typed, with reply-to, referral and errors kept."""
    got = {kind: _decode_one({**_COMMON, **example}) for kind, example in EXAMPLES.items()}
    assert got["text"].text is not None and got["text"].text.body == "Is the flat still free?"
    assert got["image"].image is not None and got["image"].image.caption == "the leak"
    assert got["audio"].audio is not None and got["audio"].audio.voice is True
    assert got["document"].document is not None and got["document"].document.filename == "lease.pdf"
    assert got["sticker"].sticker is not None and got["sticker"].sticker.mime_type == "image/webp"
    assert got["location"].location is not None and got["location"].location.name == "Flat 3"
    [card] = got["contacts"].contacts or []
    assert card.name.formatted_name == "Ann Lee" and card.phones[0].wa_id == "16505550101"
    assert card.org is not None and card.org.company == "Plumbers Ltd"
    assert got["button"].button is not None and got["button"].button.payload == "PAY_NOW"
    assert got["button"].reply_to == "wamid.TEMPLATE"
    interactive = got["button_reply"].interactive
    assert interactive is not None and interactive.button_reply is not None and interactive.button_reply.id == "yes"
    listed = got["list_reply"].interactive
    assert listed is not None and listed.list_reply is not None and listed.list_reply.description == "Viewing slot"
    assert got["reaction"].reaction is not None and got["reaction"].reaction.emoji == "👍"
    assert got["reaction_removed"].reaction is not None and got["reaction_removed"].reaction.emoji == ""
    assert got["system"].system is not None and got["system"].system.wa_id == "16505551235"
    unsupported = got["unsupported"]
    assert unsupported.unsupported is not None and unsupported.unsupported.type == "poll_creation"
    assert [e.code for e in unsupported.errors] == [131051]
    assert got["referral"].referral is not None and got["referral"].referral.ctwa_clid == "ARAk"
    assert got["forwarded"].context is not None and got["forwarded"].context.forwarded
    assert got["text"].reply_to == ""


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_unknown_key = st.text(min_size=1, max_size=10).map(lambda k: "x_" + k)


def _objects(tree: Any) -> list[dict[str, Any]]:
    """Every JSON object in ``tree`` (the places Meta may add a field)."""
    if isinstance(tree, dict):
        return [tree, *(o for v in tree.values() for o in _objects(v))]
    if isinstance(tree, list):
        return [o for v in tree for o in _objects(v)]
    return []


@given(
    kind=st.sampled_from(sorted(EXAMPLES)),
    extras=st.lists(st.tuples(st.integers(0, 50), _unknown_key, _json), max_size=6),
    new_kind=st.none() | st.text(min_size=1, max_size=12).map(lambda t: "new_" + t),  # never a known field
)
def test_unknown_fields_and_kinds_never_break_decoding(
    kind: str, extras: list[tuple[int, str, Any]], new_kind: str | None
) -> None:
    """Any documented example, with unknown fields anywhere and possibly a kind Meta adds later, decodes.

    The known fields decode exactly as from the clean example; an unknown kind keeps its ``type``.
    """
    clean = {**_COMMON, **EXAMPLES[kind]}
    noisy = copy.deepcopy(clean)
    for at, key, value in extras:
        places = _objects(noisy)
        places[at % len(places)][key] = value
    if new_kind is not None:
        noisy["type"] = new_kind
        noisy[new_kind] = {"anything": [1, 2]}
    decoded = _decode_one(noisy)
    expected = _known(_decode_one(clean))
    if new_kind is not None:
        expected["type"] = new_kind
    assert _known(decoded) == expected


@given(kind=st.sampled_from(sorted(EXAMPLES)))
def test_a_decoded_message_round_trips_through_the_encoder(kind: str) -> None:
    """The Structs the emulator encodes its inbound webhooks with decode back to the same message."""
    message = _decode_one({**_COMMON, **EXAMPLES[kind]})
    again = msgspec.json.decode(msgspec.json.encode(message), type=WebhookMessage)
    assert again == message
