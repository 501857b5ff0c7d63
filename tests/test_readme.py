"""Every Python block in the README runs as written, offline, in a fresh interpreter, and prints what it shows.

The output a block prints is the ```text block the README shows after it (before the next example or
section). Placeholders stand for values that vary between runs but must still be real ones, never 0
or None: ``<pid>`` a process id, ``<seconds>`` a positive number, ``<id>`` a token, ``<url>`` an http
URL. A block the README shows no output for must print nothing: the Rust core's block states its
results as ``assert`` lines, and the bot of "A bot in ten lines" is loaded the way ``sluiceway run
myapp:bot`` loads it and asked one question with a stub context.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

#: What each placeholder of a shown output matches.
PLACEHOLDERS = {
    "<pid>": r"[1-9][0-9]*",
    "<seconds>": r"(?=[0-9.]*[1-9])[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?",  # a non-zero digit before any exponent
    "<id>": r"(?!None\b)\S+",
    "<url>": r"https?://\S+",
}


class Example(msgspec.Struct, frozen=True):
    """A Python block of the README, the section it is in, and the output shown after it (None: none shown)."""

    section: str
    code: str
    shown: list[str] | None


def examples(text: str) -> list[Example]:
    fences = re.finditer(r"^(## [^\n]*)$|^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M)
    found: list[Example] = []
    section, last_python = "", None
    for fence in fences:
        heading, language, body = fence.groups()
        if heading is not None:
            section, last_python = heading.removeprefix("## "), None
        elif language == "python":
            found.append(last_python := Example(section, body, None))
        elif language == "text" and last_python is not None:
            found[-1] = Example(section, last_python.code, body.splitlines())
            last_python = None
        else:  # another fence (bash, a diagram) between an example and a text block: that text is not its output
            last_python = None
    return found


EXAMPLES = examples(README.read_text())


def line_pattern(shown: str) -> re.Pattern[str]:
    parts = re.split("(" + "|".join(map(re.escape, PLACEHOLDERS)) + ")", shown)
    return re.compile("".join(PLACEHOLDERS.get(part, re.escape(part)) for part in parts))


def run(script: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(script)]
    result = subprocess.run(command, cwd=script.parent, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{script.read_text()}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result


def test_the_readme_has_examples_with_shown_output() -> None:
    """The README shows runnable examples and what most of them print (so the tests below cannot pass vacuously)."""
    assert len(EXAMPLES) >= 7
    assert sum(example.shown is not None for example in EXAMPLES) >= 5


def test_placeholders_refuse_zeros_and_none() -> None:
    """A placeholder matches a real value only: the shown output cannot be met by 0, 0.0 or None."""
    assert line_pattern("2 <seconds> []").fullmatch("2 0.00014729 []")
    assert line_pattern("2 <seconds> []").fullmatch("2 1.4729e-05 []")
    for printed in ("2 0.0 []", "2 0 []", "2 None []"):
        assert not line_pattern("2 <seconds> []").fullmatch(printed)
    assert not line_pattern("<pid>").fullmatch("0")
    assert not line_pattern("dashboard: <url>").fullmatch("dashboard: None")
    assert not line_pattern("10000 <id>").fullmatch("10000 None")


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{i}-{e.section.split(':')[0]}" for i, e in enumerate(EXAMPLES)])
def test_readme_example_prints_what_it_shows(example: Example, tmp_path: Path) -> None:
    """The example exits 0 and prints the output shown after it, line by line (nothing if none is shown)."""
    script = tmp_path / "example.py"
    script.write_text(example.code)
    printed = run(script).stdout.splitlines()
    shown = example.shown or []
    assert len(printed) == len(shown), f"printed {printed}, the README shows {shown}"
    for number, (line, expected) in enumerate(zip(printed, shown, strict=True)):
        assert line_pattern(expected).fullmatch(line), f"line {number}: printed {line!r}, the README shows {expected!r}"


def test_the_ten_line_bot_answers_from_the_sheet(tmp_path: Path) -> None:
    """The README's bot loads as ``myapp:bot`` and replies once with the number of rows it read and the text."""
    (bot,) = (e for e in EXAMPLES if e.code.startswith("# myapp.py"))
    (tmp_path / "myapp.py").write_text(bot.code)
    check = tmp_path / "check.py"
    check.write_text(
        "import asyncio, types\n"
        "from sluiceway.app.bot import load_bot\n"
        "reads, replies = [], []\n"
        "class Sheets:\n"
        "    async def get_values(self, spreadsheet_id, a1_range):\n"
        "        reads.append((spreadsheet_id, a1_range))\n"
        "        return [['1A'], ['1B'], ['2C']]\n"
        "async def reply(text, **options):\n"
        "    replies.append(text)\n"
        "settings = types.SimpleNamespace(spreadsheet_id='book')\n"
        "ctx = types.SimpleNamespace(sheets=Sheets(), settings=settings, reply=reply)\n"
        "asyncio.run(load_bot('myapp:bot').handler(types.SimpleNamespace(text='is 4B free?'), ctx))\n"
        "print(reads, replies)\n"
    )
    assert run(check).stdout.strip() == "[('book', 'Units!A2:F')] ['3 units on file. You wrote: is 4B free?']"
