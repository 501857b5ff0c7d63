"""Inbound kinds and routing: every kind Meta sends becomes a typed InboundMessage, and the router picks
the handler in the documented order (a hypothesis model of that order against the router)."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluiceway import Bot, Context, InboundMessage, Settings
from sluiceway.app.inbound import MEDIA_KINDS, inbound_messages
from sluiceway.whatsapp.webhooks import DECODER

# --- the kinds, in Meta's documented webhook shapes -----------------------------------------------

#: type, its object as Meta sends it, and what the handler should see: kind, text, reply_id.
META_EXAMPLES: list[tuple[str, Any, str, str, str]] = [
    ("text", {"body": "is 4B free?"}, "text", "is 4B free?", ""),
    (
        "image",
        {"caption": "leak", "mime_type": "image/jpeg", "sha256": "abc", "id": "media-1"},
        "image",
        "leak",
        "",
    ),
    ("audio", {"mime_type": "audio/ogg; codecs=opus", "sha256": "x", "id": "media-2", "voice": True}, "audio", "", ""),
    ("video", {"mime_type": "video/mp4", "id": "media-3", "caption": "drip"}, "video", "drip", ""),
    (
        "document",
        {"caption": "lease", "filename": "lease.pdf", "mime_type": "application/pdf", "id": "media-4"},
        "document",
        "lease",
        "",
    ),
    ("sticker", {"mime_type": "image/webp", "sha256": "s", "id": "media-5", "animated": False}, "sticker", "", ""),
    ("location", {"latitude": 51.5, "longitude": -0.12, "name": "Home", "address": "1 Main St"}, "location", "", ""),
    (
        "contacts",
        [{"name": {"formatted_name": "Ana Li", "first_name": "Ana"}, "phones": [{"phone": "+1 555", "type": "HOME"}]}],
        "contacts",
        "",
        "",
    ),
    (
        "interactive",
        {"type": "button_reply", "button_reply": {"id": "urgency:high", "title": "Urgent"}},
        "button_reply",
        "Urgent",
        "urgency:high",
    ),
    (
        "interactive",
        {"type": "list_reply", "list_reply": {"id": "unit-4B", "title": "4B", "description": "2 bed"}},
        "list_reply",
        "4B",
        "unit-4B",
    ),
    ("button", {"text": "Pay now", "payload": "pay"}, "quick_reply", "Pay now", "pay"),
    ("reaction", {"message_id": "wamid.bot", "emoji": "👍"}, "reaction", "", ""),
    ("system", {"body": "User changed number", "type": "user_changed_number", "wa_id": "1556"}, "system", "", ""),
    ("unsupported", {"type": "poll"}, "unsupported", "", ""),
    # Kinds this release does not know, and an interactive reply of a new sort: kept, never a crash.
    ("order", {"catalog_id": "1", "product_items": []}, "unsupported", "", ""),
    ("interactive", {"type": "nfm_reply", "nfm_reply": {"response_json": "{}"}}, "unsupported", "", ""),
]


def webhook(type_: str, content: Any, **extra: Any) -> bytes:
    message = {"from": "15551234567", "id": f"wamid.{type_}", "timestamp": "1749416383", "type": type_} | extra
    if content is not None:
        message[type_] = content
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "15551234567"}],
        "messages": [message],
    }
    return msgspec.json.encode(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
        }
    )


def inbound(type_: str, content: Any, **extra: Any) -> InboundMessage:
    [message] = inbound_messages(DECODER.decode(webhook(type_, content, **extra)), received_at=1.0)
    return message


def across_processes(message: InboundMessage) -> InboundMessage:
    """What a worker gets: the ingress hands the engine builtins, the worker converts them back."""
    return msgspec.convert(msgspec.msgpack.decode(msgspec.msgpack.encode(msgspec.to_builtins(message))), InboundMessage)


@pytest.mark.parametrize(("type_", "content", "kind", "text", "reply_id"), META_EXAMPLES)
def test_every_kind_is_typed_and_survives_the_trip_to_a_worker(
    type_: str, content: Any, kind: str, text: str, reply_id: str
) -> None:
    message = inbound(type_, content)
    for seen in (message, across_processes(message)):
        assert (seen.kind, seen.type, seen.text, seen.reply_id) == (kind, type_, text, reply_id)
        assert seen == message
    if kind in MEDIA_KINDS:
        assert message.media is getattr(message, kind) and message.media is not None
        assert message.media.id == content["id"] and message.media.mime_type == content["mime_type"]
    else:
        assert message.media is None


def test_typed_fields_hold_the_kinds_objects() -> None:
    assert inbound("audio", META_EXAMPLES[2][1]).audio.voice is True  # type: ignore[union-attr]
    location = inbound("location", META_EXAMPLES[6][1]).location
    assert location is not None and (location.latitude, location.address) == (51.5, "1 Main St")
    [card] = inbound("contacts", META_EXAMPLES[7][1]).contacts or []
    assert (card.name.formatted_name, card.phones[0].phone) == ("Ana Li", "+1 555")
    assert inbound("button", {"text": "Pay now", "payload": "pay"}).quick_reply is not None
    reaction = inbound("reaction", {"message_id": "wamid.bot", "emoji": "👍"}).reaction
    assert reaction is not None and reaction.message_id == "wamid.bot"
    system = inbound("system", META_EXAMPLES[12][1]).system
    assert system is not None and system.wa_id == "1556"


def test_reply_context_referral_and_forwarding_are_kept() -> None:
    referral = {"source_url": "https://fb.me/x", "source_type": "ad", "source_id": "42", "headline": "Lofts"}
    message = inbound(
        "text",
        {"body": "hi"},
        context={"from": "15550000000", "id": "wamid.earlier", "forwarded": True},
        referral=referral,
    )
    seen = across_processes(message)
    assert (seen.reply_to, seen.forwarded) == ("wamid.earlier", True)
    assert seen.referral is not None and (seen.referral.source_id, seen.referral.headline) == ("42", "Lofts")


def test_a_type_whose_object_is_missing_is_unsupported_not_a_crash() -> None:
    message = inbound("image", None)
    assert (message.kind, message.media, message.data) == ("unsupported", None, {})


# --- registration errors ---------------------------------------------------------------------------


def test_sync_handlers_are_refused_in_one_line() -> None:
    bot = Bot()

    def plain(msg: InboundMessage, ctx: Context) -> None: ...

    def plain_error(msg: InboundMessage, ctx: Context, error: Exception) -> None: ...

    for register, handler, signature in (
        (bot.on("image"), plain, "plain(msg, ctx)"),
        (bot.on_message, plain, "plain(msg, ctx)"),
        (bot.on_error, plain_error, "plain_error(msg, ctx, error)"),
    ):
        with pytest.raises(TypeError) as caught:
            register(handler)  # type: ignore[operator]
        assert "\n" not in str(caught.value) and f"must be an async function (async def {signature})" in str(
            caught.value
        )


async def _noop(msg: InboundMessage, ctx: Context) -> None:
    return None


@pytest.mark.parametrize(
    ("filters", "complaint"),
    [
        ({"kind": "photo"}, "unknown message kind 'photo'"),
        ({"kind": []}, "kind must name at least one kind"),
        ({"text": "(unclosed"}, "text is not a valid regular expression"),
        ({"reply_id": ""}, "reply_id must be a non-empty id"),
        ({"reply_id": []}, "reply_id must be a non-empty id"),
    ],
)
def test_filters_that_cannot_match_are_refused(filters: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        Bot().on(**filters)(_noop)


def test_one_fallback_and_one_error_handler() -> None:
    bot = Bot()
    bot.on_message(_noop)
    with pytest.raises(ValueError, match="already has a message handler"):
        bot.on_message(_noop)

    async def on_error(msg: InboundMessage, ctx: Context, error: Exception) -> None: ...

    bot.on_error(on_error)
    with pytest.raises(ValueError, match="already has an error handler"):
        bot.on_error(on_error)


def test_a_bot_with_only_routes_can_run_and_one_without_handlers_cannot() -> None:
    routed = Bot()
    routed.on("text")(_noop)
    routed.check()
    with pytest.raises(ValueError, match="no message handler"):
        Bot().check()


def test_an_unmatched_message_without_fallback_is_logged_and_unanswered(caplog: pytest.LogCaptureFixture) -> None:
    bot = Bot()

    @bot.on("image")
    async def photo(msg: InboundMessage, ctx: Context) -> None:
        await ctx.reply("photo")

    message = inbound("location", META_EXAMPLES[6][1])
    ctx = Context(message, Settings(), None)
    with caplog.at_level(logging.WARNING, logger="sluiceway.app"):
        asyncio.run(bot.dispatch(message, ctx))
    assert ctx.result().outgoing == []
    assert [r.getMessage() for r in caplog.records] == [
        "no handler for message wamid.location (kind location) from 15551234567: it gets no reply; "
        "add @bot.on_message as a fallback"
    ]


def test_dispatch_runs_the_chosen_handler_with_the_context() -> None:
    bot = Bot()

    @bot.on("media", text="leak")
    async def leak_photo(msg: InboundMessage, ctx: Context) -> None:
        assert msg.media is not None
        await ctx.reply(f"ticket for {msg.media.id}")

    @bot.on_message
    async def other(msg: InboundMessage, ctx: Context) -> None:
        await ctx.reply("other")

    def answer(message: InboundMessage) -> str:
        ctx = Context(message, Settings(), None)
        asyncio.run(bot.dispatch(message, ctx))
        [outgoing] = ctx.result().outgoing
        assert outgoing.message.text is not None
        return outgoing.message.text.body

    assert answer(inbound("video", {"id": "v1", "mime_type": "video/mp4", "caption": "leak here"})) == "ticket for v1"
    assert answer(inbound("image", {"id": "i1", "mime_type": "image/jpeg", "caption": "nice view"})) == "other"
    assert answer(inbound("text", {"body": "leak"})) == "other"


# --- the matching order: a model against the router ------------------------------------------------

TEXTS = ["rent", "leak", "hi", "", "rent leak", "Hi"]
PATTERNS = ["rent", "^hi$", "leak|Hi"]
IDS = ["yes", "no", "urgency:high"]
#: A message the generator can build: its kind, its text and its reply id, as the model knows them.
Spec = tuple[str, str, str]


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    kind = draw(
        st.sampled_from(
            [
                "text",
                "image",
                "document",
                "location",
                "button_reply",
                "list_reply",
                "quick_reply",
                "reaction",
                "unsupported",
            ]
        )
    )
    text = draw(st.sampled_from(TEXTS))
    if kind == "text" and not text:
        text = "hi"
    reply_id = draw(st.sampled_from(IDS)) if kind in ("button_reply", "list_reply", "quick_reply") else ""
    if kind not in ("text", "image", "document", "button_reply", "list_reply", "quick_reply"):
        text = ""  # these kinds carry no text
    return kind, text, reply_id


def build(spec: Spec) -> InboundMessage:
    kind, text, reply_id = spec
    contents: dict[str, tuple[str, Any]] = {
        "text": ("text", {"body": text}),
        "image": ("image", {"id": "m", "mime_type": "image/jpeg", "caption": text}),
        "document": ("document", {"id": "d", "mime_type": "application/pdf", "caption": text}),
        "location": ("location", {"latitude": 1.0, "longitude": 2.0}),
        "button_reply": ("interactive", {"type": "button_reply", "button_reply": {"id": reply_id, "title": text}}),
        "list_reply": ("interactive", {"type": "list_reply", "list_reply": {"id": reply_id, "title": text}}),
        "quick_reply": ("button", {"text": text, "payload": reply_id}),
        "reaction": ("reaction", {"message_id": "wamid.x", "emoji": "👍"}),
        "unsupported": ("poll", {"question": "?"}),
    }
    type_, content = contents[kind]
    return inbound(type_, content)


#: A route as the model sees it: kinds (None: any; "media" not expanded), text pattern, reply ids.
RouteSpec = tuple[list[str] | None, str | None, list[str] | None]
route_specs = st.tuples(
    st.none()
    | st.lists(
        st.sampled_from(["text", "image", "media", "button_reply", "list_reply", "quick_reply", "location"]),
        min_size=1,
        max_size=3,
    ),
    st.none() | st.sampled_from(PATTERNS),
    st.none() | st.lists(st.sampled_from(IDS), min_size=1, max_size=2),
)


def model(routes: list[RouteSpec], has_fallback: bool, spec: Spec) -> int | str | None:
    """The documented order: the first route whose every filter matches, else the fallback, else nobody."""
    kind, text, reply_id = spec
    for index, (kinds, pattern, ids) in enumerate(routes):
        kinds_ok = kinds is None or kind in kinds or ("media" in kinds and kind in ("image", "document"))
        text_ok = pattern is None or re.search(pattern, text) is not None
        ids_ok = ids is None or reply_id in ids
        if kinds_ok and text_ok and ids_ok:
            return index
    return "fallback" if has_fallback else None


def handler_named(name: int | str) -> Any:
    async def handler(msg: InboundMessage, ctx: Context) -> None: ...

    handler.__name__ = str(name)
    return handler


@settings(max_examples=300, deadline=None)
@given(st.lists(route_specs, max_size=5), st.booleans(), st.lists(specs(), min_size=1, max_size=8))
def test_the_router_follows_the_documented_matching_order(
    routes: list[RouteSpec], has_fallback: bool, messages: list[Spec]
) -> None:
    bot = Bot()
    for index, (kinds, pattern, ids) in enumerate(routes):
        bot.on(kinds, text=pattern, reply_id=ids)(handler_named(index))
    if has_fallback:
        bot.on_message(handler_named("fallback"))
    for spec in messages:
        chosen = bot.router.handler_for(build(spec))
        expected = model(routes, has_fallback, spec)
        assert (chosen.__name__ if chosen is not None else None) == (None if expected is None else str(expected))


def test_a_reply_id_pattern_is_searched_in_the_tapped_id() -> None:
    bot = Bot()
    bot.on(reply_id=re.compile(r"^urgency:"))(handler_named("urgency"))
    bot.on_message(handler_named("fallback"))
    tap = {"type": "button_reply", "button_reply": {"id": "urgency:high:M-1", "title": "Urgent"}}
    other = {"type": "button_reply", "button_reply": {"id": "book:4B", "title": "Book"}}
    for content, name in ((tap, "urgency"), (other, "fallback")):
        chosen = bot.router.handler_for(inbound("interactive", content))
        assert chosen is not None and chosen.__name__ == name
    chosen = bot.router.handler_for(inbound("text", {"body": "urgency:high"}))  # not a tap: no reply id
    assert chosen is not None and chosen.__name__ == "fallback"
