"""Photo tickets and rent reminders: the property bot's media, reply-button and template messages.

A tenant's photo becomes a row of the Maintenance sheet (its media id, the caption's words, the
unit named in the caption); the answer asks how urgent it is with three reply buttons, whose ids
carry the ticket (``urgency:<level>:<ticket>``), so a tap finds its ticket without any state in
the bot. Rent reminders go out as the approved template ``rent_reminder``: a business may write
first (or after 24 hours of silence) only with a template.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

import msgspec

from sluiceway import OutboundMessage, ReplyButton
from sluiceway.examples.property_bot.answers import (
    _URGENT,
    FIRST_DATA_ROW,
    MAINTENANCE_RANGE,
    UNITS_RANGE,
    SheetStore,
    Unit,
    _cell,
    ticket_id,
    units_from,
)
from sluiceway.examples.property_bot.nlu import extract_unit

Urgency = Literal["high", "normal", "low"]
#: Each urgency's button title (at most 20 characters) and what the tenant is told after the tap.
URGENCY_CHOICES: dict[Urgency, tuple[str, str]] = {
    "high": ("Urgent", "is marked URGENT: the on-call technician is being notified."),
    "normal": ("This week", "is booked for a visit this week."),
    "low": ("It can wait", "will be fixed at the next routine visit."),
}
#: Matches the ids of the urgency buttons (``Bot.on(reply_id=...)`` routes taps with it).
URGENCY_REPLY = re.compile(r"^urgency:(high|normal|low):(M-[0-9A-F]{8})$")
STAFF_RANGE = "Staff!A2:B"
#: The approved template rent reminders use, its language, and its body's parameters in order.
RENT_REMINDER_TEMPLATE = "rent_reminder"
RENT_REMINDER_LANGUAGE = "en_US"
#: A staff member's command: "remind rent 4B +15551234567".
REMIND_COMMAND = re.compile(r"^\s*remind\s+rent\s+(?P<unit>\w+)\s+(?P<to>\+?\d{6,15})\s*$", re.IGNORECASE)
_NO_UNIT = (
    'Thanks for the photo. Which unit is it? Please send it again with the unit in the caption, e.g. "leak in 4B".'
)


class PhotoAnswer(msgspec.Struct, frozen=True):
    """What the bot says to a photo: ``text``, and the ticket the urgency buttons are for ("" if none was filed)."""

    text: str
    ticket: str = ""


def urgency_buttons(ticket: str) -> list[ReplyButton]:
    """The three urgency buttons for ``ticket``, most urgent first."""
    return [ReplyButton(f"urgency:{level}:{ticket}", title) for level, (title, _) in URGENCY_CHOICES.items()]


async def file_photo(
    store: SheetStore,
    spreadsheet_id: str,
    *,
    media_id: str,
    caption: str,
    sender: str,
    message_id: str,
    now: dt.datetime | None = None,
) -> PhotoAnswer:
    """File a photo as a maintenance ticket (once per message, however often it is retried)."""
    unit = extract_unit(caption)
    if unit is None:
        return PhotoAnswer(_NO_UNIT)
    ticket = ticket_id(message_id)
    rows = await store.get_values(spreadsheet_id, MAINTENANCE_RANGE)
    if all(_cell(r, 0) != ticket for r in rows):
        at = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
        words = caption.strip() or "(photo)"
        row = [ticket, unit, sender, words, _URGENT(caption), "open", at, media_id]
        await store.append_values(spreadsheet_id, MAINTENANCE_RANGE, [row])
    return PhotoAnswer(f"Thanks, ticket {ticket} is logged for {unit} with your photo. How urgent is it?", ticket)


async def set_urgency(store: SheetStore, spreadsheet_id: str, reply_id: str, sender: str) -> str:
    """Apply a tap on an urgency button: the ticket's priority cell, and what to tell the tenant."""
    match = URGENCY_REPLY.match(reply_id)
    if match is None:
        raise ValueError(f"not an urgency button id: {reply_id!r}")
    level: Urgency = match.group(1)  # type: ignore[assignment]
    ticket = match.group(2)
    rows = await store.get_values(spreadsheet_id, MAINTENANCE_RANGE)
    for index, row in enumerate(rows):
        if _cell(row, 0) == ticket and _cell(row, 2) == sender:
            sheet_row = FIRST_DATA_ROW + index
            await store.update_values(spreadsheet_id, f"Maintenance!E{sheet_row}", [[level]])
            return f"Ticket {ticket} for {_cell(row, 1)} {URGENCY_CHOICES[level][1]}"
    return f"I couldn't find your ticket {ticket}. Please send the photo again with your unit in the caption."


def next_rent_due(today: dt.date) -> dt.date:
    """Rent is due on the first of the month: the next first after ``today``."""
    return dt.date(today.year + today.month // 12, today.month % 12 + 1, 1)


def rent_reminder(to: str, unit: Unit, due: dt.date) -> OutboundMessage:
    """The ``rent_reminder`` template for ``unit``'s tenant: "Rent for {{1}} of {{2}} is due on {{3}}"."""
    parameters = [unit.unit, f"${unit.rent:,}", due.strftime("%-d %B %Y")]
    body = {"type": "body", "parameters": [{"type": "text", "text": value} for value in parameters]}
    return OutboundMessage.of_template(to, RENT_REMINDER_TEMPLATE, RENT_REMINDER_LANGUAGE, [body])


async def remind_rent(
    store: SheetStore, spreadsheet_id: str, command: str, sender: str, today: dt.date
) -> tuple[str, OutboundMessage | None]:
    """Run a staff member's ``remind rent <unit> <number>``: what to answer them, and the template to send.

    Only numbers on the Staff sheet may send reminders (anyone else gets a refusal and nothing is sent).
    """
    match = REMIND_COMMAND.match(command)
    if match is None:
        return 'Usage: "remind rent <unit> <tenant number>", e.g. "remind rent 4B +15551234567".', None
    staff = {_cell(row, 0).removeprefix("+") for row in await store.get_values(spreadsheet_id, STAFF_RANGE)}
    if sender not in staff:
        return "Only the property office can send rent reminders.", None
    units = {u.unit: u for u in units_from(await store.get_values(spreadsheet_id, UNITS_RANGE))}
    unit = units.get(match.group("unit").upper())
    if unit is None:
        return f"There is no unit {match.group('unit')}.", None
    to = match.group("to").removeprefix("+")
    due = next_rent_due(today)
    reminder = rent_reminder(to, unit, due)
    return f"Rent reminder for {unit.unit} (${unit.rent:,}, due {due.isoformat()}) sent to +{to}.", reminder
