"""The journal failing under a running bot (its disk fills up): the ingress answers 503, so Meta re-delivers,
and every message it answered 200 for still gets its one reply."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path

import pytest

from sluiceway.journal import JournalError

from .conftest import Stack

#: Text of each message: large, so that a few hundred fill the 1 MiB file system.
LONG_TEXT = "x" * 4000
#: Posts before the test gives up waiting for a refusal.
MAX_POSTS = 1000


def test_a_full_disk_is_answered_503_and_loses_nothing_answered_200(
    tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with Stack(bot="sample_bots:echo_bot", state_dir=tmpfs / "state") as s:
            assert s.runtime is not None and s.runtime.ingress is not None
            answered: list[str] = []
            refused: list[str] = []

            async def say(n: int) -> int:
                return await s.say(f"1555000{n % 7:04d}", f"wamid.full.{n}", f"{n} {LONG_TEXT}")

            # The state_dir's file system (1 MiB) fills up: the journal cannot commit, the ingress refuses.
            for n in range(MAX_POSTS):
                status = await say(n)
                assert status in (200, 503), status
                (answered if status == 200 else refused).append(f"wamid.full.{n}")
                if len(refused) >= 3:
                    break
            assert answered and refused, f"{len(answered)} answered, {len(refused)} refused on a full disk"
            await s.until(lambda: all(s.replies_to(w) for w in answered))
            # Meta re-delivers what got 503; with room again the journal takes it.
            await asyncio.to_thread(subprocess.run, ["mount", "-o", "remount,size=64m", str(tmpfs)], check=True)
            for wamid in refused:
                assert await say(int(wamid.rsplit(".", 1)[1])) == 200
            await s.until(lambda: all(s.replies_to(w) for w in answered + refused))
            assert [w for w in answered + refused if len(s.replies_to(w)) != 1] == []
            assert s.runtime.ingress.stats.backpressured >= len(refused)
        # The refusals were the journal's (not a busy engine's), and the log says so.
        refusals = [r for r in caplog.records if r.levelno == logging.ERROR and "refused message" in r.getMessage()]
        assert len(refusals) >= len(refused)
        assert all(r.exc_info is not None and isinstance(r.exc_info[1], JournalError) for r in refusals)

    asyncio.run(scenario())
