"""The state_dir holds every accepted message: the runtime keeps it private to its user."""

from __future__ import annotations

import asyncio
import logging
import stat
from pathlib import Path

import pytest

from .conftest import Stack


def test_an_existing_state_dir_open_to_others_is_tightened_to_0700(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)  # whatever the umask made of it

    async def scenario() -> None:
        async with Stack(bot="sample_bots:echo_bot", state_dir=state) as s:
            assert await s.reply("15550003001", "wamid.private", "hi") == "echo: hi"

    with caplog.at_level(logging.WARNING, logger="sluiceway.app"):
        asyncio.run(scenario())
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert any("open to other users (mode 755): tightened to 700" in r.getMessage() for r in caplog.records)


def test_a_private_state_dir_is_left_as_it_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)

    async def scenario() -> None:
        async with Stack(bot="sample_bots:echo_bot", state_dir=state) as s:
            assert await s.reply("15550003002", "wamid.quiet", "hi") == "echo: hi"

    with caplog.at_level(logging.WARNING, logger="sluiceway.app"):
        asyncio.run(scenario())
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert not any("open to other users" in r.getMessage() for r in caplog.records)
