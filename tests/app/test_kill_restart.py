"""``sluiceway run`` killed with SIGKILL (its whole process group) under load, restarted on the same state_dir.

Meta's side is played by the test: each tenant's messages are posted in order, and a message is
posted again (and again) until it is answered 200, as Meta re-delivers. What must hold: every
message answered 200 gets exactly one reply (apart from the re-sends the runtime counts as
uncertain), in each tenant's order. The sender's per-recipient pacing (one message per 6 s)
keeps replies queued, so the kills find replies unsent, on the wire and sent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluiceway.testing import WhatsAppEmulator
from sluiceway.testing.webhooks import signed, text_message

#: Every wait here is on a condition; this only bounds a broken run.
WAIT = 120.0
TENANTS = 8
MESSAGES_PER_TENANT = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bot:
    """One ``sluiceway run`` process group at a time, on fixed ports and one state_dir."""

    def __init__(self, api: WhatsAppEmulator, secret: str, state_dir: Path) -> None:
        self.port, self.admin = _free_port(), _free_port()
        self.env = {
            **os.environ,
            "WHATSAPP_APP_SECRET": secret,
            "WHATSAPP_ACCESS_TOKEN": api.access_token,
            "WHATSAPP_PHONE_NUMBER_ID": api.phone_number_id,
            "SLUICEWAY_WHATSAPP_BASE_URL": api.base_url,
            "SLUICEWAY_ADMIN_PORT": str(self.admin),
            "SLUICEWAY_MONITOR_PORT": "0",
            "SLUICEWAY_STATE_DIR": str(state_dir),
            "SLUICEWAY_LOG_LEVEL": "WARNING",
        }
        self.process: asyncio.subprocess.Process | None = None
        self.up = asyncio.Event()
        self.uncertain_resends = 0
        self.starts = 0

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    async def start(self, session: aiohttp.ClientSession) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "sluiceway.cli", "run", "sample_bots:echo_bot"),
            *("--port", str(self.port), "--workers", "1"),
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the kill takes the workers too
        )
        self.starts += 1
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            assert self.process.returncode is None, "sluiceway run exited on start"
            try:
                async with session.get(f"http://127.0.0.1:{self.admin}/status") as response:
                    if response.status == 200:
                        status: dict[str, Any] = await response.json()
                        break
            except aiohttp.ClientError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "sluiceway run never came up"
            await asyncio.sleep(0.05)
        self.uncertain_resends += int(status["uncertain_resends"])
        self.up.set()

    async def kill(self) -> None:
        assert self.process is not None
        self.up.clear()
        os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), WAIT)


async def _deliver(bot: Bot, session: aiohttp.ClientSession, secret: str, tenant: str, answered: list[str]) -> None:
    """Post this tenant's messages in order, each until it is answered 200 (Meta's re-delivery)."""
    for n in range(MESSAGES_PER_TENANT):
        wamid = f"wamid.{tenant}.{n}"
        body, headers = signed(text_message(tenant, wamid, f"{tenant} {n}"), secret)
        while True:
            await bot.up.wait()
            try:
                async with session.post(bot.webhook, data=body, headers=headers) as response:
                    if response.status == 200:
                        answered.append(wamid)
                        break
            except aiohttp.ClientError:
                pass  # killed mid-request: not answered, so Meta would deliver it again
            await asyncio.sleep(0.01)


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
        deliveries = [asyncio.create_task(_deliver(bot, session, secret, t, answered)) for t in tenants]
        try:
            for threshold in sorted(kill_after):
                deadline = asyncio.get_running_loop().time() + WAIT
                while len(answered) < threshold:
                    assert asyncio.get_running_loop().time() < deadline, "deliveries stalled"
                    await asyncio.sleep(0.002)
                await bot.kill()
                await bot.start(session)
            await asyncio.wait_for(asyncio.gather(*deliveries), WAIT)

            def replies() -> Counter[str]:
                return Counter(a.message.context.message_id for a in api.accepted if a.message.context is not None)

            deadline = asyncio.get_running_loop().time() + WAIT
            while not set(answered) <= set(replies()):
                assert asyncio.get_running_loop().time() < deadline, f"no reply to {set(answered) - set(replies())}"
                await asyncio.sleep(0.02)
            await bot.stop()
        finally:
            for task in deliveries:
                task.cancel()
            if bot.process is not None and bot.process.returncode is None:
                await bot.kill()
        counts = replies()
        assert set(counts) == set(answered), "a reply to a message that was never answered 200"
        extra = sum(count - 1 for count in counts.values())
        assert extra <= bot.uncertain_resends, f"{extra} duplicate replies, {bot.uncertain_resends} counted uncertain"
        for tenant in tenants:
            order = [
                a.message.context.message_id
                for a in api.accepted
                if a.message.to == tenant and a.message.context is not None
            ]
            first_seen = list(dict.fromkeys(order))
            assert first_seen == [f"wamid.{tenant}.{n}" for n in range(MESSAGES_PER_TENANT)], first_seen


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kill_after=st.lists(st.integers(1, TENANTS * MESSAGES_PER_TENANT - 1), min_size=1, max_size=2, unique=True))
def test_sigkill_of_the_whole_runtime_loses_no_answered_message(kill_after: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="sluiceway-kill-") as state_dir:
        asyncio.run(_scenario(kill_after, Path(state_dir)))
