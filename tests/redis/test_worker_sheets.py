"""A worker in Redis mode reads Sheets through a cache on the level every node shares."""

from __future__ import annotations

import asyncio

from sluiceway.app.secret import RedisUrl
from sluiceway.app.settings import Settings
from sluiceway.app.worker import _shared_sheets_cache
from sluiceway.testing.redis_server import RedisServer


def test_a_redis_mode_worker_gets_a_cache_on_the_shared_level(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        alone = Settings(spreadsheet_id="sheet")
        assert await _shared_sheets_cache(alone) == (None, [])  # no Redis: the worker's own cache
        no_sheet = Settings(redis_url=RedisUrl(redis_server.url))
        assert await _shared_sheets_cache(no_sheet) == (None, [])
        shared = Settings(redis_url=RedisUrl(redis_server.url), spreadsheet_id="sheet")
        cache, closers = await _shared_sheets_cache(shared)
        try:
            assert cache is not None and cache._shared is not None  # reads go through the shared level
        finally:
            for close in closers:
                await close()

    asyncio.run(scenario())
