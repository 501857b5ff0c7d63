"""The webhook server's limits are `sluiceway run` settings: flags and environment reach it; nonsense exits 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluiceway.app.settings import SERVER_LIMITS, Settings
from sluiceway.cli import EXIT_USAGE

from .test_cli import BOT_MODULE, run_cli

#: Bounds a broken run; every wait below polls for an answer.
WAIT = 60.0


@pytest.mark.parametrize("name", SERVER_LIMITS)
def test_a_non_positive_limit_is_refused_by_name(name: str) -> None:
    """Every limit must be positive: 0 is a ValueError naming it."""
    with pytest.raises(ValueError, match=name):
        Settings(**{name: 0})


@pytest.mark.parametrize(
    ("arguments", "environment", "named"),
    [
        (["--max-headers", "0"], {}, "max_headers"),
        (["--header-timeout", "-1"], {}, "header_timeout"),
        (["--max-url-bytes", "20000"], {}, "max_url_bytes"),
        ([], {"SLUICEWAY_MAX_CONNECTIONS": "many"}, "max_connections"),
        ([], {"SLUICEWAY_KEEPALIVE_TIMEOUT": "0"}, "keepalive_timeout"),
        (["--shed-after", "-0.5"], {}, "shed_after"),
    ],
)
def test_nonsense_limits_exit_2_with_one_line_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arguments: list[str], environment: dict[str, str], named: str
) -> None:
    """A bad limit from a flag or the environment: exit 2, one line naming the setting, nothing started."""
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    result = run_cli(tmp_path, "myapp:bot", "--port", "0", "--admin-port", "0", "--monitor-port", "0", *arguments)
    assert result.returncode == EXIT_USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in result.stderr, result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _connect(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    return connection


def _ask(port: int, request: bytes) -> bytes:
    """Write ``request`` on a new connection; return the answer's status line (the server may close after it)."""
    with _connect(port) as connection:
        connection.sendall(request)
        return _status_line(connection)


def _status_line(connection: socket.socket) -> bytes:
    answer = b""
    while b"\r\n" not in answer:
        chunk = connection.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer.split(b"\r\n", 1)[0]


@pytest.fixture
def limited_bot(tmp_path: Path) -> Iterator[int]:
    """``sluiceway run`` with small limits, from flags and the environment; yields its webhook port."""
    (tmp_path / "myapp.py").write_text(BOT_MODULE)
    port = _free_port()
    env = {
        **os.environ,
        "WHATSAPP_APP_SECRET": "app-secret",
        "WHATSAPP_ACCESS_TOKEN": "token",
        "WHATSAPP_PHONE_NUMBER_ID": "1",
        "SLUICEWAY_MAX_CONNECTIONS": "4",
        "SLUICEWAY_HEADER_TIMEOUT": "0.5",
    }
    # Two flags, the rest from the environment: both roads reach the server.
    command = [sys.executable, "-m", "sluiceway.cli", "run", "myapp:bot", "--port", str(port), "--admin-port", "0"]
    command += ["--monitor-port", "0", "--workers", "1", "--state-dir", str(tmp_path / "state")]
    command += ["--max-headers", "5", "--max-url-bytes", "64"]
    log = tmp_path / "run.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if _ask(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200"):
                    break
            except OSError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "sluiceway run did not answer /healthz"
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(WAIT)


def test_the_run_command_serves_with_the_configured_limits(limited_bot: int) -> None:
    """Six headers get 431, a 65-byte target 414, a head left unfinished 408, and a fifth connection 503."""
    port = limited_bot
    headers = b"".join(b"X-%d: v\r\n" % i for i in range(6))
    assert _ask(port, b"GET /healthz HTTP/1.1\r\n" + headers + b"\r\n").startswith(b"HTTP/1.1 431")
    assert _ask(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"\r\n").startswith(b"HTTP/1.1 200")  # 1 header
    assert _ask(port, b"GET /" + b"a" * 64 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 414")
    assert _ask(port, b"GET /" + b"a" * 63 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
    # The head never ends: answered 408 once header_timeout (0.5 s) passes, long before the 75 s keep-alive.
    started = time.monotonic()
    assert _ask(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 10.0
    held = [_connect(port) for _ in range(4)]
    try:
        for connection in held:  # each is served, so all four are open at the server
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _status_line(connection).startswith(b"HTTP/1.1 200")
        assert _ask(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 503")
    finally:
        for connection in held:
            connection.close()
