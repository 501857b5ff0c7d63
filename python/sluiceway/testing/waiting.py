"""Waiting on a condition in async tests, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: Seconds between checks of the condition.
POLL_INTERVAL = 0.01


async def wait_until(condition: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    """Return as soon as ``condition()`` is truthy; ``TimeoutError`` naming ``what`` after ``timeout`` s.

    Example::

        await wait_until(lambda: engine.get_statistics().completed >= 10, what="10 completions")
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)
