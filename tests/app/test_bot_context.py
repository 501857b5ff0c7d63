"""Bot registration and the handler context: replies quote the message, keys make them idempotent."""

from __future__ import annotations

import asyncio

import pytest

from sluiceway.app.bot import Bot, load_bot
from sluiceway.app.context import Context, HandlerResult
from sluiceway.app.inbound import InboundMessage
from sluiceway.app.settings import Settings
from sluiceway.whatsapp import OutboundMessage
from sluiceway.whatsapp.messages import Language, Template

MESSAGE = InboundMessage(id="wamid.ctx", sender="15550001111", type="text", text="hi")


def test_reply_quotes_the_inbound_message_with_stable_keys() -> None:
    """Replies go to the sender, quote the inbound wamid, and carry keys derived from it in order."""
    ctx = Context(MESSAGE, Settings(), sheets=None)

    async def handler() -> None:
        await ctx.reply("first")
        await ctx.reply("urgent", priority="high")
        await ctx.send(OutboundMessage(to="15550002222", type="template", template=Template("t", Language("en_US"))))

    asyncio.run(handler())
    result = ctx.result()
    assert [o.idempotency_key for o in result.outgoing] == ["wamid.ctx#0", "wamid.ctx#1", "wamid.ctx#2"]
    first, urgent, template = result.outgoing
    assert first.message.to == "15550001111" and first.message.context is not None
    assert first.message.context.message_id == "wamid.ctx" and first.message.text is not None
    assert (urgent.priority, template.message.type, template.message.context) == ("high", "template", None)


def test_a_retried_handler_produces_the_same_keys() -> None:
    """Running the handler again for the same message gives the same idempotency keys (the sender drops repeats)."""

    def keys() -> list[str]:
        ctx = Context(MESSAGE, Settings(), sheets=None, attempt=2)
        asyncio.run(ctx.reply("x"))
        return [o.idempotency_key for o in ctx.result().outgoing]

    assert keys() == keys() == ["wamid.ctx#0"]


def test_context_rejects_bad_sends() -> None:
    """Unknown priorities, non-messages, over-long texts and empty metric names are refused at once."""
    ctx = Context(MESSAGE, Settings(), sheets=None)
    with pytest.raises(ValueError, match="priority"):
        asyncio.run(ctx.reply("x", priority="urgent"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="OutboundMessage"):
        asyncio.run(ctx.send({"to": "1"}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="4096"):
        asyncio.run(ctx.reply("x" * 5000))
    with pytest.raises(ValueError, match="metric name"):
        ctx.metrics.record("", 1)


def test_metrics_travel_with_the_result() -> None:
    """ctx.metrics samples are part of the handler's result, labels as strings."""
    ctx = Context(MESSAGE, Settings(), sheets=None)
    ctx.metrics.record("intents", 1, intent="rent")
    result = ctx.result()
    assert isinstance(result, HandlerResult)
    assert [(m.name, m.value, m.labels) for m in result.metrics] == [("intents", 1.0, {"intent": "rent"})]


def test_bot_registration_rules() -> None:
    """A bot takes one async handler; sync handlers and a second handler are refused."""
    bot = Bot(settings=Settings())
    with pytest.raises(ValueError, match="no message handler"):
        bot.check()

    def sync_handler(msg: InboundMessage, ctx: Context) -> None:
        return None

    with pytest.raises(TypeError, match="async"):
        bot.on_message(sync_handler)

    @bot.on_message
    async def handle(msg: InboundMessage, ctx: Context) -> None:
        return None

    async def other(msg: InboundMessage, ctx: Context) -> None:
        return None

    with pytest.raises(ValueError, match="already"):
        bot.on_message(other)
    bot.check()
    assert bot.settings == Settings()


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("nocolon", "module:attribute"),
        ("no_such_module_xyz:bot", "cannot import"),
        ("sample_bots:echo", "not a sluiceway Bot"),
    ],
)
def test_load_bot_errors_name_the_problem(spec: str, problem: str) -> None:
    """Bad bot specs fail with a ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=problem):
        load_bot(spec)


def test_load_bot_finds_a_bot() -> None:
    """A module:attribute naming a Bot loads it."""
    assert isinstance(load_bot("sample_bots:echo_bot"), Bot)
