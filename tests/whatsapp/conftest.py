"""Fixtures for the WhatsApp tests: the emulator + transport + sender stack, and virtual time.

Limits and windows are small (tens of messages per second, sub-second windows) so
the suite stays fast; nothing here asserts on speed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from sluiceway.testing import ManualClock, WhatsAppEmulator
from sluiceway.whatsapp import BatchSender, BreakerConfig, RecipientLimit, SenderConfig, WhatsAppCloudTransport

#: Loop turns a virtual sleep yields before moving the clock (a chain of sends takes
#: a few turns per send; this covers the longest chain the tests configure).
VIRTUAL_YIELDS = 40
#: Generous real-time bound for any condition a test waits on (a loaded 2-core CI box).
WAIT = 30.0


def _fast_config(**overrides: Any) -> SenderConfig:
    """40 messages/s, pair rate 2 per 0.5 s, backoff in tens of milliseconds, a quick breaker."""
    fields: dict[str, Any] = {
        "per_recipient": RecipientLimit(2, 0.5),
        "initial_backoff": 0.02,
        "max_backoff": 0.2,
        "breaker": BreakerConfig(
            failure_rate_threshold=0.5, window=2.0, minimum_calls=4, open_duration=0.3, half_open_trials=2
        ),
        "shutdown_timeout": 5.0,
    }
    fields.update(overrides)
    return SenderConfig.cloud_api(40, **fields)


@contextlib.asynccontextmanager
async def _stack(
    config: SenderConfig | None = None,
    *,
    webhooks: bool = False,
    timeout: float = 5.0,
    max_connections: int = 100,
    on_alert: Callable[[str, Any], None] | None = None,
    **emulator: Any,
) -> AsyncIterator[tuple[WhatsAppEmulator, BatchSender]]:
    holder: list[BatchSender] = []

    async def receive(request: web.Request) -> web.Response:
        holder[0].handle_webhook(await request.read())
        return web.Response(text="ok")

    runner: web.AppRunner | None = None
    if webhooks:
        app = web.Application()
        app.router.add_post("/webhook", receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        emulator["webhook_url"] = f"http://127.0.0.1:{runner.addresses[0][1]}/webhook"
    emulator.setdefault("throughput", 40)
    emulator.setdefault("pair_limit", 2)
    emulator.setdefault("pair_window", 0.5)
    try:
        async with (
            WhatsAppEmulator(**emulator) as api,
            WhatsAppCloudTransport(
                api.phone_number_id,
                api.access_token,
                base_url=api.base_url,
                timeout=timeout,
                max_connections=max_connections,
            ) as transport,
        ):
            sender = BatchSender(transport, config or _fast_config(), on_alert=on_alert)
            holder.append(sender)
            async with sender:
                yield api, sender
    finally:
        if runner is not None:
            await runner.cleanup()


@pytest.fixture
def fast_config() -> Callable[..., SenderConfig]:
    """``fast_config(**overrides)``: 40 messages/s, pair rate 2 per 0.5 s, quick backoff and breaker."""
    return _fast_config


@pytest.fixture
def whatsapp_stack() -> Callable[..., contextlib.AbstractAsyncContextManager[tuple[WhatsAppEmulator, BatchSender]]]:
    """``async with whatsapp_stack(config, **emulator_kwargs) as (api, sender)``: real HTTP on 127.0.0.1."""
    return _stack


async def _wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


@pytest.fixture
def wait_for() -> Callable[..., Awaitable[None]]:
    """``await wait_for(lambda: cond)``: poll a condition with a generous timeout."""
    return _wait_for


@pytest.fixture
def virtual_time() -> tuple[ManualClock, Callable[[float], Awaitable[None]]]:
    """A manual clock and a ``sleep`` that advances it instead of waiting: time passes only as code sleeps."""
    clock = ManualClock(1000.0)

    async def sleep(seconds: float) -> None:
        # Let every task that is ready run first (rounds just created, chains between
        # sends), so time never moves between a limiter admitting a send and the send.
        for _ in range(VIRTUAL_YIELDS):
            await asyncio.sleep(0)
        clock.advance(seconds)
        await asyncio.sleep(0)

    return clock, sleep
