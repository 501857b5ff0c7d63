"""The property bot with every kind it meets: photo tickets, urgency buttons, the rent reminder template, on_error."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway import Settings
from sluiceway.examples.property_bot import SHEETS
from sluiceway.examples.property_bot.answers import ticket_id
from sluiceway.examples.property_bot.app import SORRY, bot
from sluiceway.examples.property_bot.tickets import (
    RENT_REMINDER_LANGUAGE,
    RENT_REMINDER_TEMPLATE,
    file_photo,
    next_rent_due,
)
from sluiceway.testing import BotTester, SheetsEmulator
from sluiceway.testing.sheets_grid import rows_from_csv

from .conftest import SPREADSHEET, Stack

TENANT = "15551234567"
STAFF = "15550009999"  # on the sample Staff sheet
LEAK = {"id": "media-leak-1", "mime_type": "image/jpeg", "sha256": "ab12", "caption": "water under the sink in 4B"}


def test_a_photo_files_a_ticket_and_a_tap_sets_its_urgency() -> None:
    async def scenario() -> None:
        async with BotTester(bot, sheets=SHEETS) as tester:
            photo = await tester.send_kind("image", LEAK, sender=TENANT)
            ticket = ticket_id(photo.inbound.id)
            assert photo.buttons == ["Urgent", "This week", "It can wait"]
            assert photo.text == f"Thanks, ticket {ticket} is logged for 4B with your photo. How urgent is it?"
            [question] = photo.messages
            assert question.context is not None and question.context.message_id == photo.inbound.id
            row = tester.sheet_rows("Maintenance")[-1]
            assert row[:6] == [ticket, "4B", TENANT, "water under the sink in 4B", "normal", "open"]
            assert row[7] == "media-leak-1"

            tapped = await tester.tap("Urgent", sender=TENANT)
            assert tapped.inbound.kind == "button_reply"
            assert tapped.text == f"Ticket {ticket} for 4B is marked URGENT: the on-call technician is being notified."
            assert tapped.sent[0].priority == "high"
            assert tester.sheet_rows("Maintenance")[-1][4] == "high"

            calmer = await tester.tap("It can wait", sender=TENANT)  # the same question's buttons still work
            assert calmer.sent[0].priority == "normal"
            assert tester.sheet_rows("Maintenance")[-1][4] == "low"

    asyncio.run(scenario())


def test_a_photo_without_a_unit_is_asked_about_and_files_nothing() -> None:
    async def scenario() -> None:
        async with BotTester(bot, sheets=SHEETS) as tester:
            before = len(tester.sheet_rows("Maintenance"))
            reply = await tester.send_kind("image", {"id": "m2", "mime_type": "image/jpeg"}, sender=TENANT)
            assert reply.buttons == [] and "Which unit is it?" in reply.text
            assert len(tester.sheet_rows("Maintenance")) == before

    asyncio.run(scenario())


def test_a_tenant_cannot_set_the_urgency_of_someone_elses_ticket() -> None:
    async def scenario() -> None:
        async with BotTester(bot, sheets=SHEETS) as tester:
            photo = await tester.send_kind("image", LEAK, sender=TENANT)
            ticket = ticket_id(photo.inbound.id)
            tap = {"type": "button_reply", "button_reply": {"id": f"urgency:high:{ticket}", "title": "Urgent"}}
            other = await tester.send_kind("interactive", tap, sender="15557654321")
            assert other.text.startswith(f"I couldn't find your ticket {ticket}")
            assert tester.sheet_rows("Maintenance")[-1][4] == "normal"

    asyncio.run(scenario())


def test_a_retried_photo_files_one_ticket() -> None:
    sheets = SheetsEmulator()
    sheets.add_spreadsheet("s", {name: rows_from_csv(path) for name, path in SHEETS.items()})

    async def scenario() -> None:
        async with sheets.client() as client:
            for _ in range(2):
                await file_photo(client, "s", media_id="m", caption="leak in 2A", sender=TENANT, message_id="wamid.p")
        assert [row[0] for row in sheets.values("s", "Maintenance")].count(ticket_id("wamid.p")) == 1

    asyncio.run(scenario())


def test_staff_send_the_rent_reminder_template_and_tenants_cannot() -> None:
    async def scenario() -> None:
        async with BotTester(bot, sheets=SHEETS) as tester:
            reply = await tester.send(f"remind rent 3D +{TENANT}", sender=STAFF)
            reminder, confirmation = reply.messages
            assert reminder.to == TENANT and reminder.template is not None
            assert (reminder.template.name, reminder.template.language.code) == (
                RENT_REMINDER_TEMPLATE,
                RENT_REMINDER_LANGUAGE,
            )
            [body] = reminder.template.components or []
            due = next_rent_due(dt.date.today())
            assert [p["text"] for p in body["parameters"]] == ["3D", "$2,600", due.strftime("%-d %B %Y")]
            assert confirmation.to == STAFF and reply.text.startswith(f"Rent reminder for 3D ($2,600, due {due}")

            refused = await tester.send(f"remind rent 3D +{TENANT}", sender=TENANT)
            assert refused.text == "Only the property office can send rent reminders."
            assert [m.to for m in refused.messages] == [TENANT]

    asyncio.run(scenario())


@given(st.dates())
def test_rent_is_next_due_on_the_first_after_today(today: dt.date) -> None:
    if today >= dt.date(9999, 12, 1):
        with pytest.raises(ValueError):
            next_rent_due(today)
        return
    due = next_rent_due(today)
    assert due.day == 1 and today < due <= today + dt.timedelta(days=31)


def test_a_tenant_hears_sorry_once_when_the_sheets_stay_down() -> None:
    sheets = SheetsEmulator()
    sheets.add_spreadsheet("prop", {name: rows_from_csv(path) for name, path in SHEETS.items()})

    async def scenario() -> None:
        async with BotTester(bot, sheets=sheets, settings=Settings(spreadsheet_id="prop"), max_attempts=2) as tester:
            sheets.deny("prop")
            reply = await tester.send("is 3D available?", sender=TENANT)
            assert (reply.texts, len(tester.dead_letters)) == ([SORRY], 1)

    asyncio.run(scenario())


# --- through the runtime and the emulators ------------------------------------------------------------


def test_photo_tap_and_reminder_through_the_runtime(stack: type[Stack]) -> None:
    async def scenario() -> None:
        async with stack() as s:
            s.whatsapp.register_template(RENT_REMINDER_TEMPLATE, RENT_REMINDER_LANGUAGE)
            leak = LEAK | {"id": s.whatsapp.add_media(b"\xff\xd8 a leak", "image/jpeg")}
            photo, status = await s.whatsapp.post_inbound(TENANT, kind="image", content=leak)
            assert status == 200
            await s.until(lambda: bool(questions_to(s, photo)))
            [question] = questions_to(s, photo)
            ticket = ticket_id(photo)
            [urgent_id] = [
                b["reply"]["id"] for b in question.interactive.action["buttons"] if "high" in b["reply"]["id"]
            ]
            tap = {"type": "button_reply", "button_reply": {"id": urgent_id, "title": "Urgent"}}
            tapped, status = await s.whatsapp.post_inbound(TENANT, kind="interactive", content=tap, reply_to=photo)
            assert status == 200
            await s.until(lambda: bool(s.replies_to(tapped)))
            assert "URGENT" in s.replies_to(tapped)[0]
            [row] = [r for r in s.sheets.values(SPREADSHEET, "Maintenance") if r[0] == ticket]
            assert (row[1], row[4], row[7]) == ("4B", "high", leak["id"])

            command, status = await s.whatsapp.post_inbound(STAFF, f"remind rent 3D +{TENANT}")
            assert status == 200
            await s.until(lambda: bool(s.replies_to(command)))
            templates = [a.message for a in s.whatsapp.accepted if a.message.template is not None]
            assert [(m.to, m.template.name) for m in templates] == [(TENANT, RENT_REMINDER_TEMPLATE)]  # type: ignore[union-attr]
            assert s.whatsapp.answers.get(132001, 0) == 0

    asyncio.run(scenario())


def questions_to(s: Stack, wamid: str) -> list[Any]:
    return [
        a.message
        for a in s.whatsapp.accepted
        if a.message.interactive is not None and a.message.context is not None and a.message.context.message_id == wamid
    ]
