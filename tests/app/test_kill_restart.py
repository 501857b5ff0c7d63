"""``sluiceway run`` killed with SIGKILL (its whole process group) under load, restarted on the same state_dir.

Meta's side is played by the test (``killable.deliver``): each tenant's messages are posted in
order, and a message is posted again (and again) until it is answered 200, as Meta re-delivers.
What must hold: every message answered 200 gets exactly one reply (apart from the re-sends the
runtime counts as uncertain), in each tenant's order. The kills come from outside at random
times here; ``test_kill_moments.py`` aims them at named moments.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluiceway.testing import WhatsAppEmulator

from .killable import WAIT, Bot, check_replies, deliver, until_replied

TENANTS = 8
MESSAGES_PER_TENANT = 3


async def _scenario(kill_after: list[int], state_dir: Path) -> None:
    secret = "kill-test-secret"
    async with (
        WhatsAppEmulator(throughput=1000.0, pair_limit=1000, pair_window=1.0, app_secret=secret) as api,
        aiohttp.ClientSession() as session,
    ):
        bot = Bot(api, secret, state_dir)
        api.webhook_url = bot.webhook  # status webhooks too (those sent while it is down are lost)
        await bot.start(session)
        answered: list[str] = []
        tenants = [f"1555000{i:04d}" for i in range(TENANTS)]
        deliveries = [
            asyncio.create_task(deliver(bot, session, secret, t, MESSAGES_PER_TENANT, answered)) for t in tenants
        ]
        try:
            for threshold in sorted(kill_after):
                deadline = asyncio.get_running_loop().time() + WAIT
                while len(answered) < threshold:
                    assert asyncio.get_running_loop().time() < deadline, "deliveries stalled"
                    await asyncio.sleep(0.002)
                await bot.kill()
                await bot.start(session)
            await asyncio.wait_for(asyncio.gather(*deliveries), WAIT)
            await until_replied(api, answered)
            await bot.stop()
        finally:
            for task in deliveries:
                task.cancel()
            if bot.process is not None and bot.process.returncode is None:
                await bot.kill()
        check_replies(api, bot, answered, tenants, MESSAGES_PER_TENANT)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kill_after=st.lists(st.integers(1, TENANTS * MESSAGES_PER_TENANT - 1), min_size=1, max_size=2, unique=True))
def test_sigkill_of_the_whole_runtime_loses_no_answered_message(kill_after: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="sluiceway-kill-") as state_dir:
        asyncio.run(_scenario(kill_after, Path(state_dir)))
