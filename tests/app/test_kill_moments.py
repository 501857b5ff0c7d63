"""``sluiceway run`` under load, SIGKILLed (its whole process group) at each named moment of a message's life.

A test-only fault point (:mod:`sluiceway.fault_points`, armed by ``SLUICEWAY_FAULT_POINT``) kills
the group the n-th time the run reaches the moment, hypothesis choosing n; the run is restarted
on the same state_dir and port while the tenants keep re-posting what got no 200, as Meta does.
What must hold at every moment: each webhook answered 200 gets exactly one reply (apart from the
re-sends the runtime counts as uncertain), in each tenant's order.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluiceway.fault_points import POINTS
from sluiceway.testing import WhatsAppEmulator

from .killable import WAIT, Bot, check_replies, deliver, until_replied

#: Two messages each: enough to see each tenant's order; the sender's pair rate (one reply per
#: recipient per 6 s) makes every further message cost a scenario 6 s.
TENANTS = 9
MESSAGES_PER_TENANT = 2
#: Each point is reached at least once per message (``before_mark_sent`` once per reply), so any
#: count up to the number of messages is reached; two thirds of it leaves work in flight after the kill.
LAST_COUNT = TENANTS * MESSAGES_PER_TENANT * 2 // 3


async def _scenario(point: str, count: int, state_dir: Path) -> Bot:
    secret = "kill-moment-secret"
    async with (
        WhatsAppEmulator(throughput=1000.0, pair_limit=1000, pair_window=1.0, app_secret=secret) as api,
        aiohttp.ClientSession() as session,
    ):
        bot = Bot(api, secret, state_dir)
        api.webhook_url = bot.webhook  # status webhooks too (those sent while it is down are lost)
        await bot.start(session, fault_point=f"{point}:{count}")
        answered: list[str] = []
        tenants = [f"1555100{i:04d}" for i in range(TENANTS)]
        deliveries = [
            asyncio.create_task(deliver(bot, session, secret, t, MESSAGES_PER_TENANT, answered)) for t in tenants
        ]
        try:
            await bot.killed_itself()
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
        return bot


@pytest.mark.parametrize("point", list(POINTS))
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(1, LAST_COUNT))
def test_a_kill_at_this_moment_loses_and_doubles_nothing_answered(point: str, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sluiceway-kill-") as state_dir:
        bot = asyncio.run(_scenario(point, count, Path(state_dir)))
    if point == "before_mark_sent":
        # The one window where a reply may go out twice: WhatsApp took it before the kill, and
        # nothing recorded that. The restart sends it again and counts it.
        assert bot.uncertain_resends >= 1
