"""`sluiceway dev`: the bot against local emulators, tenant messages typed (or piped) in, replies printed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sluiceway.app.dev_console import DEFAULT_SENDER, parse_line

WAIT = 120.0


def _dev(bot: str, stdin: str, *flags: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluiceway.cli", "dev", bot, *flags],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=cwd,
    )


def test_two_piped_lines_get_two_replies_and_the_end_of_input_exits_0(tmp_path: Path) -> None:
    """Each line is a tenant's message (a ``+phone:`` prefix picks the tenant); each reply is printed; EOF drains."""
    done = _dev("sample_bots:echo_bot", "hello there\n\n+15551112222: second one\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    replies = [line for line in done.stdout.splitlines() if line.startswith("bot → ")]
    assert sorted(replies) == [f"bot → +{DEFAULT_SENDER}: echo: hello there", "bot → +15551112222: echo: second one"]
    for where in ("webhook    http://127.0.0.1:", "dashboard  http://127.0.0.1:", "whatsapp   http://127.0.0.1:"):
        assert where in done.stdout
    assert "WARNING" not in done.stderr  # emulated: no start-up warning applies


def test_the_property_bot_answers_from_the_emulated_spreadsheet(tmp_path: Path) -> None:
    done = _dev("sluiceway.examples.property_bot.app:bot", "is 3D available?\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (reply,) = [line for line in done.stdout.splitlines() if line.startswith("bot → ")]
    assert reply.startswith(f"bot → +{DEFAULT_SENDER}: 3D (Maple Court")


def test_a_wrong_bot_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _dev("sample_bots:no_such_bot", "", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no_such_bot" in done.stderr


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("  is 3D available? ", (DEFAULT_SENDER, "is 3D available?")),
        ("+15551234567: any 2D?", ("15551234567", "any 2D?")),
        ("15551234567:any 2D?", ("15551234567", "any 2D?")),
        ("+15551234567:   ", (DEFAULT_SENDER, "+15551234567:")),  # no text: the line itself is the message
        ("view 3D Sat 5 Dec 10:00", (DEFAULT_SENDER, "view 3D Sat 5 Dec 10:00")),
        ("   ", None),
    ],
)
def test_console_lines(line: str, parsed: tuple[str, str] | None) -> None:
    assert parse_line(line) == parsed


def test_ctrl_c_stops_the_console_while_it_waits_for_a_line(tmp_path: Path) -> None:
    """SIGINT while stdin is still open (a terminal): the bot drains and the command exits 0, without Enter."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sluiceway.cli", "dev", "sample_bots:echo_bot"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write("hi\n")
        process.stdin.flush()
        lines: list[str] = []
        while not lines or not lines[-1].startswith("bot → "):
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert lines[-1] == f"bot → +{DEFAULT_SENDER}: echo: hi\n"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
