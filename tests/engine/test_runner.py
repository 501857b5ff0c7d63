"""The runner drains the engine when the program gets SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sluiceway.testing.handlers import read_log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_every_accepted_message_before_exit(signum: int, tmp_path: Path) -> None:
    """A program run through sluiceway.engine.run finishes all accepted messages after SIGTERM/SIGINT, then exits 0."""
    log = tmp_path / "log"
    count = 300
    program = subprocess.Popen(
        [sys.executable, "-m", "sluiceway.testing.engine_program", str(log), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert program.stdout is not None
        assert program.stdout.readline().strip() == "enqueued"
        program.send_signal(signum)
        out, _ = program.communicate(timeout=120)
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()
    assert program.returncode == 0
    assert out.strip() == f"completed {count} remaining 0"
    assert len({fields[1] for fields in read_log(log)}) == count
