"""The Sheets cache's Redis level: a write through one node is never followed by a stale read on another,
and a lost subscription flushes the local level and bypasses it until subscribed again."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from sluiceway.sheets.cache import SheetsCache
from sluiceway.sheets.config import CacheConfig
from sluiceway.sheets.redis_level import RedisSheetsLevel
from sluiceway.testing.redis_server import RedisServer

SHEET = "1AbC"
#: Ranges read, and the cells each covers (written one cell at a time).
RANGES = {
    "Units!A1:B2": ("A1", "A2", "B1", "B2"),
    "Units!B2:C3": ("B2", "B3", "C2", "C3"),
    "Units!C1:C3": ("C1", "C2", "C3"),
    "Units!A1": ("A1",),
}
CELLS = sorted({cell for cells in RANGES.values() for cell in cells})
T = TypeVar("T")


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@asynccontextmanager
async def node(url: str, namespace: str) -> AsyncIterator[tuple[SheetsCache, RedisSheetsLevel]]:
    """One process's cache: its own connections, its own level 1, the shared level 2."""
    redis = Redis.from_url(url)
    level = RedisSheetsLevel(redis, namespace=namespace, ack_timeout=5.0)
    try:
        async with level:
            cache = SheetsCache(CacheConfig(allow_stale_reads=False), invalidation=level, shared=level)
            yield cache, level
    finally:
        await redis.aclose()


operations = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(0, 1), st.sampled_from(sorted(RANGES))),
        st.tuples(st.just("write"), st.integers(0, 1), st.sampled_from(CELLS), st.integers(0, 9)),
    ),
    min_size=1,
    max_size=30,
)


class NodeThread:
    """A node in its own thread and event loop, so its subscription runs independently of the other node's."""

    def __init__(self, url: str, namespace: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._node = node(url, namespace)
        self.cache, self.level = self.run(self._node.__aenter__())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def close(self) -> None:
        self.run(self._node.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@settings(max_examples=40)
@given(steps=operations)
def test_reads_on_either_node_always_see_the_last_write_through_any_node(
    shared_redis: RedisServer, steps: list[tuple[object, ...]]
) -> None:
    sheet: dict[str, int] = dict.fromkeys(CELLS, 0)  # the model: what the spreadsheet holds now
    namespace = uuid.uuid4().hex
    nodes = [NodeThread(shared_redis.url, namespace) for _ in range(2)]
    try:
        for step in steps:
            if step[0] == "read":
                _, n, cell_range = step
                assert isinstance(n, int) and isinstance(cell_range, str)

                async def fetch(cell_range: str = cell_range) -> list[int]:
                    return [sheet[cell] for cell in RANGES[cell_range]]

                result = nodes[n].run(nodes[n].cache.get_or_fetch(SHEET, cell_range, fetch))
                assert result.value == [sheet[cell] for cell in RANGES[cell_range]]
            else:
                _, n, cell, value = step
                assert isinstance(n, int) and isinstance(cell, str) and isinstance(value, int)
                sheet[cell] = value  # the API call, then the invalidation, as SheetsClient does
                nodes[n].run(nodes[n].cache.invalidate_everywhere(SHEET, f"Units!{cell}"))
    finally:
        for each in nodes:
            each.close()


def test_the_second_node_reads_what_the_first_fetched_from_redis(
    loop: asyncio.AbstractEventLoop, shared_redis: RedisServer
) -> None:
    fetches = 0

    async def fetch() -> list[int]:
        nonlocal fetches
        fetches += 1
        return [1, 2, 3]

    async def scenario() -> None:
        namespace = uuid.uuid4().hex
        async with node(shared_redis.url, namespace) as (a, _), node(shared_redis.url, namespace) as (b, level_b):
            await a.get_or_fetch(SHEET, "Units!A1:B2", fetch)
            result = await b.get_or_fetch(SHEET, "Units!A1:B2", fetch)
            assert result.value == [1, 2, 3] and fetches == 1 and level_b.stats()["hits"] == 1

    loop.run_until_complete(scenario())


async def _until(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def test_a_killed_subscription_flushes_the_local_level_and_reads_bypass_it_until_resubscribed() -> None:
    async def scenario(server: RedisServer) -> None:
        values = [1]

        async def fetch() -> list[int]:
            return list(values)

        async with node(server.url, "kill") as (cache, level):
            await cache.get_or_fetch(SHEET, "Units!A1", fetch)
            assert (await cache.get_or_fetch(SHEET, "Units!A1", fetch)).from_cache
            admin = Redis.from_url(server.url)
            clients = await admin.client_list(_type="pubsub")
            (mine,) = [c for c in clients if c["name"] == level.name]
            flushes = level.flushes
            await admin.client_kill_filter(_id=mine["id"])
            await _until(lambda: level.flushes > flushes)
            assert cache.stats()["entries"] == 0
            await _until(lambda: level.local_ok)  # subscribed again: the local level serves again
            await cache.get_or_fetch(SHEET, "Units!A1", fetch)
            assert (await cache.get_or_fetch(SHEET, "Units!A1", fetch)).from_cache

            # Redis gone: nothing could tell this process of a write, so the local level is not used.
            server.stop()
            await _until(lambda: not level.local_ok)
            assert cache.stats()["entries"] == 0
            values[0] = 2
            for _ in range(2):
                result = await cache.get_or_fetch(SHEET, "Units!A1", fetch)
                assert result.value == [2] and not result.from_cache
            server.start()
            await _until(lambda: level.local_ok)
            await admin.aclose()

    with RedisServer() as server:
        asyncio.run(scenario(server))


def test_publish_returns_only_once_every_subscribed_process_has_applied_the_write(
    loop: asyncio.AbstractEventLoop, shared_redis: RedisServer
) -> None:
    """A process that takes its time to apply a write holds the writer until it acknowledges."""

    async def scenario() -> None:
        namespace = uuid.uuid4().hex
        slow = Redis.from_url(shared_redis.url)
        pubsub = slow.pubsub()
        await pubsub.subscribe(f"{namespace}:sheets:invalidate")
        async with node(shared_redis.url, namespace) as (cache, _):
            publish = asyncio.ensure_future(cache.invalidate_everywhere(SHEET, "Units!A1"))
            while (message := await pubsub.get_message(timeout=1.0)) is None or message["type"] != "message":
                pass
            message_id, _ = msgspec.msgpack.decode(message["data"])
            await asyncio.sleep(0.2)  # applying takes a while
            assert not publish.done()
            await slow.rpush(f"{namespace}:sheets:ack:{message_id}", b"1")
            await asyncio.wait_for(publish, 5.0)
        await pubsub.aclose()
        await slow.aclose()

    loop.run_until_complete(scenario())
