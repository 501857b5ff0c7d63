"""Every outbound kind a handler can send round-trips through the runtime, the sender and the emulator.

The emulator decodes each request with the API's message Structs (Meta's limits included), so an
accepted message is one the Cloud API would take; the reply handle, read receipts and
``send_now`` are checked the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from sluiceway.app.context import Context
from sluiceway.app.inbound import InboundMessage
from sluiceway.app.media import WorkerGraph
from sluiceway.app.settings import Settings
from sluiceway.whatsapp import OutboundMessage

from .outbound_stack import GraphStack

KINDS = [
    "text",
    "image",
    "document",
    "audio",
    "video",
    "sticker",
    "buttons",
    "list",
    "location",
    "reaction",
    "template",
]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_every_kind_reaches_the_emulator_in_metas_shape() -> None:
    async def scenario() -> None:
        async with GraphStack("outbound_bots:kinds_bot") as s:
            s.whatsapp.register_template("rent_reminder", "en_US")
            tenants = {kind: f"1555000{i:04d}" for i, kind in enumerate(KINDS)}
            wamids = {kind: (await s.whatsapp.post_inbound(tenant, kind))[0] for kind, tenant in tenants.items()}
            await s.until(lambda: all(s.sent_to(t) for t in tenants.values()))
            got = {kind: s.sent_to(tenant)[0].message for kind, tenant in tenants.items()}
            assert {kind: message.type for kind, message in got.items()} == {
                **{kind: kind for kind in KINDS},
                "buttons": "interactive",
                "list": "interactive",
            }
            assert got["text"].text is not None and got["text"].text.preview_url
            assert got["image"].image is not None and got["image"].image.caption == "the flat"
            assert got["document"].document is not None and got["document"].document.filename == "lease.pdf"
            buttons = got["buttons"].interactive
            assert buttons is not None and [b["reply"]["id"] for b in buttons.action["buttons"]] == ["now", "later"]
            rows = got["list"].interactive
            assert rows is not None and [r["id"] for r in rows.action["sections"][0]["rows"]] == ["3d", "4a"]
            assert got["location"].location is not None and got["location"].location.name == "Office"
            assert got["reaction"].reaction is not None and got["reaction"].reaction.message_id == wamids["reaction"]
            assert got["template"].template is not None and got["template"].template.name == "rent_reminder"
            # Replies quote the message they answer (reactions and templates need not).
            assert got["image"].context is not None and got["image"].context.message_id == wamids["image"]

    run(scenario)


def test_a_limit_is_a_value_error_inside_the_handler_and_nothing_is_sent() -> None:
    async def scenario() -> None:
        async with GraphStack("outbound_bots:kinds_bot") as s:
            await s.whatsapp.post_inbound("15550009999", "too many buttons")
            await s.until(lambda: bool(s.sent_to("15550009999")))
            sent = s.sent_to("15550009999")
            assert [a.message.type for a in sent] == ["text"]
            assert sent[0].message.text is not None
            assert sent[0].message.text.body == "refused: reply buttons must number 1 to 3, got 4"

    run(scenario)


def test_the_reply_handle_refuses_to_wait_inside_the_handler_and_knows_the_wamid_after() -> None:
    async def scenario() -> None:
        async with GraphStack("outbound_bots:kinds_bot") as s:
            wamid, status = await s.whatsapp.post_inbound("15550008888", "handle")
            assert status == 200
            await s.until(lambda: len(s.sent_to("15550008888")) == 2)
            first, second = (a for a in s.sent_to("15550008888"))
            assert second.message.text is not None
            assert second.message.text.body == f"pending: ReplyPending {wamid}#0"
            assert s.runtime is not None
            await s.until(lambda: s.runtime is not None and getattr(s.runtime.reply_outcome(f"{wamid}#1"), "wamid", ""))
            outcome = s.runtime.reply_outcome(f"{wamid}#0")
            assert outcome is not None and (outcome.state, outcome.wamid) == ("sent", first.wamid)
            assert s.runtime.reply_outcome("never-sent#0") is None

    run(scenario)


def test_mark_read_shows_typing_at_once_from_the_worker() -> None:
    async def scenario() -> None:
        async with GraphStack("outbound_bots:kinds_bot") as s:
            wamid, _ = await s.whatsapp.post_inbound("15550007777", "read")
            await s.until(lambda: bool(s.sent_to("15550007777")))
            receipts = s.whatsapp.read_receipts
            assert [(r.message_id, r.typing_indicator is not None) for r in receipts] == [(wamid, True)]

    run(scenario)


def test_send_now_returns_the_wamid_inside_the_handler() -> None:
    async def scenario() -> None:
        async with GraphStack("outbound_bots:kinds_bot") as s:
            await s.whatsapp.post_inbound("15550006666", "send now")
            await s.until(lambda: len(s.sent_to("15550006666")) == 2)
            now, reply = s.sent_to("15550006666")
            assert reply.message.text is not None and reply.message.text.body == f"wamid {now.wamid}"

    run(scenario)


def test_a_worker_without_a_token_says_what_to_set() -> None:
    settings = Settings(whatsapp_phone_number_id="106540352242922")
    message = InboundMessage(id="wamid.1", sender="15550005555", type="text", text="hi")
    ctx = Context(message, settings, None, graph=WorkerGraph(settings, {}))
    with pytest.raises(RuntimeError, match="WHATSAPP_ACCESS_TOKEN"):
        ctx.media  # noqa: B018 - the property is what fails
    with pytest.raises(RuntimeError, match="no Graph API access"):
        run(Context(message, settings, None).mark_read)


def test_a_reply_names_the_number_it_came_to_and_refuses_a_foreign_one() -> None:
    settings = Settings(whatsapp_phone_number_id="1", whatsapp_phone_number_ids=("2",))
    message = InboundMessage(id="wamid.1", sender="15550005555", type="text", text="hi", phone_number_id="2")
    ctx = Context(message, settings, None)
    handle = asyncio.run(ctx.reply("hello"))
    assert (handle.key, handle.phone_number_id) == ("wamid.1#0", "2")
    with pytest.raises(ValueError, match="not one of the bot's numbers"):
        asyncio.run(ctx.send(OutboundMessage.of_text("15550005555", "x"), phone_number_id="3"))
    assert [o.phone_number_id for o in ctx.result().outgoing] == ["2"]
