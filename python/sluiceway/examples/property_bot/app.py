"""The property bot: ``sluiceway run sluiceway.examples.property_bot.app:bot``.

Needs ``spreadsheet_id`` (a Google Sheet with Units, Viewings and Maintenance tabs shaped
like the CSVs in ``data/``) and the WhatsApp settings; ``sluiceway demo`` runs it offline.
"""

from sluiceway import Bot, Context, InboundMessage
from sluiceway.examples.property_bot.answers import PropertyDesk

bot = Bot()


@bot.on_message
async def handle(msg: InboundMessage, ctx: Context) -> None:
    """Answer one tenant message from the sheets; urgent repairs jump the send queue too."""
    desk = PropertyDesk(ctx.sheets, ctx.settings.spreadsheet_id)
    answer = await desk.answer(msg.text, msg.sender, msg.id)
    ctx.metrics.record("property_bot_messages", 1, intent=answer.intent)
    await ctx.reply(answer.text, priority="high" if answer.urgent else "normal")
