"""Small bots for tests, loaded by name (``sample_bots:echo_bot``) in the test and in runtime workers.

``conftest.py`` puts this folder on the import path of the tests and, through ``PYTHONPATH``, of
the worker processes they start.
"""

from __future__ import annotations

from sluiceway import Bot, Context, InboundMessage

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
