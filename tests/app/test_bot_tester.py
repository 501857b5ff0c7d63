"""BotTester drives a bot's real handler in process: the property bot, sheets, retries and dead letters."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from sluiceway import Bot, Context, InboundMessage, OutboundMessage, Settings
from sluiceway.examples.property_bot import SHEETS
from sluiceway.examples.property_bot.app import bot
from sluiceway.testing import BotTester, SheetsEmulator
from sluiceway.whatsapp.messages import Interactive, InteractiveText

README = Path(__file__).resolve().parents[2] / "README.md"
#: The imports the README's example shows above the test below.
README_IMPORTS = """import asyncio

from sluiceway.examples.property_bot import SHEETS
from sluiceway.examples.property_bot.app import bot
from sluiceway.testing import BotTester
"""


# --- the README's example (section "Test your handlers"), verbatim from here to the marker ---
def test_the_property_bot_answers_from_its_sheets() -> None:
    async def scenario() -> None:
        async with BotTester(bot, sheets=SHEETS) as tester:
            reply = await tester.send("is 3D available?", sender="+15551234567")
            assert reply.text.startswith("3D (Maple Court, 3 bed) is available")
            assert reply.messages[0].to == "15551234567"

            repair = await tester.send("there is a gas leak in 4B!!", sender="+15551234567")
            assert "URGENT" in repair.text
            assert repair.sent[0].priority == "high"  # the reply jumps the send queue
            assert tester.sheet_rows("Maintenance")[-1][1:3] == ["4B", "15551234567"]
            assert tester.dead_letters == []

    asyncio.run(scenario())


# --- end of the README's example ---


def test_the_readme_shows_this_files_example() -> None:
    """The README's "Test your handlers" example is the test above, character for character, with its imports."""
    source = Path(__file__).read_text()
    example = source.split("verbatim from here to the marker ---\n")[1].split("\n\n# --- end of")[0].strip()
    assert f"```python\n{README_IMPORTS}\n\n{example}\n```" in README.read_text()
    for line in filter(None, README_IMPORTS.splitlines()):  # the names it imports are the ones tested here
        module, _, name = line.removeprefix("from ").partition(" import ")
        pattern = f"^from {re.escape(module)} import .*\\b{name}\\b" if name else f"^{re.escape(line)}$"
        assert re.search(pattern, source, re.M), line


def _reading_bot(sheet_range: str = "Units!A2:B") -> Bot:
    reading = Bot()

    @reading.on_message
    async def handle(msg: InboundMessage, ctx: Context) -> None:
        rows = await ctx.sheets.get_values(ctx.settings.spreadsheet_id, sheet_range)
        ctx.metrics.record("rows", len(rows))
        await ctx.reply(f"{len(rows)} units; attempt {ctx.attempt}; you wrote {msg.text!r}")

    return reading


def test_sheets_from_rows_go_through_the_cache() -> None:
    """Rows given as lists are served through the real SheetsClient: the second read is a cache hit."""

    rows: dict[str, list[list[Any]]] = {"Units": [["unit", "rent"], ["1A", 1500], ["2B", 1900]]}

    async def scenario() -> None:
        async with BotTester(_reading_bot(), sheets=rows) as tester:
            first = await tester.send("hi")
            second = await tester.send("again", sender="15550009999")
            assert first.text == "2 units; attempt 1; you wrote 'hi'"
            assert second.texts == ["2 units; attempt 1; you wrote 'again'"]
            assert [(m.name, m.value) for m in first.metrics] == [("rows", 2.0)]
            assert tester.emulator is not None and tester.emulator.requests["values.get"] == 1
        # Your own emulator (to inject faults, say) serves the spreadsheet the settings name.
        emulator = SheetsEmulator()
        emulator.add_spreadsheet("units-book", rows)
        async with BotTester(_reading_bot(), sheets=emulator, settings=Settings(spreadsheet_id="units-book")) as tester:
            assert (await tester.send("mine")).text == "2 units; attempt 1; you wrote 'mine'"
            assert emulator.requests["values.get"] == 1

    asyncio.run(scenario())


def test_a_failing_handler_is_retried_then_dead_lettered() -> None:
    attempts: list[int] = []
    flaky = Bot()

    @flaky.on_message
    async def handle(msg: InboundMessage, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        await ctx.reply("sent before the failure")  # a failed attempt sends nothing
        if msg.text == "always" or ctx.attempt == 1:
            raise RuntimeError(f"boom on attempt {ctx.attempt}")
        await ctx.reply("recovered")

    async def scenario() -> None:
        async with BotTester(flaky, max_attempts=3) as tester:
            once = await tester.send("once")
            assert once.ok and once.attempts == 2
            assert once.texts == ["sent before the failure", "recovered"]
            dead = await tester.send("always")
            assert not dead.ok and dead.sent == [] and dead.text == ""
            assert dead.dead_letter is not None and dead.dead_letter.attempts == 3
            assert dead.dead_letter.error == "RuntimeError: boom on attempt 3"
            assert "boom on attempt 3" in dead.dead_letter.traceback
            assert dead.dead_letter.payload["text"] == "always"
            assert tester.dead_letters == [dead.dead_letter]
        assert attempts == [1, 2, 1, 2, 3]

    asyncio.run(scenario())


def test_buttons_taps_hooks_and_priority() -> None:
    events: list[str] = []
    menu = Bot()

    @menu.on_worker_start
    def opened(resources: Any) -> None:
        events.append(f"start {resources.settings.spreadsheet_id or '-'}")

    @menu.on_worker_stop
    async def closed(resources: Any) -> None:
        events.append("stop")

    @menu.on_message
    async def handle(msg: InboundMessage, ctx: Context) -> None:
        buttons = {
            "buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in (("y", "Yes"), ("n", "No"))]
        }
        interactive = Interactive("button", InteractiveText("Book a viewing?"), buttons)
        await ctx.send(OutboundMessage(to=msg.sender, type="interactive", interactive=interactive))
        await ctx.send(OutboundMessage.of_text("15550000042", "to the landlord"), priority="low")

    async def scenario() -> None:
        async with BotTester(menu) as tester:
            assert events == ["start -"]
            reply = await tester.send("FIRE in the hallway")
            assert reply.priority == "high"  # the ingress's keyword classifier, from the settings
            assert reply.text == "Book a viewing?" and reply.buttons == ["Yes", "No"]
            assert [m.to for m in reply.messages] == ["15550000001", "15550000042"]
            assert (await tester.send("hello")).priority == "normal"
            tapped = await tester.tap("No")
            assert (tapped.inbound.type, tapped.inbound.text) == ("interactive", "No")
            assert tapped.inbound.data["button_reply"] == {"id": "n", "title": "No", "description": ""}
            with pytest.raises(ValueError, match="offers 'Yes', 'No', not 'Maybe'"):
                await tester.tap("Maybe")
            with pytest.raises(ValueError, match="offers nothing"):
                await tester.tap("Yes", sender="15550000042")  # that recipient got only text
        assert events == ["start -", "stop"]

    asyncio.run(scenario())


def test_bad_input_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such CSV file"):
        BotTester(_reading_bot(), sheets={"Units": tmp_path / "missing.csv"})
    with pytest.raises(ValueError, match="max_attempts"):
        BotTester(_reading_bot(), max_attempts=0)
    with pytest.raises(ValueError, match="no message handler"):
        BotTester(Bot())

    async def scenario() -> None:
        async with BotTester(_reading_bot(), sheets={"Units": [["unit"]]}) as tester:
            with pytest.raises(ValueError, match="phone number"):
                await tester.send("hi", sender="alice")
            with pytest.raises(ValueError, match="empty"):
                await tester.send("")

    asyncio.run(scenario())
