"""The ``sluiceway`` command line: help, version, config check, bad settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sluiceway import __version__
from sluiceway.cli import EXIT_USAGE, main


def test_version_and_help_run_as_a_program() -> None:
    """``python -m sluiceway.cli --version`` prints the version; ``--help`` lists the commands."""
    version = subprocess.run(
        [sys.executable, "-m", "sluiceway.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0 and version.stdout.strip() == f"sluiceway {__version__}"
    usage = subprocess.run(
        [sys.executable, "-m", "sluiceway.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 0
    for command in ("run", "dev", "demo", "bench", "dlq", "emulate", "config"):
        assert command in usage.stdout
    for command in (["run"], ["dev"], ["demo"], ["dlq"], ["emulate"], ["config", "check"], ["bench"]):
        sub = subprocess.run(
            [sys.executable, "-m", "sluiceway.cli", *command, "--help"], capture_output=True, text=True, timeout=60
        )
        assert sub.returncode == 0 and "usage: sluiceway" in sub.stdout


def test_config_check_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """config check prints effective settings with flags applied and every secret masked."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", "EAAG-very-secret")
    monkeypatch.setenv("WHATSAPP_APP_SECRET", "app-secret-value")
    assert main(["config", "check", "--port", "9001"]) == 0
    out = capsys.readouterr().out
    assert "very-secret" not in out and "app-secret-value" not in out
    assert "**********" in out
    assert "port" in out and "9001" in out


def test_admin_and_monitor_ports_move_by_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A second bot on the same machine moves the admin and monitor ports off 8081 and 9464 with flags."""
    monkeypatch.chdir(tmp_path)
    assert main(["config", "check", "--admin-port", "18081", "--monitor-port", "19464"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "18081" in lines["admin_port"] and "19464" in lines["monitor_port"]


def test_config_check_names_each_values_source(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each line says where its value came from: a flag, an environment variable, the file, or the default."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sluiceway.toml").write_text('state_dir = "from-file"\n')
    monkeypatch.setenv("SLUICEWAY_WORKERS", "3")
    monkeypatch.delenv("SLUICEWAY_HOST", raising=False)
    assert main(["config", "check", "--port", "9001"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "(flag --port; SLUICEWAY_PORT)" in lines["port"]
    assert "(environment SLUICEWAY_WORKERS)" in lines["workers"]
    assert "(file sluiceway.toml; SLUICEWAY_STATE_DIR)" in lines["state_dir"]
    assert "(default; SLUICEWAY_HOST)" in lines["host"]


def test_config_check_reports_invalid_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An invalid setting exits with the usage code and a message naming it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sluiceway.toml").write_text("dedup_window = -5\n")
    assert main(["config", "check"]) == EXIT_USAGE
    assert "dedup_window" in capsys.readouterr().err


def test_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    """Running with no command is a usage error, not a crash."""
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == EXIT_USAGE


def test_dlq_without_a_running_bot_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """dlq against an address where no bot answers exits 1 with a message saying so."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["dlq", "list", "--admin-url", f"http://127.0.0.1:{port}"]) == 1
    assert "no running bot answers" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["run", "no_such_module_xyz:bot"], "cannot import"),
        (["run", "sample_bots:echo_bot", "--port", "70000"], "port"),
        (["demo", "--conversations", "0"], "conversations"),
    ],
)
def test_bad_run_and_demo_arguments(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run and demo refuse bad input with the usage exit code and a message naming the problem."""
    monkeypatch.chdir(tmp_path)
    # `run` puts the working directory on the import path (for itself and its workers): undo that after.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    assert main(argv) == EXIT_USAGE
    assert problem in capsys.readouterr().err


def installed_copy(tmp_path: Path) -> dict[str, str]:
    """An environment importing ``sluiceway`` from a copy outside any source tree, as pip installs it."""
    import shutil

    import sluiceway

    site = tmp_path / "site-packages"
    shutil.copytree(Path(sluiceway.__file__).parent, site / "sluiceway", ignore=shutil.ignore_patterns("__pycache__"))
    return {**os.environ, "PYTHONPATH": str(site)}


def test_bench_without_the_source_tree_says_how_to_get_it(tmp_path: Path) -> None:
    """Installed from a wheel (no bench/ anywhere), ``sluiceway bench`` exits 2 with the commands to run it."""
    env = installed_copy(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [sys.executable, "-m", "sluiceway.cli", "bench", "core"]
    result = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_USAGE
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert "bench/ package) is not installed" in result.stderr
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert any(line.startswith("git clone ") for line in lines)
    assert any(line.startswith("pip install -e '.[bench]'") for line in lines)
    assert "python -m bench core" in lines


def test_bench_runs_the_suite_of_the_checkout_it_is_started_in(tmp_path: Path) -> None:
    """Inside a source checkout, ``sluiceway bench NAME...`` runs that checkout's ``python -m bench NAME...``."""
    env = installed_copy(tmp_path)
    checkout = tmp_path / "clone"
    (checkout / "python" / "sluiceway").mkdir(parents=True)
    (checkout / "bench").mkdir()
    (checkout / "bench" / "__init__.py").write_text("")
    (checkout / "bench" / "__main__.py").write_text("import sys\nprint('ran', sys.argv[1:])\nraise SystemExit(3)\n")
    command = [sys.executable, "-m", "sluiceway.cli", "bench", "core", "e2e"]
    result = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (3, "ran ['core', 'e2e']")


BOT_MODULE = """
from sluiceway import Bot

bot = Bot()


@bot.on_message
async def answer(message, ctx):
    return "hi"
"""


def run_cli(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``sluiceway run`` as a user starts it: from a folder holding ``myapp.py``, secrets in the environment."""
    (tmp_path / "myapp.py").write_text(BOT_MODULE)
    env = {
        **os.environ,
        "WHATSAPP_APP_SECRET": "app-secret",
        "WHATSAPP_ACCESS_TOKEN": "token",
        "WHATSAPP_PHONE_NUMBER_ID": "1",
    }
    command = [sys.executable, "-m", "sluiceway.cli", "run", *arguments, "--state-dir", str(tmp_path / "state")]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("setting", "flag"), [("port", "--port"), ("admin_port", "--admin-port"), ("monitor_port", "--monitor-port")]
)
def test_a_taken_port_is_one_line_naming_the_setting(tmp_path: Path, setting: str, flag: str) -> None:
    """Another process on the port: exit 2 and one line naming the port and what moves it, no traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = {"--port": "0", "--admin-port": "0", "--monitor-port": "0"}
        free[flag] = str(port)
        result = run_cli(tmp_path, "myapp:bot", *[item for pair in free.items() for item in pair])
    assert result.returncode == EXIT_USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"port {port}" in lines[0] and flag in lines[0], lines[0]


def test_a_misspelt_bot_attribute_is_named(tmp_path: Path) -> None:
    """``myapp:bott``: exit 2 and one line saying the module has no such attribute."""
    result = run_cli(tmp_path, "myapp:bott", "--port", "0")
    assert result.returncode == EXIT_USAGE
    assert (
        result.stderr.strip() == "cannot start: module 'myapp' has no attribute 'bott' (the bot is named 'myapp:bott')"
    )


def test_a_sync_handler_is_one_line_saying_how_to_write_it(tmp_path: Path) -> None:
    """A plain ``def`` handler: exit 2 and one line asking for ``async def`` (bots await their context)."""
    (tmp_path / "syncapp.py").write_text(BOT_MODULE.replace("async def answer", "def answer"))
    result = run_cli(tmp_path, "syncapp:bot", "--port", "0")
    assert result.returncode == EXIT_USAGE and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "must be an async function (async def answer(msg, ctx))" in lines[0], lines


def test_a_spreadsheet_without_credentials_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spreadsheet id and no Google credentials anywhere: exit 2 and one line naming the variable to set."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    (tmp_path / "gcloud").mkdir()
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no application-default file in it
    result = run_cli(tmp_path, "myapp:bot", "--port", "0", "--spreadsheet-id", "sheet-1")
    assert result.returncode == EXIT_USAGE and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "GOOGLE_APPLICATION_CREDENTIALS" in lines[0] and "sheet-1" in lines[0], lines
