"""`sluiceway run` warns, one line each, about settings that run but are probably not meant."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sluiceway.app.runtime import startup_warnings
from sluiceway.app.secret import Secret
from sluiceway.app.settings import Settings

WAIT = 120.0

COMPLETE = Settings(
    whatsapp_access_token=Secret("token"),
    whatsapp_app_secret=Secret("secret"),
    whatsapp_verify_token=Secret("verify"),
    whatsapp_phone_number_id="1234",
    spreadsheet_id="sheet",
)


def _lines(settings: Settings, real_graph_api: bool = True) -> dict[str, int]:
    """Which warnings there are (by a word each names) and at which level."""
    out: dict[str, int] = {}
    for level, line in startup_warnings(settings, real_graph_api):
        key = next(word for word in ("Cloud API", "spreadsheet", "verify") if word in line)
        assert key not in out, f"two lines about {key}"
        out[key] = level
    return out


def test_a_complete_deployment_gets_only_an_info_line_about_the_graph_api() -> None:
    assert _lines(COMPLETE) == {"Cloud API": logging.INFO}
    assert _lines(COMPLETE, real_graph_api=False) == {}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"spreadsheet_id": ""},
            {"spreadsheet": logging.WARNING, "Cloud API": logging.WARNING},
        ),
        (
            {"whatsapp_verify_token": None},
            {"verify": logging.WARNING, "Cloud API": logging.WARNING},
        ),
        ({"whatsapp_base_url": "http://127.0.0.1:9999"}, {}),
        ({"whatsapp_base_url": "https://graph.facebook.com/"}, {"Cloud API": logging.INFO}),
    ],
)
def test_each_warning_is_one_line(change: dict[str, object], expected: dict[str, int]) -> None:
    """No spreadsheet, no verify token: a WARNING each; the real Graph API is a WARNING while the setup is
    incomplete (it looks like development), INFO otherwise; an emulator's base URL is not mentioned."""
    import msgspec

    assert _lines(msgspec.structs.replace(COMPLETE, **change)) == expected  # type: ignore[arg-type]


def test_sluiceway_run_prints_the_warnings_on_stderr(tmp_path: Path) -> None:
    """A bot started with a token but no spreadsheet and no verify token, against graph.facebook.com, says so in
    three WARNING lines (no message is sent: nothing reaches the real API)."""
    ports = []
    for _ in range(3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(str(sock.getsockname()[1]))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLUICEWAY_", "WHATSAPP_", "GOOGLE_APPLICATION"))
    }
    env |= {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_ACCESS_TOKEN": "not-a-real-token", "WHATSAPP_PHONE_NUMBER_ID": "1"}
    process = subprocess.Popen(
        [
            *[sys.executable, "-m", "sluiceway.cli", "run", "sample_bots:echo_bot", "--workers", "1"],
            *["--port", ports[0], "--admin-port", ports[1], "--monitor-port", ports[2], "--state-dir", str(tmp_path)],
        ],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + WAIT
    try:
        while not any("webhook at" in line for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "\n".join(lines)
            lines.append(process.stderr.readline())
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=WAIT)
    assert process.returncode == 0, rest
    warnings = [line for line in lines if " WARNING " in line]
    assert len(warnings) == 3, warnings
    assert "no spreadsheet configured" in warnings[0]
    assert "WHATSAPP_VERIFY_TOKEN" in warnings[1]
    assert "real WhatsApp Cloud API at https://graph.facebook.com" in warnings[2]
    assert "not-a-real-token" not in "".join(lines) + rest
    # The monitor is up before the start line, so the line gives its address.
    start_line = next(line for line in lines if "webhook at" in line)
    assert f"monitor http://127.0.0.1:{ports[2]}" in start_line
