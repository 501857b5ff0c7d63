"""A runtime against the WhatsApp emulator with real tokens in its settings, so workers reach the Graph API.

Unlike ``conftest.Stack`` (a transport handed to the runtime, no token in the settings) this is
how ``sluiceway run`` is configured: the workers get the tokens for media, ``mark_read`` and
``send_now``; several business numbers are supported.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from sluiceway.app.runtime import Runtime
from sluiceway.app.secret import Secret
from sluiceway.app.settings import Settings
from sluiceway.engine import ParallelizerConfig
from sluiceway.monitor import MonitorConfig
from sluiceway.testing import WhatsAppEmulator
from sluiceway.whatsapp import RecipientLimit, SenderConfig

#: Every wait is on a condition; this only bounds a broken run.
WAIT = 60.0
NUMBER_A = "106540352242922"
NUMBER_B = "106540352242933"


class GraphStack:
    """The emulator (``numbers``: id → token) and a runtime for ``bot`` with one worker."""

    def __init__(
        self,
        bot: str,
        *,
        numbers: Mapping[str, str] | None = None,
        throughput: float = 500.0,
        rate: int = 500,
        pair: tuple[int, float] = (100, 1.0),
        enforce_window: bool = False,
        monitor_process: bool = False,
        **settings: Any,
    ) -> None:
        self.bot = bot
        self.numbers = dict(numbers or {NUMBER_A: "token-a"})
        self.secret = secrets.token_hex(8)
        self.whatsapp = WhatsAppEmulator(
            throughput=throughput,
            pair_limit=pair[0],
            pair_window=pair[1],
            app_secret=self.secret,
            numbers=self.numbers,
            phone_number_id=next(iter(self.numbers)),
            access_token=next(iter(self.numbers.values())),
            enforce_window=enforce_window,
        )
        self.rate, self.pair, self.overrides, self.monitor_process = rate, pair, settings, monitor_process
        self._state = tempfile.TemporaryDirectory(prefix="sluiceway-state-")
        self.runtime: Runtime | None = None

    async def __aenter__(self) -> GraphStack:
        await self.whatsapp.start()
        first, *others = self.numbers
        settings = Settings(
            whatsapp_app_secret=Secret(self.secret),
            whatsapp_access_token=Secret(self.numbers[first]),
            whatsapp_phone_number_id=first,
            whatsapp_phone_number_ids=tuple(others),
            whatsapp_number_tokens={number: Secret(self.numbers[number]) for number in others},
            whatsapp_base_url=self.whatsapp.base_url,
            port=0,
            admin_port=0,
            monitor_port=0,
            workers=1,
            state_dir=self._state.name,
        )
        settings = msgspec.structs.replace(settings, **self.overrides)
        self.runtime = Runtime(
            self.bot,
            settings,
            engine_config=ParallelizerConfig(
                default_worker_count=1, min_workers=1, max_workers=2, enable_auto_scaling=False
            ),
            sender_config=SenderConfig.cloud_api(self.rate, per_recipient=RecipientLimit(*self.pair)),
            monitor_config=MonitorConfig(
                http_port=0, metric_collection_interval=1.0, monitor_process=self.monitor_process
            ),
        )
        await self.runtime.start()
        self.whatsapp.webhook_url = self.runtime.webhook_url
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.runtime is not None and self.runtime.running:
            await self.runtime.stop()
        await self.whatsapp.stop()
        self._state.cleanup()

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait until ``condition()`` holds (polling), or fail after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.02)

    def replies_to(self, wamid: str) -> list[Any]:
        """The accepted messages (``Accepted``) quoting ``wamid``, oldest first."""
        return [a for a in self.whatsapp.accepted if a.message.context and a.message.context.message_id == wamid]

    def sent_to(self, wa_id: str) -> list[Any]:
        return [a for a in self.whatsapp.accepted if a.message.to == wa_id]
