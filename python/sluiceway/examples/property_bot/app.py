"""The property bot: ``sluiceway run sluiceway.examples.property_bot.app:bot``.

Needs ``spreadsheet_id`` (a Google Sheet with Units, Viewings, Maintenance and Staff tabs shaped
like the CSVs in ``data/``) and the WhatsApp settings; ``sluiceway demo`` runs it offline. Rent
reminders use the template ``rent_reminder`` (body: unit, amount, due date), which must be
approved for the business's WhatsApp account.

Routes, in matching order: a photo files a maintenance ticket and asks how urgent it is (reply
buttons); a tap on one of those buttons sets the ticket's urgency; a staff member's "remind rent
<unit> <number>" sends the rent reminder template; every other message is answered from the sheets.
"""

import datetime as dt

from sluiceway import Bot, Context, InboundMessage
from sluiceway.examples.property_bot.answers import PropertyDesk
from sluiceway.examples.property_bot.tickets import (
    REMIND_COMMAND,
    URGENCY_REPLY,
    file_photo,
    remind_rent,
    set_urgency,
    urgency_buttons,
)

bot = Bot()
#: What a tenant hears when their message could not be handled (``on_error``, once per message).
SORRY = "Sorry, something went wrong on our side. We're on it; please try again in a few minutes."


@bot.on("image")
async def photo(msg: InboundMessage, ctx: Context) -> None:
    """File the photo as a maintenance ticket and ask how urgent it is."""
    assert msg.image is not None  # kind "image" has its object
    answer = await file_photo(
        ctx.sheets,
        ctx.settings.spreadsheet_id,
        media_id=msg.image.id,
        caption=msg.image.caption,
        sender=msg.sender,
        message_id=msg.id,
    )
    ctx.metrics.record("property_bot_messages", 1, intent="photo")
    if answer.ticket:
        await ctx.reply_buttons(answer.text, urgency_buttons(answer.ticket))
    else:
        await ctx.reply(answer.text)


@bot.on("button_reply", reply_id=URGENCY_REPLY)
async def urgency(msg: InboundMessage, ctx: Context) -> None:
    """Set the urgency the tenant tapped on their ticket; urgent ones jump the send queue."""
    text = await set_urgency(ctx.sheets, ctx.settings.spreadsheet_id, msg.reply_id, msg.sender)
    ctx.metrics.record("property_bot_messages", 1, intent="urgency")
    await ctx.reply(text, priority="high" if msg.reply_id.startswith("urgency:high:") else "normal")


@bot.on("text", text=REMIND_COMMAND)
async def remind(msg: InboundMessage, ctx: Context) -> None:
    """A staff member's "remind rent 4B +15551234567": send the tenant the rent reminder template."""
    answer, reminder = await remind_rent(ctx.sheets, ctx.settings.spreadsheet_id, msg.text, msg.sender, dt.date.today())
    if reminder is not None:
        await ctx.send(reminder)
    await ctx.reply(answer)


@bot.on_message
async def handle(msg: InboundMessage, ctx: Context) -> None:
    """Answer one tenant message from the sheets; urgent repairs jump the send queue too."""
    desk = PropertyDesk(ctx.sheets, ctx.settings.spreadsheet_id)
    answer = await desk.answer(msg.text, msg.sender, msg.id)
    ctx.metrics.record("property_bot_messages", 1, intent=answer.intent)
    await ctx.reply(answer.text, priority="high" if answer.urgent else "normal")


@bot.on_error
async def sorry(msg: InboundMessage, ctx: Context, error: Exception) -> None:
    """Tell the tenant once that their message failed (the operator finds it, with its traceback, in the DLQ)."""
    await ctx.reply(SORRY)
