"""Bots that send every outbound kind, use media and read receipts; loaded by name in runtime workers.

``conftest.py`` puts this folder on the import path of the worker processes (``outbound_bots:kinds_bot``).
"""

from __future__ import annotations

import hashlib

from sluiceway import Bot, Context, InboundMessage
from sluiceway.app.context import ReplyPending
from sluiceway.whatsapp import ListRow, ListSection, OutboundMessage, ReplyButton

#: One message per outbound kind, chosen by the tenant's text; the keys are the texts it understands.
kinds_bot = Bot()

#: A small PNG-like payload the media bot uploads (the emulator stores any bytes).
UPLOADED = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@kinds_bot.on_message
async def send_kind(msg: InboundMessage, ctx: Context) -> None:
    kind = msg.text
    if kind == "text":
        await ctx.reply("plain text", preview_url=True)
    elif kind == "image":
        await ctx.reply_image("https://example.com/flat.jpg", caption="the flat")
    elif kind == "document":
        await ctx.reply_media("document", "https://example.com/lease.pdf", filename="lease.pdf", caption="lease")
    elif kind == "audio":
        await ctx.reply_media("audio", "https://example.com/note.ogg")
    elif kind == "video":
        await ctx.reply_media("video", "https://example.com/tour.mp4", caption="tour")
    elif kind == "sticker":
        await ctx.reply_media("sticker", "https://example.com/ok.webp")
    elif kind == "buttons":
        await ctx.reply_buttons("How urgent?", [("now", "Right now"), ReplyButton("later", "Can wait")], footer="f")
    elif kind == "list":
        rows = [ListRow("3d", "Flat 3D", "2 bedrooms"), ListRow("4a", "Flat 4A")]
        await ctx.reply_list("Which flat?", "Flats", [ListSection(rows, title="Free")], header="Viewing")
    elif kind == "location":
        await ctx.reply_location(51.5, -0.12, name="Office", address="1 High St")
    elif kind == "reaction":
        await ctx.react("👍")
    elif kind == "template":
        await ctx.send_template(msg.sender, "rent_reminder", "en_US", [{"type": "body", "parameters": []}])
    elif kind == "read":
        await ctx.mark_read(typing=True)
        await ctx.reply("read it")
    elif kind == "handle":
        handle = await ctx.reply("first")
        try:
            await handle.sent()
        except ReplyPending as error:
            await ctx.reply(f"pending: {type(error).__name__} {handle.key}")
    elif kind == "too many buttons":
        try:
            await ctx.reply_buttons("Pick", [(str(i), f"Option {i}") for i in range(4)])
        except ValueError as error:
            await ctx.reply(f"refused: {error}")
    elif kind == "send now":
        wamid = await ctx.send_now(OutboundMessage.of_text(msg.sender, "sent from the worker"))
        await ctx.reply(f"wamid {wamid}")
    else:
        await ctx.reply(f"unknown kind {kind!r}")


#: Downloads what the tenant sent and answers with its size and digest; uploads a file and sends it back.
media_bot = Bot()


@media_bot.on_message
async def handle_media(msg: InboundMessage, ctx: Context) -> None:
    if msg.type in ("image", "audio", "video", "document", "sticker"):
        try:
            media = await ctx.media.download(msg.data)
        except Exception as error:
            await ctx.reply(f"failed: {type(error).__name__}: {error}")
            return
        where = "file" if media.path is not None else "memory"
        data = media.read_bytes()
        if media.path is not None:
            media.path.unlink()
        await ctx.reply(f"{media.mime_type} {len(data)} {hashlib.sha256(data).hexdigest()} {where}")
    elif msg.text == "upload":
        media_id = await ctx.upload_media(UPLOADED, "image/png")
        await ctx.reply_image(media_id=media_id, caption="uploaded")
    else:
        await ctx.reply(f"echo: {msg.text}")


#: Replies to the tenant, and also writes to someone else (``data["notify"]`` of a text is not
#: available, so the text names them: "tell 15550001111").
notify_bot = Bot()


@notify_bot.on_message
async def notify(msg: InboundMessage, ctx: Context) -> None:
    if msg.text.startswith("tell "):
        await ctx.send(OutboundMessage.of_text(msg.text.removeprefix("tell "), f"news from {msg.sender}"))
    await ctx.reply(f"echo: {msg.text}")
