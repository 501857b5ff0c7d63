"""``sluiceway emulate``: the port it is given, and export lines that point a bot at it."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sluiceway.app.settings import load_settings

#: Seconds an emulator may take to print its settings (a loaded 2-core CI box).
START_DEADLINE = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _emulator(*args: str) -> Iterator[tuple[dict[str, str], str]]:
    """Run ``sluiceway emulate *args``; yield the exported variables and the text printed before them."""
    command = [sys.executable, "-m", "sluiceway.cli", "emulate", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None and process.stderr is not None
        yield from _read_exports(process)


def _read_exports(process: subprocess.Popen[str]) -> Iterator[tuple[dict[str, str], str]]:
    assert process.stdout is not None and process.stderr is not None
    exports: dict[str, str] = {}
    printed: list[str] = []
    line = ""
    deadline = time.monotonic() + START_DEADLINE
    try:
        # The export block is printed (and flushed) once the server listens; a blank line ends it.
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line or (exports and not line.strip()):
                break
            printed.append(line)
            if line.startswith("export "):
                [assignment] = shlex.split(line[len("export ") :])
                name, _, value = assignment.partition("=")
                exports[name] = value
        assert exports, f"no export lines; printed {printed!r}; stderr {process.stderr.read() if not line else ''!r}"
        yield exports, "".join(printed)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def test_emulate_whatsapp_listens_on_the_port_and_exports_the_bots_settings() -> None:
    port = _free_port()
    with _emulator("whatsapp", "--port", str(port), "--app-secret", "local-secret") as (exports, printed):
        settings = load_settings(environ=exports, config_file=None)
        assert settings.whatsapp_base_url == f"http://127.0.0.1:{port}"
        assert settings.whatsapp_app_secret is not None and settings.whatsapp_app_secret.reveal() == "local-secret"
        assert settings.whatsapp_access_token is not None and settings.whatsapp_verify_token is not None
        assert settings.whatsapp_phone_number_id
        assert "signed" in printed and "--app-secret" in printed
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/stats", timeout=10) as answer:
            assert json.load(answer) == {"accepted": 0, "answers": {}}


def test_emulate_whatsapp_generates_a_secret_rather_than_reading_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHATSAPP_APP_SECRET", "from-the-shell")
    with _emulator("whatsapp") as (exports, printed):
        assert exports["WHATSAPP_APP_SECRET"] not in ("", "from-the-shell")
        assert "generated" in printed


def test_emulate_whatsapp_serves_several_numbers_and_enforces_the_window() -> None:
    """--numbers exports every business number the bot must serve; --enforce-window refuses a cold free-form send."""
    with _emulator("whatsapp", "--numbers", "2", "--enforce-window") as (exports, printed):
        settings = load_settings(environ=exports, config_file=None)
        assert settings.whatsapp_phone_number_id is not None and len(settings.whatsapp_phone_number_ids) == 1
        second = settings.whatsapp_phone_number_ids[0]
        assert second != settings.whatsapp_phone_number_id
        assert "131047" in printed
        token = settings.whatsapp_access_token.reveal() if settings.whatsapp_access_token else ""
        body = json.dumps(
            {"messaging_product": "whatsapp", "to": "15550001111", "type": "text", "text": {"body": "hi"}}
        )
        request = urllib.request.Request(
            f"{settings.whatsapp_base_url}/v21.0/{second}/messages",
            data=body.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert json.load(refused.value)["error"]["code"] == 131047


def test_emulate_sheets_serves_the_csvs_at_the_exported_endpoint(tmp_path: Path) -> None:
    units = tmp_path / "units.csv"
    units.write_text("Unit,Rent\n3D,2600\n")
    with _emulator("sheets", "--csv", f"Units={units}", "--spreadsheet-id", "my-sheet") as (exports, _):
        settings = load_settings(environ=exports, config_file=None)
        assert settings.spreadsheet_id == "my-sheet"
        url = f"{settings.sheets_api_endpoint}v4/spreadsheets/my-sheet/values/Units!A1:B"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert json.load(answer)["values"] == [["Unit", "Rent"], ["3D", "2600"]]


def test_emulate_refuses_a_malformed_csv_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from sluiceway.cli import EXIT_USAGE, main

    assert main(["emulate", "sheets", "--csv", "units.csv"]) == EXIT_USAGE
    assert "NAME=PATH" in capsys.readouterr().err


def test_the_readme_lists_every_environment_variable_the_bot_reads() -> None:
    """The settings table of the README names the environment variable of every setting."""
    from sluiceway.app.settings import Settings, env_name

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Configuration of `sluiceway run`")[1].split("###")[0]
    missing = [env_name(field) for field in Settings.__struct_fields__ if f"`{env_name(field)}`" not in table]
    assert missing == []
