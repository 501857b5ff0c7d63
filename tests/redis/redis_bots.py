"""The bot the multi-node tests run in ``sluiceway run`` processes (``redis_bots:echo_bot``)."""

from __future__ import annotations

from sluiceway import Bot, Context, InboundMessage

#: Answers every message with its own text.
echo_bot = Bot()


@echo_bot.on_message
async def echo(msg: InboundMessage, ctx: Context) -> None:
    await ctx.reply(f"echo: {msg.text}")
