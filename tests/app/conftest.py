"""A whole bot stack on 127.0.0.1 for end-to-end tests: emulators, runtime, signed webhooks."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sluiceway.app.runtime import Runtime
from sluiceway.demo.local import emulated_runtime
from sluiceway.examples.property_bot import SHEETS
from sluiceway.testing import SheetsEmulator, WhatsAppEmulator
from sluiceway.testing.webhooks import signed, text_message

PROPERTY_BOT = "sluiceway.examples.property_bot.app:bot"
SPREADSHEET = "test-sheet"
#: Every wait in these tests is on a condition; this only bounds a broken run.
WAIT = 120.0
#: The folder of ``sample_bots``, the test bots runtimes load by name (``sample_bots:echo_bot``).
HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True, scope="module")
def sample_bots_importable() -> Iterator[None]:
    """Put ``sample_bots`` on the import path of the tests and of the worker processes they start."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(HERE))
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
        yield


class Stack:
    """Sheets and WhatsApp emulators plus a ``Runtime`` running ``bot`` with ``workers`` workers."""

    def __init__(
        self,
        bot: str = PROPERTY_BOT,
        workers: int = 1,
        rate: int = 500,
        state_dir: Path | None = None,
        **engine: Any,
    ) -> None:
        self.bot, self.workers, self.rate, self.engine_options = bot, workers, rate, engine
        self.secret = secrets.token_hex(8)
        self.sheets = SheetsEmulator()
        self.whatsapp = WhatsAppEmulator(
            throughput=float(rate), pair_limit=100, pair_window=1.0, app_secret=self.secret
        )
        self.runtime: Runtime | None = None
        # A given state_dir outlives the stack (a restart test reuses it); else a temporary one.
        self._own_state = None if state_dir is not None else tempfile.TemporaryDirectory(prefix="sluiceway-state-")
        self.state_dir = state_dir if state_dir is not None else Path(self._own_state.name)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Stack:
        await self.sheets.start()
        for name, path in SHEETS.items():
            self.sheets.load_csv(SPREADSHEET, name, path)
        await self.whatsapp.start()
        self.runtime = emulated_runtime(
            self.bot,
            app_secret=self.secret,
            whatsapp_url=self.whatsapp.base_url,
            phone_number_id=self.whatsapp.phone_number_id,
            access_token=self.whatsapp.access_token,
            sheets_url=self.sheets.url,
            spreadsheet_id=SPREADSHEET,
            workers=self.workers,
            rate=self.rate,
            pair_limit=(100, 1.0),
            monitor_process=False,
            enable_auto_scaling=False,
            state_dir=self.state_dir,
            **self.engine_options,
        )
        await self.runtime.start()
        self.whatsapp.webhook_url = self.runtime.webhook_url
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runtime is not None and self.runtime.running:
            await self.runtime.stop()
        await self.whatsapp.stop()
        await self.sheets.stop()
        if self._own_state is not None:
            self._own_state.cleanup()

    async def post(self, payload: dict[str, Any], secret: str | None = None) -> int:
        """Post ``payload`` signed like Meta; returns the HTTP status."""
        assert self.session is not None and self.runtime is not None
        body, headers = signed(payload, secret or self.secret)
        async with self.session.post(self.runtime.webhook_url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    async def say(self, tenant: str, wamid: str, text: str) -> int:
        return await self.post(text_message(tenant, wamid, text))

    async def deliver(self, tenant: str, wamid: str, text: str) -> None:
        """Post a message as Meta does: re-delivered while the runtime answers 503 (it sheds load or is busy)."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while (status := await self.say(tenant, wamid, text)) == 503:
            assert asyncio.get_running_loop().time() < deadline, f"{wamid} refused for {WAIT} s"
            await asyncio.sleep(0.05)
        assert status == 200, f"{wamid}: {status}"

    def replies_to(self, wamid: str) -> list[str]:
        """Texts the WhatsApp emulator accepted in reply to ``wamid``."""
        return [
            a.message.text.body
            for a in self.whatsapp.accepted
            if a.message.context is not None and a.message.context.message_id == wamid and a.message.text is not None
        ]

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait until ``condition()`` holds (polling), or fail after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.02)

    async def reply(self, tenant: str, wamid: str, text: str) -> str:
        """Send one message and wait for its one reply."""
        assert await self.say(tenant, wamid, text) == 200
        await self.until(lambda: bool(self.replies_to(wamid)))
        return self.replies_to(wamid)[0]


@pytest.fixture
def stack() -> type[Stack]:
    """The ``Stack`` class: ``async with stack(workers=2) as s: ...``."""
    return Stack
