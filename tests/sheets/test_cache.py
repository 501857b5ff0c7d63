"""SheetsCache behaviour: a state machine against a reference model, and the concurrency rules."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sluiceway.sheets.cache import CacheResult, SheetsCache
from sluiceway.sheets.codec import ValueCodec
from sluiceway.sheets.config import CacheConfig
from sluiceway.sheets.errors import InvalidRangeError
from sluiceway.sheets.invalidation import LocalInvalidation
from sluiceway.sheets.ranges import parse_a1
from sluiceway.testing import ManualClock

SID = "sheet-1"
RANGES = ["Units!A1:B2", "Units!B2:C3", "Units!D1:D9", "Units!A:A", "Units!5:6", "Other!A1:Z9", "Units!C4"]
TAGS = ["units", "tenants"]
TTL, STALE = 10.0, 5.0


class CacheMachine(RuleBasedStateMachine):
    """Drives gets, clock moves, writes, invalidations and tag drops; the model says what each get returns.

    The model keeps, per range, the version it cached, when it turns stale, when it
    expires and its tags. The source holds one version counter per range; a write
    bumps it, so a get that returns an older version than the latest write is stale.
    """

    @initialize(allow_stale=st.booleans())
    def start(self, allow_stale: bool) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.config = CacheConfig(default_ttl=TTL, stale_while_revalidate=STALE, allow_stale_reads=allow_stale)
        self.cache = SheetsCache(self.config, self.clock, invalidation=LocalInvalidation())
        self.source = dict.fromkeys(RANGES, 0)
        self.model: dict[str, tuple[int, float, float, frozenset[str]]] = {}
        self.fetches = 0

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.close()

    async def _fetch_from(self, rng: str) -> list[list[Any]]:
        self.fetches += 1
        return [[rng, self.source[rng]]]

    @rule(rng=st.sampled_from(RANGES), tags=st.sets(st.sampled_from(TAGS), max_size=2))
    def get(self, rng: str, tags: set[str]) -> None:
        now = self.clock()
        expected = self.model.get(rng)
        before = self.fetches
        result = self.loop.run_until_complete(
            self.cache.get_or_fetch(SID, rng, functools.partial(self._fetch_from, rng), tags=sorted(tags))
        )
        stale_until = self.config.stale_while_revalidate if self.config.allow_stale_reads else 0.0
        if expected is not None and now < expected[1]:
            assert result == CacheResult([[rng, expected[0]]], True, False)
            assert self.fetches == before
        elif expected is not None and now < expected[2]:
            assert result == CacheResult([[rng, expected[0]]], True, True)
            # The background refresh stores the source's current version.
            self.loop.run_until_complete(_background_done())
            assert self.fetches == before + 1
            self.model[rng] = (self.source[rng], now + TTL, now + TTL + stale_until, frozenset(tags))
        else:
            assert result == CacheResult([[rng, self.source[rng]]], False, False)
            assert self.fetches == before + 1
            self.model[rng] = (self.source[rng], now + TTL, now + TTL + stale_until, frozenset(tags))

    @rule(seconds=st.sampled_from([0.5, 4.0, 9.9, 10.0, 12.0, 15.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(rng=st.sampled_from(RANGES))
    def write(self, rng: str) -> None:
        """A write changes the source, then invalidates: later gets must see the new version."""
        self.source[rng] += 1
        for other in RANGES:  # the write also changes the cells other ranges share with it
            if other != rng and parse_a1(other).overlaps(parse_a1(rng)):
                self.source[other] += 1
        self.cache.invalidate(SID, rng)
        self._drop(lambda r, tags: parse_a1(r).overlaps(parse_a1(rng)))

    @rule(tag=st.sampled_from(TAGS))
    def drop_tag(self, tag: str) -> None:
        dropped = self.cache.invalidate_by_tag(tag)
        live = {r for r, (_, _, until, tags) in self.model.items() if tag in tags and self.clock() < until}
        # Entries past their stale window may still sit in the store until touched.
        assert len(live) <= dropped
        self._drop(lambda r, tags: tag in tags)

    @rule()
    def drop_spreadsheet(self) -> None:
        self.cache.invalidate(SID)
        self.model.clear()

    def _drop(self, predicate: Any) -> None:
        for r in [r for r, (_, _, _, tags) in self.model.items() if predicate(r, tags)]:
            del self.model[r]

    @invariant()
    def within_budget(self) -> None:
        if hasattr(self, "cache"):
            stats = self.cache.stats()
            assert stats["bytes_used"] <= self.config.max_memory_bytes
            assert stats["hits"] + stats["stale_hits"] + stats["misses"] >= stats["fetches"] - stats["stale_hits"]


async def _background_done() -> None:
    await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not asyncio.current_task()))


TestCacheMachine = CacheMachine.TestCase
TestCacheMachine.settings = settings(max_examples=60, stateful_step_count=40)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_misses_share_one_fetch() -> None:
    """N concurrent misses for one range cause exactly one fetch and all see its value."""

    async def scenario() -> None:
        cache = SheetsCache(invalidation=LocalInvalidation())
        gate = asyncio.Event()
        calls = 0

        async def fetch() -> list[list[str]]:
            nonlocal calls
            calls += 1
            await gate.wait()
            return [["v"]]

        waiters = [asyncio.ensure_future(cache.get_or_fetch(SID, "A1", fetch)) for _ in range(25)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*waiters)
        assert calls == 1
        assert all(r == CacheResult([["v"]], False, False) for r in results)
        assert cache.stats()["calls_saved"] == 24

    run(scenario())


@given(st.integers(min_value=2, max_value=40), st.integers(min_value=1, max_value=5))
def test_single_flight_per_key(n: int, keys: int) -> None:
    """Any number of concurrent misses over a few ranges make one fetch per range."""

    async def scenario() -> None:
        cache = SheetsCache(invalidation=LocalInvalidation())
        calls: dict[str, int] = {}

        async def fetch(rng: str) -> str:
            calls[rng] = calls.get(rng, 0) + 1
            await asyncio.sleep(0)
            return rng

        ranges = [f"A{i % keys + 1}" for i in range(n)]
        results = await asyncio.gather(*(cache.get_or_fetch(SID, r, lambda r=r: fetch(r)) for r in ranges))
        assert [res.value for res in results] == ranges
        assert calls == dict.fromkeys(set(ranges), 1)

    run(scenario())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=5), children, max_size=6),
    max_leaves=40,
)


@given(json_values, st.sampled_from([0, 16, 10 * 1024]))
def test_values_round_trip_through_compression(value: Any, threshold: int) -> None:
    """Whatever its size, a value encoded for the store decodes equal, compressed or not."""
    codec = ValueCodec(threshold)
    assert codec.decode(codec.encode(value)) == value


def test_large_values_are_stored_compressed() -> None:
    """Values above the threshold are lz4-compressed, and the stats report it."""

    async def scenario() -> None:
        cache = SheetsCache(CacheConfig(compression_threshold_bytes=1024), invalidation=LocalInvalidation())
        rows = [[f"unit {i}", "Available", "2 bed", 1200] for i in range(500)]

        async def fetch() -> Any:
            return rows

        await cache.get_or_fetch(SID, "A1:D500", fetch)
        assert (await cache.get_or_fetch(SID, "A1:D500", fetch)).value == rows
        stats = cache.stats()
        assert stats["compressed_entries"] == 1 and stats["compression_ratio"] > 2

    run(scenario())


@given(st.lists(st.tuples(st.integers(1, 400), st.integers(0, 3000)), min_size=1, max_size=60))
def test_memory_budget_is_never_exceeded(entries: list[tuple[int, int]]) -> None:
    """However many values of whatever size are cached, bytes_used stays within max_memory_bytes."""
    budget = 8 * 1024

    async def scenario() -> None:
        cache = SheetsCache(
            CacheConfig(max_memory_bytes=budget, compression_threshold_bytes=10**9), invalidation=LocalInvalidation()
        )
        for row, size in entries:

            async def fetch(size: int = size) -> str:
                return "x" * size

            await cache.get_or_fetch(SID, f"A{row}", fetch)
            assert cache.stats()["bytes_used"] <= budget

    run(scenario())


def test_stale_value_is_served_while_failed_refreshes_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    """In the stale window a failing refresh leaves the stale value in service; after it the error surfaces."""

    async def scenario() -> None:
        clock = ManualClock()
        cache = SheetsCache(
            CacheConfig(default_ttl=10, stale_while_revalidate=5), clock, invalidation=LocalInvalidation()
        )
        healthy = True

        async def fetch() -> str:
            if not healthy:
                raise ConnectionError("sheets down")
            return "v1"

        assert (await cache.get_or_fetch(SID, "A1", fetch)).value == "v1"
        healthy = False
        clock.advance(11)
        for _ in range(3):
            result = await cache.get_or_fetch(SID, "A1", fetch)
            assert result == CacheResult("v1", True, True)
            for _ in range(3):
                await asyncio.sleep(0)
        assert cache.stats()["fetch_errors"] == 3
        clock.advance(5)
        with pytest.raises(ConnectionError, match="sheets down"):
            await cache.get_or_fetch(SID, "A1", fetch)

    with caplog.at_level(logging.WARNING, logger="sluiceway.sheets.cache"):
        run(scenario())
    assert "serving the stale value" in caplog.text


def test_without_stale_reads_an_expired_value_is_refetched() -> None:
    """With allow_stale_reads=False an expired entry is fetched again before answering."""

    async def scenario() -> None:
        clock = ManualClock()
        cache = SheetsCache(
            CacheConfig(default_ttl=10, allow_stale_reads=False), clock, invalidation=LocalInvalidation()
        )
        versions = iter(["v1", "v2"])

        async def fetch() -> str:
            return next(versions)

        await cache.get_or_fetch(SID, "A1", fetch)
        clock.advance(10)
        assert await cache.get_or_fetch(SID, "A1", fetch) == CacheResult("v2", False, False)

    run(scenario())


def test_fetch_error_reaches_the_caller_unchanged() -> None:
    """With nothing cached, the exception the fetch raised is the one the caller sees."""

    class Boom(Exception):
        pass

    async def scenario() -> None:
        cache = SheetsCache(invalidation=LocalInvalidation())
        error = Boom("no")

        async def fetch() -> str:
            raise error

        with pytest.raises(Boom) as info:
            await cache.get_or_fetch(SID, "A1", fetch)
        assert info.value is error
        assert cache.stats()["fetch_errors"] == 1

    run(scenario())


def test_fetch_in_flight_during_invalidation_is_never_stored() -> None:
    """A fetch that began before an invalidation answers its callers but is not cached, and later reads refetch."""

    async def scenario() -> None:
        cache = SheetsCache(invalidation=LocalInvalidation())
        gate, started = asyncio.Event(), asyncio.Event()
        source = {"A1": "old"}

        async def slow_fetch() -> str:
            value = source["A1"]
            started.set()
            await gate.wait()
            return value

        async def fetch() -> str:
            return source["A1"]

        early = asyncio.ensure_future(cache.get_or_fetch(SID, "Units!A1:B2", slow_fetch))
        await started.wait()
        source["A1"] = "new"
        assert cache.invalidate(SID, "Units!B2") == 0
        late = await cache.get_or_fetch(SID, "Units!A1:B2", fetch)  # must not join the early fetch
        gate.set()
        assert (await early).value == "old"
        assert late.value == "new"
        assert (await cache.get_or_fetch(SID, "Units!A1:B2", fetch)) == CacheResult("new", True, False)

    run(scenario())


def test_sync_fetch_runs_in_a_thread() -> None:
    """A plain function as fetch runs off the event loop's thread."""

    async def scenario() -> None:
        cache = SheetsCache(invalidation=LocalInvalidation())
        loop_thread = threading.get_ident()
        result = await cache.get_or_fetch(SID, "A1", threading.get_ident)
        assert result.value != loop_thread

    run(scenario())


def test_invalidate_drops_only_overlapping_ranges() -> None:
    """invalidate drops the overlapping ranges of that spreadsheet, a named range drops all of it."""

    async def scenario() -> None:
        cache = SheetsCache(invalidation=LocalInvalidation())

        async def fetch() -> str:
            return "v"

        for sid in (SID, "sheet-2"):
            for rng in ("'Units'!A2:F200", "Units!H1", "Owners!A:C", "Units"):
                await cache.get_or_fetch(sid, rng, fetch)
        assert cache.invalidate(SID, "Units!F7") == 2  # A2:F200 and the bare sheet name
        assert cache.invalidate(SID, "Owners!2:2") == 1
        assert cache.invalidate(SID, "MyNamedRange") == 1  # unsure: everything left
        assert cache.invalidate("sheet-2") == 4
        assert cache.stats()["entries"] == 0

    run(scenario())


def test_bad_arguments_raise_clear_errors() -> None:
    """A malformed range, an empty spreadsheet id or a bad ttl raise errors that name the problem."""

    async def scenario() -> None:
        cache = SheetsCache(invalidation=LocalInvalidation())

        async def fetch() -> str:
            return "v"

        with pytest.raises(InvalidRangeError, match="at most one ':'"):
            await cache.get_or_fetch(SID, "A1:B2:C3", fetch)
        with pytest.raises(ValueError, match="spreadsheet_id"):
            await cache.get_or_fetch("", "A1", fetch)
        with pytest.raises(ValueError, match="ttl"):
            await cache.get_or_fetch(SID, "A1", fetch, ttl=0)
        with pytest.raises(InvalidRangeError):
            cache.invalidate(SID, "A1:")
        with pytest.raises(TypeError, match="msgpack"):
            await cache.get_or_fetch(SID, "A2", lambda: object())

    run(scenario())


def test_value_larger_than_the_budget_is_returned_but_not_cached(caplog: pytest.LogCaptureFixture) -> None:
    """A value that cannot fit the whole budget reaches the caller, is not kept, and a warning says why."""

    async def scenario() -> None:
        cache = SheetsCache(
            CacheConfig(max_memory_bytes=1024, compression_threshold_bytes=10**6), invalidation=LocalInvalidation()
        )
        calls = 0

        async def fetch() -> str:
            nonlocal calls
            calls += 1
            return "x" * 4096

        for _ in range(2):
            assert (await cache.get_or_fetch(SID, "A1", fetch)).value == "x" * 4096
        assert calls == 2 and cache.stats()["entries"] == 0

    with caplog.at_level(logging.WARNING, logger="sluiceway.sheets.cache"):
        run(scenario())
    assert "not cached" in caplog.text


def test_invalidate_everywhere_reaches_every_cache_on_the_channel() -> None:
    """invalidate_everywhere drops overlapping ranges (and tags) in every cache sharing the channel."""

    async def scenario() -> None:
        channel = LocalInvalidation()
        caches = [SheetsCache(invalidation=channel) for _ in range(3)]

        async def fetch() -> str:
            return "v"

        for cache in caches:
            await cache.get_or_fetch(SID, "Units!A1:C3", fetch, tags=["units"])
            await cache.get_or_fetch(SID, "Units!E5", fetch)
        await caches[0].invalidate_everywhere(SID, "Units!B2")
        assert [c.stats()["entries"] for c in caches] == [1, 1, 1]
        await caches[1].invalidate_everywhere(tag="units")
        await caches[2].invalidate_everywhere(SID)
        assert [c.stats()["entries"] for c in caches] == [0, 0, 0]

    run(scenario())
