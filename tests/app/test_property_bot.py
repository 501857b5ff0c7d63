"""The property-bot example: how tenants really write, and the answers from the sample sheets."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import pytest

from sluiceway.examples.property_bot import SHEETS
from sluiceway.examples.property_bot.answers import PropertyDesk, ticket_id
from sluiceway.examples.property_bot.nlu import extract_budget, extract_date, parse

TODAY = dt.date(2026, 11, 29)  # a Sunday; the sample viewing slots are on 5, 6 and 12 December 2026

# (message, intent, expected entities); entities not listed are not checked.
PHRASINGS: list[tuple[str, str, dict[str, Any]]] = [
    ("is 4B available?", "availability", {"unit": "4B"}),
    ("Is unit 12 still free", "availability", {"unit": "12"}),
    ("4b available??", "availability", {"unit": "4B"}),
    ("hey is apt 203 vacant", "availability", {"unit": "203"}),
    ("when can i move into 3A", "availability", {"unit": "3A"}),
    ("Is #7 taken?", "availability", {"unit": "7"}),
    ("availability of flat 1C please", "availability", {"unit": "1C"}),
    ("Hi there, is unit 2D open?", "availability", {"unit": "2D"}),
    ("how much is rent for 2C", "rent", {"unit": "2C"}),
    ("What is the price of apt 203", "rent", {"unit": "203"}),
    ("rent on unit 12?", "rent", {"unit": "12"}),
    ("how much is 4D per month", "rent", {"unit": "4D"}),
    ("whats the monthly cost of 1A", "rent", {"unit": "1A"}),
    ("2 bed under 2k", "search", {"bedrooms": 2, "max_rent": 2000}),
    (
        "any two bedroom apartments under $2,000 in maple",
        "search",
        {"bedrooms": 2, "max_rent": 2000, "building": "Maple Court"},
    ),
    ("looking for a 1br around 1400/month", "search", {"bedrooms": 1, "max_rent": 1400}),
    ("studio under 1300", "search", {"bedrooms": 0, "max_rent": 1300}),
    ("3BR?", "search", {"bedrooms": 3}),
    ("whats available", "search", {}),
    ("Do you have any 2-bed flats?", "search", {"bedrooms": 2}),
    ("need a 3 bedroom, budget is $2,700", "search", {"bedrooms": 3, "max_rent": 2700}),
    ("anything at harbour view below 1.5k", "search", {"building": "Harbor View", "max_rent": 1500}),
    ("cheapest studios", "search", {"bedrooms": 0}),
    ("4 bed max 3500", "search", {"bedrooms": 4, "max_rent": 3500}),
    ("one bedroom <= $1,600", "search", {"bedrooms": 1, "max_rent": 1600}),
    ("what units do you have at Cedar House", "search", {"building": "Cedar House"}),
    ("2bd up to 2100 a month", "search", {"bedrooms": 2, "max_rent": 2100}),
    ("how much are the 2 beds", "search", {"bedrooms": 2}),
    ("my sink is leaking in 4B", "maintenance", {"unit": "4B"}),
    ("heater in unit 12 is broken!!", "maintenance", {"unit": "12"}),
    ("toilet clogged unit 7", "maintenance", {"unit": "7"}),
    ("EMERGENCY water flooding the kitchen 3B", "maintenance", {"unit": "3B"}),
    ("I smell gas in apt 203", "maintenance", {"unit": "203"}),
    ("no hot water in 1C since yesterday", "maintenance", {"unit": "1C"}),
    ("the AC stopped working, unit 9", "maintenance", {"unit": "9"}),
    ("there's mould in the bathroom of 2A", "maintenance", {"unit": "2A"}),
    ("roaches in the kitchen again", "maintenance", {"unit": None}),
    ("fridge not turning on - 4C", "maintenance", {"unit": "4C"}),
    ("can I view 3D on saturday at 2pm", "viewing", {"unit": "3D", "date": dt.date(2026, 12, 5), "time": "14:00"}),
    (
        "book a viewing for unit 204 tomorrow at 10",
        "viewing",
        {"unit": "204", "date": dt.date(2026, 11, 30), "time": "10:00"},
    ),
    ("Can I see 1C on 12/5 at 10am", "viewing", {"unit": "1C", "date": dt.date(2026, 12, 5), "time": "10:00"}),
    ("id like to tour 2D dec 12th", "viewing", {"unit": "2D", "date": dt.date(2026, 12, 12)}),
    (
        "schedule a visit to unit 3 on the 6th of December at 14:00",
        "viewing",
        {"unit": "3", "date": dt.date(2026, 12, 6), "time": "14:00"},
    ),
    ("viewing 4D sun 2pm", "viewing", {"unit": "4D", "date": dt.date(2026, 12, 6), "time": "14:00"}),
    ("could we come and see 203 next saturday", "viewing", {"unit": "203", "date": dt.date(2026, 12, 5)}),
    ("view 1D 2026-12-12 at 10:00", "viewing", {"unit": "1D", "date": dt.date(2026, 12, 12), "time": "10:00"}),
    ("book 3B", "viewing", {"unit": "3B"}),
    ("hi", "help", {}),
    ("Hello!", "help", {}),
    ("help", "help", {}),
    ("what can you do?", "help", {}),
    ("menu", "help", {}),
    ("good morning", "help", {}),
    ("thanks!", "unknown", {}),
    ("asdfgh", "unknown", {}),
    ("ok", "unknown", {}),
]


@pytest.mark.parametrize(("text", "intent", "entities"), PHRASINGS, ids=[p[0] for p in PHRASINGS])
def test_phrasing(text: str, intent: str, entities: dict[str, Any]) -> None:
    """Each real tenant phrasing gets the right intent and entities."""
    parsed = parse(text, TODAY)
    assert parsed.intent == intent
    for name, value in entities.items():
        assert getattr(parsed, name) == value, name


def test_table_is_large_enough() -> None:
    """The phrasing table covers at least 50 messages and every intent."""
    assert len(PHRASINGS) >= 50
    assert {p[1] for p in PHRASINGS} == {"help", "availability", "search", "rent", "maintenance", "viewing", "unknown"}


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("$2,000", 2000),
        ("under 2k", 2000),
        ("2.5k", 2500),
        ("max 1800", 1800),
        ("1800/month", 1800),
        ("2 bed", None),
        ("at 3", None),
    ],
)
def test_budget_forms(text: str, budget: int | None) -> None:
    """Budgets are read in the forms tenants use, and small numbers are not budgets."""
    assert extract_budget(text) == budget


def test_invalid_dates_are_none() -> None:
    """Impossible dates ("31/2", "2026-13-01") are not guessed at."""
    assert extract_date("view 4B 2/31", TODAY) is None
    assert extract_date("2026-13-01", TODAY) is None


# --- answers from the sample sheets -------------------------------------------------------------


class MemorySheets:
    """An in-memory spreadsheet loaded from the example CSVs, with the SheetsClient calls the bot uses."""

    def __init__(self) -> None:
        self.sheets: dict[str, list[list[str]]] = {}
        for name, path in SHEETS.items():
            with path.open(newline="") as file:
                self.sheets[name] = list(csv.reader(file))
        self.appends = 0
        self.updates = 0

    async def get_values(self, spreadsheet_id: str, range: str) -> Sequence[Sequence[Any]]:
        sheet = range.split("!")[0]
        return [list(row) for row in self.sheets[sheet][1:]]

    async def append_values(self, spreadsheet_id: str, range: str, values: list[list[Any]]) -> object:
        self.appends += 1
        self.sheets[range.split("!")[0]].extend([str(v) for v in row] for row in values)
        return None

    async def update_values(self, spreadsheet_id: str, range: str, values: list[list[Any]]) -> object:
        self.updates += 1
        match = re.fullmatch(r"(\w+)!([A-Z])(\d+):([A-Z])(\d+)", range)
        assert match, range
        sheet, first_col, row = match.group(1), ord(match.group(2)) - ord("A"), int(match.group(3))
        for offset, value in enumerate(values[0]):
            self.sheets[sheet][row - 1][first_col + offset] = str(value)
        return None


def ask(desk: PropertyDesk, text: str, sender: str = "15550001111", message_id: str = "wamid.x") -> str:
    return asyncio.run(desk.answer(text, sender, message_id, TODAY)).text


def test_availability_answer() -> None:
    """An available unit is reported with its rent, date and open viewing slots; a let one as let."""
    desk = PropertyDesk(MemorySheets(), "sheet")
    reply = ask(desk, "is 1C available?")
    assert "1C (Maple Court, 2 bed) is available from Tue 1 Dec at $2,000/month" in reply
    assert "Sat 5 Dec 10:00" in reply
    assert "currently let" in ask(desk, "is 1A available?")
    assert "reserved" in ask(desk, "is 2B free")
    assert "couldn't find unit 9Z" in ask(desk, "is 9Z available")


def test_a_changed_units_sheet_is_parsed_again() -> None:
    """The desk remembers the parsed sheet only while its rows are unchanged: an edit shows in the next answer."""
    sheets = MemorySheets()
    desk = PropertyDesk(sheets, "sheet")
    assert "currently let" in ask(desk, "is 1A available?")
    row = next(r for r in sheets.sheets["Units"] if r[0] == "1A")
    row[4] = "available"
    assert "1A (Maple Court" in ask(desk, "is 1A available?") and "is available" in ask(desk, "is 1A available?")
    assert "currently let" not in ask(PropertyDesk(sheets, "sheet"), "is 1A available?")


def test_search_answer_filters_and_sorts() -> None:
    """Search lists only available units matching size and budget, cheapest first."""
    desk = PropertyDesk(MemorySheets(), "sheet")
    reply = ask(desk, "2 bed under 2k")
    assert reply.startswith("3 units 2 bed up to $2,000:")
    assert reply.index("3 (Harbor View") < reply.index("1C (Maple Court")
    assert "2B" not in reply  # reserved
    assert "No available units" in ask(desk, "4 bed under 1k")
    assert "studio" in ask(desk, "any studios?")


def test_rent_answer() -> None:
    """Rent questions quote the unit's monthly rent."""
    desk = PropertyDesk(MemorySheets(), "sheet")
    assert ask(desk, "rent for unit 12?") == "Rent for 12 (Harbor View, studio) is $1,225/month."


def test_booking_then_availability_reflects_it() -> None:
    """Booking a slot writes it to the Viewings sheet, and the next availability answer no longer offers it."""
    sheets = MemorySheets()
    desk = PropertyDesk(sheets, "sheet")
    assert "Sat 5 Dec 14:00" in ask(desk, "is 3D available")
    reply = ask(desk, "can I view 3D on saturday at 2pm", sender="15550002222")
    assert reply == "Booked: viewing of 3D (Maple Court, 3 bed) on Sat 5 Dec 14:00. See you there!"
    assert sheets.updates == 1
    assert "Sat 5 Dec 14:00" not in ask(desk, "is 3D available")
    # The same tenant asking again (or a retried message) is told it is booked, without a second write.
    assert "You're booked" in ask(desk, "can I view 3D on saturday at 2pm", sender="15550002222")
    assert sheets.updates == 1
    # Another tenant cannot take the slot.
    assert "isn't open" in ask(desk, "view 3D sat 2pm", sender="15550003333")


def test_booking_needs_a_time_and_an_available_unit() -> None:
    """Without a date the bot offers slots; let units offer no viewings."""
    desk = PropertyDesk(MemorySheets(), "sheet")
    assert ask(desk, "book 3B").startswith("When would you like to view 3B? Open slots: Sat 5 Dec 10:00")
    assert "only offered for available units" in ask(desk, "view 1A tomorrow")


def test_maintenance_appends_once_per_message() -> None:
    """A maintenance request appends one ticket row; the same message retried does not append again."""
    sheets = MemorySheets()
    desk = PropertyDesk(sheets, "sheet")
    reply = ask(desk, "my sink is leaking in 4B", message_id="wamid.m1")
    assert f"ticket {ticket_id('wamid.m1')} is logged for 4B as URGENT" in reply
    assert ask(desk, "my sink is leaking in 4B", message_id="wamid.m1") == reply
    assert sheets.appends == 1
    row = sheets.sheets["Maintenance"][-1]
    assert row[:6] == [ticket_id("wamid.m1"), "4B", "15550001111", "my sink is leaking in 4B", "high", "open"]
    normal = ask(desk, "the toilet is clogged, unit 7", message_id="wamid.m2")
    assert "URGENT" not in normal and sheets.sheets["Maintenance"][-1][4] == "normal"
    assert "Which unit" in ask(desk, "roaches in the kitchen again", message_id="wamid.m3")
    assert sheets.appends == 2


def test_help_and_unknown() -> None:
    """Greetings get the menu; messages the bot cannot read get an apology and the menu."""
    desk = PropertyDesk(MemorySheets(), "sheet")
    assert ask(desk, "hi").startswith("Hi! I can help with:")
    assert ask(desk, "asdfgh").startswith("Sorry, I didn't get that.")


def test_answer_reports_intent_and_urgency() -> None:
    """The desk's answer says what it understood, and flags urgent repairs for a high-priority reply."""
    desk = PropertyDesk(MemorySheets(), "sheet")
    leak = asyncio.run(desk.answer("water leak in 4B!", "1555", "wamid.u", TODAY))
    assert (leak.intent, leak.urgent) == ("maintenance", True)
    rent = asyncio.run(desk.answer("rent for 4B", "1555", "wamid.r", TODAY))
    assert (rent.intent, rent.urgent) == ("rent", False)
