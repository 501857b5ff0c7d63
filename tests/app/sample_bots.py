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


#: Routes by kind and reply id; fails on "boom" and answers the failure with ``on_error``.
routed_bot = Bot()


@routed_bot.on("image")
async def photo(msg: InboundMessage, ctx: Context) -> None:
    """Acknowledge a photo by its media id."""
    assert msg.image is not None
    await ctx.reply(f"photo {msg.image.id}: {msg.image.caption}")


@routed_bot.on(reply_id="yes")
async def said_yes(msg: InboundMessage, ctx: Context) -> None:
    await ctx.reply("you tapped yes")


@routed_bot.on_message
async def fallback(msg: InboundMessage, ctx: Context) -> None:
    """Echo, but fail on "boom" (every attempt) and on "raise-in-on-error"."""
    if "boom" in msg.text or "raise-in-on-error" in msg.text:
        raise ValueError(f"cannot handle {msg.text!r}")
    await ctx.reply(f"{msg.kind}: {msg.text}")


@routed_bot.on_error
async def sorry(msg: InboundMessage, ctx: Context, error: Exception) -> None:
    """Apologise once, naming the error's type; fail itself on "raise-in-on-error"."""
    if "raise-in-on-error" in msg.text:
        raise RuntimeError("on_error failed too")
    await ctx.reply(f"Sorry, something went wrong ({type(error).__name__}, attempt {ctx.attempt})")
