"""SheetsCache: the read cache in front of the Sheets API.

Values live msgpack-encoded (lz4 above a threshold) in the Rust ``ByteLRU``, so the
memory budget is exact. On top of it: single-flight (concurrent misses of one range
share one fetch), stale-while-revalidate, tags, and invalidation by A1 overlap.

Correctness after writes rests on one rule: an invalidation also *disowns* every
fetch in flight for an overlapping range. A disowned fetch still answers the callers
that were already waiting (their reads overlapped the write), but its value is never
stored and no later caller joins it; so no read that starts after an invalidation
returned can see a value fetched before it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import msgspec

from sluiceway.core import ByteLRU
from sluiceway.sheets.codec import ValueCodec
from sluiceway.sheets.config import CacheConfig
from sluiceway.sheets.invalidation import Invalidation, InvalidationChannel, default_channel
from sluiceway.sheets.ranges import A1Range, parse_a1

logger = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[Any]] | Callable[[], Any]

#: Separates the spreadsheet id from the range in a store key (never valid in either).
_KEY_SEPARATOR = "\x1f"
#: Prefixes of the store tags: one per spreadsheet (to find its ranges) and the user's own.
_SPREADSHEET_TAG = "s\x1f"
_USER_TAG = "t\x1f"


class SharedLevel(Protocol):
    """A level under this process's cache shared with other processes (e.g.
    :class:`~sluiceway.sheets.redis_level.RedisSheetsLevel`): fetches go through it."""

    #: Whether this process's level may serve reads now (false while it could miss invalidations).
    local_ok: bool

    async def fetch(self, spreadsheet_id: str, cell_range: str, fetch: Callable[[], Awaitable[Any]], ttl: float) -> Any:
        """The value of ``cell_range`` from the shared level, or ``fetch()`` (then shared)."""
        ...

    def on_flush(self, flush: Callable[[], object]) -> None:
        """Call ``flush`` whenever this process's level must be emptied."""
        ...


class CacheResult(msgspec.Struct, frozen=True):
    """What :meth:`SheetsCache.get_or_fetch` returns.

    ``from_cache`` is false when this call waited for a fetch (its own or a shared one);
    ``stale`` is true when the value outlived its TTL and a refresh is under way.
    """

    value: Any
    from_cache: bool
    stale: bool


class _Flight:
    """One fetch in progress; ``owned`` turns false when an invalidation disowns it."""

    __slots__ = ("cell_range", "owned", "tags", "task")

    def __init__(self, cell_range: A1Range, tags: tuple[str, ...]) -> None:
        self.cell_range = cell_range
        self.tags = tags
        self.owned = True
        self.task: asyncio.Task[Any] | None = None


class SheetsCache:
    """A byte-budgeted, single-flight, stale-while-revalidate cache of spreadsheet ranges.

    Example::

        cache = SheetsCache(CacheConfig(default_ttl=600.0))
        result = await cache.get_or_fetch("1AbC", "'Units'!A2:F200", fetch_units, tags=("units",))
        rows = result.value
        cache.invalidate("1AbC", "Units!B7")   # drops A2:F200, which contains B7

    Values come back as fresh copies decoded from msgpack (tuples come back as lists),
    so a caller mutating its rows never corrupts the cache.

    Warning: a stale value is served for up to ``stale_while_revalidate`` seconds
    after its TTL while one background refresh runs, trading freshness for latency
    and quota; writes made through :class:`~sluiceway.SheetsClient` still invalidate
    at once. Set ``allow_stale_reads=False`` to wait for the refresh instead. Use the
    cache from one event loop (it is not thread-safe).

    ``shared`` adds a level shared by every process (Redis, see
    :mod:`sluiceway.sheets.redis_level`): misses are looked up there before ``fetch`` runs, and
    while it says this process may have missed an invalidation, reads bypass this level.
    """

    def __init__(
        self,
        config: CacheConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        invalidation: InvalidationChannel | None = None,
        shared: SharedLevel | None = None,
    ) -> None:
        self.config = config or CacheConfig()
        self._clock = clock
        self._store = ByteLRU(self.config.max_memory_bytes)
        self._codec = ValueCodec(self.config.compression_threshold_bytes)
        self._stale_ttl = self.config.stale_while_revalidate if self.config.allow_stale_reads else 0.0
        # spreadsheet id -> store key -> fetch in flight
        self._flights: dict[str, dict[str, _Flight]] = {}
        self._hits = self._misses = self._stale_hits = self._fetches = self._fetch_errors = 0
        self._channel = invalidation if invalidation is not None else default_channel()
        # Weakly: a channel lives as long as its process, and must not keep every cache alive.
        apply: weakref.WeakMethod[Callable[[Invalidation], int]] = weakref.WeakMethod(self.apply)
        self._channel.subscribe(lambda invalidation: _apply_if_alive(apply, invalidation))
        self._shared = shared
        if shared is not None:
            clear: weakref.WeakMethod[Callable[[], None]] = weakref.WeakMethod(self.clear)
            shared.on_flush(lambda: _clear_if_alive(clear))

    async def get_or_fetch(
        self,
        spreadsheet_id: str,
        cell_range: str,
        fetch: Fetch,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> CacheResult:
        """The cached value of ``cell_range``, or the value ``fetch()`` returns (then cached).

        ``fetch`` is an async callable, or a sync one (run in a thread). Concurrent calls
        for one range share a single fetch. With nothing cached a fetch error reaches the
        caller unchanged; a failed background refresh leaves the stale value in service.
        ``InvalidRangeError`` if ``cell_range`` is no A1 range.
        """
        key = _key(spreadsheet_id, cell_range)
        local_ok = self._shared is None or self._shared.local_ok
        hit = self._store.lookup(key, now=self._clock()) if local_ok else None
        if hit is not None:
            data, stale = hit
            value = self._codec.decode(data)
            if not stale:
                self._hits += 1
                return CacheResult(value, True, False)
            self._stale_hits += 1
            if key not in self._flights.get(spreadsheet_id, ()):
                self._start_flight(spreadsheet_id, cell_range, key, fetch, ttl, tags, background=True)
            return CacheResult(value, True, True)
        self._misses += 1
        flight = self._flights.get(spreadsheet_id, {}).get(key)
        if flight is None:
            flight = self._start_flight(spreadsheet_id, cell_range, key, fetch, ttl, tags, background=False)
        assert flight.task is not None
        # Shielded: one caller giving up must not cancel the fetch the others wait for.
        value = await asyncio.shield(flight.task)
        return CacheResult(value, False, False)

    def _start_flight(
        self,
        spreadsheet_id: str,
        cell_range: str,
        key: str,
        fetch: Fetch,
        ttl: float | None,
        tags: Iterable[str],
        *,
        background: bool,
    ) -> _Flight:
        ttl = self.config.default_ttl if ttl is None else ttl
        if not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        tag_tuple = tuple(tags)
        for tag in tag_tuple:
            if not isinstance(tag, str):
                raise TypeError(f"tags must be str, got {type(tag).__name__}")
        flight = _Flight(parse_a1(cell_range), tag_tuple)
        store_tags = [_SPREADSHEET_TAG + spreadsheet_id, *(_USER_TAG + t for t in tag_tuple)]
        flight.task = asyncio.ensure_future(self._fly(spreadsheet_id, key, flight, fetch, ttl, store_tags, background))
        flight.task.add_done_callback(_consume_exception)
        self._flights.setdefault(spreadsheet_id, {})[key] = flight
        return flight

    async def _fly(
        self,
        spreadsheet_id: str,
        key: str,
        flight: _Flight,
        fetch: Fetch,
        ttl: float,
        store_tags: list[str],
        background: bool,
    ) -> Any:
        self._fetches += 1
        try:
            if self._shared is None:
                value = await _call(fetch)
            else:
                _, cell_range = key.split(_KEY_SEPARATOR, 1)
                value = await self._shared.fetch(spreadsheet_id, cell_range, lambda: _call(fetch), ttl)
        except Exception as exc:
            self._fetch_errors += 1
            if background:
                _, cell_range = key.split(_KEY_SEPARATOR, 1)
                logger.warning(
                    "refreshing %s of %s failed; serving the stale value: %r", cell_range, spreadsheet_id, exc
                )
            raise
        finally:
            flights = self._flights.get(spreadsheet_id)
            if flights is not None and flights.get(key) is flight:
                del flights[key]
                if not flights:
                    del self._flights[spreadsheet_id]
        if flight.owned and (self._shared is None or self._shared.local_ok):
            self._keep(key, value, ttl, store_tags)
        return value

    def _keep(self, key: str, value: Any, ttl: float, store_tags: list[str]) -> None:
        encoded = self._codec.encode(value)
        try:
            self._store.set(key, encoded, ttl=ttl, stale_ttl=self._stale_ttl, tags=store_tags, now=self._clock())
        except ValueError:
            # Larger than the whole budget: the caller still gets it, the cache cannot keep it.
            logger.warning(
                "%s is %d bytes encoded, more than max_memory_bytes=%d: not cached",
                key.replace(_KEY_SEPARATOR, " "),
                len(encoded),
                self.config.max_memory_bytes,
            )

    def invalidate(self, spreadsheet_id: str, cell_range: str | None = None) -> int:
        """Drop every cached range of ``spreadsheet_id`` overlapping ``cell_range`` (all when ``None``).

        A range that names no cells (a named range, a bare sheet name) drops the whole
        spreadsheet, or the whole sheet: when unsure, drop more. Fetches in flight for
        an overlapping range are disowned (never stored). Returns how many entries went.
        Affects this process only; :meth:`invalidate_everywhere` reaches every worker.
        """
        target = None if cell_range is None else parse_a1(cell_range)
        for key, flight in list(self._flights.get(spreadsheet_id, {}).items()):
            if target is None or target.overlaps(flight.cell_range):
                self._disown(spreadsheet_id, key, flight)
        if target is None:
            return self._store.invalidate_tag(_SPREADSHEET_TAG + spreadsheet_id)
        dropped = 0
        for key in self._store.tagged(_SPREADSHEET_TAG + spreadsheet_id):
            if target.overlaps(parse_a1(key.split(_KEY_SEPARATOR, 1)[1])):
                dropped += self._store.invalidate(key)
        return dropped

    def clear(self) -> None:
        """Drop every entry of this process's level and disown every fetch in flight."""
        for spreadsheet_id, flights in list(self._flights.items()):
            for key, flight in list(flights.items()):
                self._disown(spreadsheet_id, key, flight)
        self._store.clear()

    def invalidate_by_tag(self, tag: str) -> int:
        """Drop every entry fetched with ``tag``, and disown such fetches in flight; returns how many entries."""
        for spreadsheet_id, flights in list(self._flights.items()):
            for key, flight in list(flights.items()):
                if tag in flight.tags:
                    self._disown(spreadsheet_id, key, flight)
        return self._store.invalidate_tag(_USER_TAG + tag)

    def _disown(self, spreadsheet_id: str, key: str, flight: _Flight) -> None:
        flight.owned = False
        flights = self._flights[spreadsheet_id]
        del flights[key]
        if not flights:
            del self._flights[spreadsheet_id]

    def apply(self, invalidation: Invalidation) -> int:
        """Apply an invalidation received from the channel (from this process or another)."""
        if invalidation.tag is not None:
            return self.invalidate_by_tag(invalidation.tag)
        if invalidation.spreadsheet_id is None:
            raise ValueError("an invalidation names a spreadsheet or a tag")
        return self.invalidate(invalidation.spreadsheet_id, invalidation.cell_range)

    async def invalidate_everywhere(
        self, spreadsheet_id: str | None = None, cell_range: str | None = None, *, tag: str | None = None
    ) -> None:
        """Invalidate here and in every process sharing the channel; returns once all have applied it.

        Give ``spreadsheet_id`` (with or without ``cell_range``) or ``tag``, not both.
        """
        if (spreadsheet_id is None) == (tag is None):
            raise ValueError("give either spreadsheet_id (with an optional cell_range) or tag")
        if cell_range is not None:
            parse_a1(cell_range)  # a malformed range fails here, before reaching other processes
        invalidation = Invalidation(spreadsheet_id, cell_range, tag)
        self.apply(invalidation)  # at once here, whatever the channel's latency
        await self._channel.publish(invalidation)

    def stats(self) -> dict[str, float]:
        """Counters since creation and the store's current state.

        ``hits`` / ``stale_hits`` / ``misses``: lookups answered fresh, stale, or not at all;
        ``fetches`` and ``fetch_errors``: calls of ``fetch`` (background refreshes included)
        and how many raised; ``hit_rate``: (hits + stale_hits) / lookups; ``entries`` and
        ``bytes_used``: what the store holds now; ``evictions``: entries dropped for room;
        ``compressed_entries`` and ``compression_ratio``: values stored lz4-compressed and
        their uncompressed ÷ compressed size; ``calls_saved``: lookups that cost no fetch.
        """
        store = self._store.stats()
        served = self._hits + self._stale_hits
        lookups = served + self._misses
        return {
            "hits": self._hits,
            "misses": self._misses,
            "stale_hits": self._stale_hits,
            "fetches": self._fetches,
            "fetch_errors": self._fetch_errors,
            "hit_rate": served / lookups if lookups else 0.0,
            "entries": len(self._store),
            "bytes_used": self._store.bytes_used,
            "evictions": store["evictions"],
            "compressed_entries": self._codec.compressed,
            "compression_ratio": self._codec.compression_ratio,
            "calls_saved": max(0, lookups - self._fetches),
        }


def _key(spreadsheet_id: str, cell_range: str) -> str:
    if not isinstance(spreadsheet_id, str) or not spreadsheet_id or _KEY_SEPARATOR in spreadsheet_id:
        raise ValueError(f"spreadsheet_id must be a non-empty id string, got {spreadsheet_id!r}")
    if not isinstance(cell_range, str):
        raise TypeError(f"cell_range must be a str, got {type(cell_range).__name__}")
    return spreadsheet_id + _KEY_SEPARATOR + cell_range


async def _call(fetch: Fetch) -> Any:
    if inspect.iscoroutinefunction(fetch):
        return await fetch()
    result = await asyncio.to_thread(fetch)
    return await result if inspect.isawaitable(result) else result


def _apply_if_alive(apply: weakref.WeakMethod[Callable[[Invalidation], int]], invalidation: Invalidation) -> int:
    method = apply()
    return 0 if method is None else method(invalidation)


def _clear_if_alive(clear: weakref.WeakMethod[Callable[[], None]]) -> None:
    method = clear()
    if method is not None:
        method()


def _consume_exception(task: asyncio.Task[Any]) -> None:
    # A background refresh has no waiter; its failure is already counted and logged.
    if not task.cancelled():
        task.exception()
