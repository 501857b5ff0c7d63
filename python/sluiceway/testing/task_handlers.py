"""Test doubles: handlers that use what needs a running asyncio Task, in real worker processes.

Each returns what it observed (through ``submit``), so a test asserts on the handler's own
view. ``*_at_once`` handlers never await (they finish in their first step); the others
await. Never used by library code.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import anyio

from sluiceway.engine.message import Message

#: Seconds a "too long" await would take: far past every timeout these handlers set.
TOO_LONG = 60.0
#: The short timeouts the handlers set, which must fire.
SHORT = 0.05


def _own_task() -> bool:
    return isinstance(asyncio.current_task(), asyncio.Task)


async def task_at_once(message: Message) -> dict[str, Any]:
    """Never awaits: its task, and ``asyncio.timeout``/anyio scopes entered and left at once."""
    seen = {"task": _own_task()}
    async with asyncio.timeout(1):
        seen["asyncio_timeout"] = True
    with anyio.CancelScope():
        seen["anyio_cancel_scope"] = True
    with anyio.fail_after(1):
        seen["anyio_fail_after"] = True
    return seen


async def task_awaiting(message: Message) -> dict[str, Any]:
    """Awaits: its task, and ``asyncio.timeout``/anyio scopes that cut a too-long await short."""
    await asyncio.sleep(0)
    seen: dict[str, Any] = {"task": _own_task()}
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(SHORT):
            await asyncio.sleep(TOO_LONG)
    except TimeoutError:
        seen["asyncio_timeout"] = loop.time() - started < TOO_LONG / 2
    with anyio.move_on_after(SHORT) as scope:
        await anyio.sleep(TOO_LONG)
    seen["anyio_cancel_scope"] = scope.cancelled_caught
    try:
        with anyio.fail_after(SHORT):
            await anyio.sleep(TOO_LONG)
    except TimeoutError:
        seen["anyio_fail_after"] = True
    seen["task_after"] = _own_task()
    return seen


async def http_get(message: Message) -> dict[str, Any]:
    """GETs ``payload["url"]`` with ``ClientTimeout(total=payload["timeout"])``: its body, or "timed out"."""
    timeout = aiohttp.ClientTimeout(total=message.payload["timeout"])
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(message.payload["url"]) as response:
            return {"status": response.status, "body": await response.text()}
    except TimeoutError:
        return {"timed_out": True}
