"""The bot the multi-node tests run in ``sluiceway run`` processes (``redis_bots:echo_bot``).

With ``REDIS_TEST_RUN_LOG`` set, each run of the handler appends ``"<sender> <text>"`` to that file
(one short ``O_APPEND`` write: atomic across the nodes' worker processes), so a test can read the
order messages ran in across nodes. ``REDIS_TEST_HANDLER_SECONDS`` makes each run take that long
(so that a killed node has messages in its hands).
"""

from __future__ import annotations

import asyncio
import os

from sluiceway import Bot, Context, InboundMessage

#: Answers every message with its own text.
echo_bot = Bot()


@echo_bot.on_message
async def echo(msg: InboundMessage, ctx: Context) -> None:
    log = os.environ.get("REDIS_TEST_RUN_LOG")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{msg.sender} {msg.text}\n".encode())
        finally:
            os.close(fd)
    await asyncio.sleep(float(os.environ.get("REDIS_TEST_HANDLER_SECONDS", "0")))
    await ctx.reply(f"echo: {msg.text}")
