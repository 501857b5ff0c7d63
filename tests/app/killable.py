"""``sluiceway run`` as a process group the tests can SIGKILL and restart on the same ports and state_dir.

Meta's side is played by ``deliver``: a tenant's messages are posted in order, each again and
again until it is answered 200, as Meta re-delivers what got no 200. ``check_replies`` holds
what must follow a crash: every message answered 200 got exactly one reply (apart from the
re-sends the runtime counted as uncertain), in each tenant's order.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from sluiceway.fault_points import FAULT_POINT_ENV
from sluiceway.testing import WhatsAppEmulator
from sluiceway.testing.webhooks import signed, text_message

#: Every wait here is on a condition; this only bounds a broken run.
WAIT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bot:
    """One ``sluiceway run`` process group at a time, on fixed ports and one state_dir."""

    def __init__(self, api: WhatsAppEmulator, secret: str, state_dir: Path, bot: str = "sample_bots:echo_bot") -> None:
        self.bot = bot
        self.port, self.admin = free_port(), free_port()
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
        self.env.pop(FAULT_POINT_ENV, None)
        self.process: asyncio.subprocess.Process | None = None
        self.up = asyncio.Event()
        self.uncertain_resends = 0
        self.starts = 0

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    async def start(self, session: aiohttp.ClientSession, fault_point: str | None = None) -> None:
        """Start it (``fault_point``: arm ``SLUICEWAY_FAULT_POINT`` for this run) and wait until it serves."""
        env = self.env if fault_point is None else {**self.env, FAULT_POINT_ENV: fault_point}
        self.process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "sluiceway.cli", "run", self.bot),
            *("--port", str(self.port), "--workers", "1"),
            env=env,
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

    async def killed_itself(self) -> None:
        """Wait until the process group died of an armed fault point's SIGKILL (fails if it does not)."""
        assert self.process is not None
        await asyncio.wait_for(self.process.wait(), WAIT)
        self.up.clear()
        assert self.process.returncode == -signal.SIGKILL, f"exited with {self.process.returncode}, not by SIGKILL"

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), WAIT)


async def deliver(
    bot: Bot, session: aiohttp.ClientSession, secret: str, tenant: str, messages: int, answered: list[str]
) -> None:
    """Post this tenant's messages in order, each until it is answered 200 (Meta's re-delivery)."""
    for n in range(messages):
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


def replies(api: WhatsAppEmulator) -> Counter[str]:
    """How many replies the API took for each inbound wamid."""
    return Counter(a.message.context.message_id for a in api.accepted if a.message.context is not None)


async def until_replied(api: WhatsAppEmulator, answered: list[str]) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not set(answered) <= set(replies(api)):
        assert asyncio.get_running_loop().time() < deadline, f"no reply to {set(answered) - set(replies(api))}"
        await asyncio.sleep(0.02)


def check_replies(api: WhatsAppEmulator, bot: Bot, answered: list[str], tenants: list[str], messages: int) -> None:
    """Exactly one reply per message answered 200 (uncertain re-sends excepted), in each tenant's order."""
    counts = replies(api)
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
        assert first_seen == [f"wamid.{tenant}.{n}" for n in range(messages)], first_seen
