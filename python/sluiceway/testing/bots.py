"""Small bots for tests: importable by name, so engine workers can load them."""

from __future__ import annotations

from sluiceway.app.bot import Bot
from sluiceway.app.context import Context
from sluiceway.app.inbound import InboundMessage

#: Answers every message with its own text.
echo_bot = Bot()


@echo_bot.on_message
async def echo(msg: InboundMessage, ctx: Context) -> None:
    """Reply with the message's text."""
    await ctx.reply(f"echo: {msg.text}")


#: Fails on every message whose text contains "boom"; echoes the others.
failing_bot = Bot()


@failing_bot.on_message
async def fail_on_boom(msg: InboundMessage, ctx: Context) -> None:
    """Raise for "boom", echo otherwise."""
    if "boom" in msg.text:
        raise RuntimeError(f"the handler failed on {msg.id}")
    await ctx.reply(f"echo: {msg.text}")
