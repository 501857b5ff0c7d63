"""The Sheets cache against the alternatives people glue together: ``python -m bench sheets``.

Three measurements, each ours beside the peers in the same run:

1. **Quota replay** against the :class:`~sluiceway.testing.SheetsEmulator` (real HTTP,
   5 ms of injected latency): 1,000 simulated conversations, 50 at a time, each making
   a few requests of a 200-range sheet chosen with Zipf(1.1) popularity, 5% of them
   writes to one cell. Counted: API requests reaching the emulator with no cache, with a
   naive ``cachetools.TTLCache`` (exact-key invalidation on write, no single-flight, no
   coalescing) and with :class:`~sluiceway.SheetsClient`; and *stale reads*: reads that
   started after a write to one of their cells had returned, yet showed an older value.
2. **Hit path**: ``SheetsCache.get_or_fetch`` on a cached range against ``aiocache``'s
   ``SimpleMemoryCache.get`` and ``cashews``' in-memory ``get`` (ops/s, one event loop).
3. **Memory accounting**: ``bytes_used`` after caching 100k ranges against the growth of
   the process's RSS, measured in a fresh interpreter per repetition; the same entries
   put straight into the bare ``ByteLRU`` show which layer the unaccounted bytes belong to.

Caveats: the emulator answers in microseconds plus the injected latency, far faster than
Google (100-300 ms), which *understates* what single-flight and coalescing save; the
hit-path peers keep Python objects by reference while SheetsCache decodes a fresh copy
on every hit (so callers can never corrupt the cache).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import json
import random
import statistics
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.harness import REPEAT, Comparison, Report, header, interleaved_rates, scaled

#: Quota replay shape.
CONVERSATIONS = 1000
REQUESTS_PER_CONVERSATION = 4
CONCURRENT_CONVERSATIONS = 50
WRITE_SHARE = 0.05
ZIPF_S = 1.1
UNIT_ROWS = 160  # 160 one-unit ranges + 40 ten-row listing pages = 200 ranges
PAGE_ROWS = 10
EMULATOR_LATENCY = 0.005
#: Hit-path and memory workloads.
HIT_OPS = 20_000
MEMORY_ENTRIES = 100_000

SID = "bench-book"
ROW = ["4B", "free", "1200", "2 bed", "Ada Lovelace", "2026-01-01"]


def _ranges() -> list[tuple[str, range]]:
    """The 200 ranges read (A1 text, rows covered): unit rows first, then listing pages."""
    units = [(f"Units!A{r}:F{r}", range(r, r + 1)) for r in range(2, 2 + UNIT_ROWS)]
    pages = [
        (f"Units!A{r}:F{r + PAGE_ROWS - 1}", range(r, r + PAGE_ROWS)) for r in range(2, 2 + UNIT_ROWS, UNIT_ROWS // 40)
    ]
    return units + pages


def _zipf_picker(n: int, rng: random.Random) -> Callable[[], int]:
    weights = list(itertools.accumulate(1 / (k**ZIPF_S) for k in range(1, n + 1)))
    order = list(range(n))
    rng.shuffle(order)  # popularity independent of position in the sheet
    return lambda: order[bisect.bisect(weights, rng.random() * weights[-1])]


class _RawSheets:
    """google-api-python-client in a thread pool with one Http per thread: the no-cache baseline."""

    def __init__(self, endpoint: str) -> None:
        import httplib2
        from googleapiclient import discovery

        service = discovery.build(
            "sheets", "v4", http=httplib2.Http(), static_discovery=True, client_options={"api_endpoint": endpoint}
        )
        self._values = service.spreadsheets().values()
        self._local = threading.local()
        self._https: list[Any] = []
        self._pool = ThreadPoolExecutor(8)

    def _http(self) -> Any:
        import httplib2

        if not hasattr(self._local, "http"):
            self._local.http = httplib2.Http()
            self._https.append(self._local.http)
        return self._local.http

    async def read(self, rng: str) -> list[list[Any]]:
        answer = await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: self._values.get(spreadsheetId=SID, range=rng).execute(http=self._http())
        )
        rows: list[list[Any]] = answer.get("values", [])
        return rows

    async def write(self, rng: str, values: list[list[Any]]) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self._pool,
            lambda: self._values.update(
                spreadsheetId=SID, range=rng, valueInputOption="RAW", body={"values": values}
            ).execute(http=self._http()),
        )

    def close(self) -> None:
        self._pool.shutdown()
        for http in self._https:
            http.close()


class _NaiveTTL(_RawSheets):
    """What a hand-rolled cache looks like: a TTLCache keyed by range, the written key dropped on write."""

    def __init__(self, endpoint: str) -> None:
        import cachetools

        super().__init__(endpoint)
        self._cache: Any = cachetools.TTLCache(maxsize=10_000, ttl=3600)

    async def read(self, rng: str) -> list[list[Any]]:
        if rng in self._cache:
            rows: list[list[Any]] = self._cache[rng]
            return rows
        rows = await super().read(rng)
        self._cache[rng] = rows
        return rows

    async def write(self, rng: str, values: list[list[Any]]) -> None:
        await super().write(rng, values)
        self._cache.pop(rng, None)


class _Sluiceway:
    def __init__(self, endpoint: str) -> None:
        from sluiceway import SheetsCache, SheetsClient, SheetsClientConfig
        from sluiceway.sheets import LocalInvalidation

        config = SheetsClientConfig(read_requests_per_minute=10**6, write_requests_per_minute=10**6)
        self._client = SheetsClient(SheetsCache(invalidation=LocalInvalidation()), api_endpoint=endpoint, config=config)

    async def read(self, rng: str) -> list[list[Any]]:
        return await self._client.get_values(SID, rng)

    async def write(self, rng: str, values: list[list[Any]]) -> None:
        await self._client.update_values(SID, rng, values)

    def close(self) -> None:
        self._client.close()


async def _replay(make: Callable[[str], Any], seed: int) -> tuple[int, int, int]:
    """(API requests, reads, stale reads) of one replay."""
    from sluiceway.testing import SheetsEmulator

    rng = random.Random(seed)
    ranges = _ranges()
    pick = _zipf_picker(len(ranges), rng)
    async with SheetsEmulator(reads_per_minute=10**9, writes_per_minute=10**9, latency=EMULATOR_LATENCY) as emulator:
        emulator.add_spreadsheet(
            SID,
            {"Units": [["Unit", "Status", "Rent", "Size", "Tenant", "Since"]] + [list(ROW) for _ in range(UNIT_ROWS)]},
        )
        sheets = make(emulator.url)
        committed: dict[int, int] = {}  # row -> highest write number that had returned
        write_numbers = itertools.count()
        row_locks: dict[int, asyncio.Lock] = {}
        stale = reads = 0
        plan = [
            [(pick(), rng.random() < WRITE_SHARE) for _ in range(scaled(REQUESTS_PER_CONVERSATION))]
            for _ in range(scaled(CONVERSATIONS))
        ]
        gate = asyncio.Semaphore(CONCURRENT_CONVERSATIONS)

        async def conversation(steps: list[tuple[int, bool]]) -> None:
            nonlocal stale, reads
            async with gate:
                for index, is_write in steps:
                    text, rows = ranges[index]
                    if is_write:
                        row = rows.start
                        # One write per row at a time, numbered inside the lock, so numbers
                        # rise in the order the emulator applies them (last writer wins).
                        async with row_locks.setdefault(row, asyncio.Lock()):
                            number = next(write_numbers)
                            await sheets.write(f"Units!B{row}", [[f"w{number}"]])
                            committed[row] = number
                        continue
                    floor = {row: committed.get(row, -1) for row in rows}
                    values = await sheets.read(text)
                    reads += 1
                    for row, cells in zip(rows, values, strict=False):
                        status = cells[1]
                        seen = int(status[1:]) if status.startswith("w") else -1
                        stale += seen < floor[row]

        await asyncio.gather(*(conversation(steps) for steps in plan))
        sheets.close()
        return emulator.total_requests, reads, stale


def quota_replay(report: Report) -> None:
    header("quota replay: API requests for 1,000 conversations (Zipf 1.1, 5% writes)")
    results: dict[str, list[tuple[int, int, int]]] = {"no cache": [], "cachetools.TTLCache": [], "SheetsCache": []}
    makers = {"no cache": _RawSheets, "cachetools.TTLCache": _NaiveTTL, "SheetsCache": _Sluiceway}
    for rep in range(REPEAT):
        for name, make in makers.items():
            results[name].append(asyncio.run(_replay(make, seed=rep)))
    med = {name: statistics.median(r[0] for r in runs) for name, runs in results.items()}
    samples = {name: [float(r[0]) for r in runs] for name, runs in results.items()}
    # Targets: >= 90% fewer requests than no cache (10x), and fewer than the naive cache.
    for peer, target in (("no cache", 10.0), ("cachetools.TTLCache", 1.0)):
        report.add(
            Comparison(
                "API requests, quota replay",
                peer,
                med["SheetsCache"],
                med[peer],
                "requests",
                higher_is_better=False,
                target=target,
                samples_ours=samples["SheetsCache"],
                samples_theirs=samples[peer],
            )
        )
    report.figure("requests saved vs no cache (%)", 100 * (1 - med["SheetsCache"] / med["no cache"]))
    report.figure(
        "requests saved vs cachetools.TTLCache (%)", 100 * (1 - med["SheetsCache"] / med["cachetools.TTLCache"])
    )
    for name, runs in results.items():
        report.figure(f"stale reads after writes, {name} (max over runs)", max(r[2] for r in runs))
    report.figure("reads per replay", statistics.median(r[1] for r in results["SheetsCache"]))


def hit_path(report: Report) -> None:
    header("hit path: reading one cached range (ops/s)")
    from aiocache import SimpleMemoryCache
    from cashews import Cache

    from sluiceway import SheetsCache
    from sluiceway.sheets import LocalInvalidation

    loop = asyncio.new_event_loop()
    value = [list(ROW)]
    ours = SheetsCache(invalidation=LocalInvalidation())
    aio = SimpleMemoryCache()
    cashews = Cache()
    cashews.setup("mem://")
    key, rng = f"{SID}:Units!A7:F7", "Units!A7:F7"

    async def fetch() -> list[list[str]]:
        return value

    async def prime() -> None:
        await ours.get_or_fetch(SID, rng, fetch)
        await aio.set(key, value, ttl=3600)
        await cashews.set(key, value, expire=3600)

    loop.run_until_complete(prime())
    n = scaled(HIT_OPS)

    def timed(get: Callable[[], Awaitable[Any]]) -> Callable[[], int]:
        """n awaited calls of ``get`` on the shared loop (the same call overhead for every library)."""

        async def many() -> int:
            for _ in range(n):
                await get()
            return n

        return lambda: loop.run_until_complete(many())

    rates = interleaved_rates(
        {
            "ours": timed(functools.partial(ours.get_or_fetch, SID, rng, fetch)),
            "aiocache": timed(functools.partial(aio.get, key)),
            "cashews": timed(functools.partial(cashews.get, key)),
        }
    )
    assert ours.stats()["hits"] >= n  # every call above was a hit
    for peer, target in (("aiocache", 3.0), ("cashews", 1.0)):
        report.add(
            Comparison(
                "get_or_fetch hit",
                f"{peer} mem get",
                rates["ours"][0],
                rates[peer][0],
                "ops/s",
                target=target,
                samples_ours=rates["ours"][1],
                samples_theirs=rates[peer][1],
            )
        )
    loop.run_until_complete(cashews.close())
    loop.close()


def memory_probe(entries: int, layer: str) -> None:
    """Run in a fresh interpreter: cache ``entries`` ranges, print bytes_used and RSS growth as JSON.

    ``layer`` is ``"SheetsCache"`` (the whole cache) or ``"ByteLRU"`` (the same keys, encoded
    values and spreadsheet tag stored in the bare store), to tell the two layers' shares apart.
    """
    import gc

    import msgspec
    import psutil

    from sluiceway import SheetsCache
    from sluiceway.core import ByteLRU
    from sluiceway.sheets import LocalInvalidation

    cache = SheetsCache(invalidation=LocalInvalidation())
    store = ByteLRU(cache.config.max_memory_bytes)
    encode = msgspec.msgpack.Encoder().encode
    rows = [[f"{i}", "free", "1200", "2 bed", "Ada Lovelace", "2026-01-01"] for i in range(3)]

    async def fetch() -> list[list[str]]:
        return rows

    async def fill() -> None:
        await cache.get_or_fetch(SID, "Units!A1:F1", fetch)  # warm every code path first
        gc.collect()
        process = psutil.Process()
        before = process.memory_info().rss
        for i in range(entries):
            if layer == "SheetsCache":
                await cache.get_or_fetch(SID, f"Units!A{i + 2}:F{i + 4}", fetch)
            else:
                store.set(f"{SID}\x1fUnits!A{i + 2}:F{i + 4}", b"\x00" + encode(rows), ttl=3600.0, tags=[f"s\x1f{SID}"])
        gc.collect()
        growth = process.memory_info().rss - before
        used = cache.stats()["bytes_used"] if layer == "SheetsCache" else store.bytes_used
        print(json.dumps({"bytes_used": used, "rss_growth": growth}))

    asyncio.run(fill())


def memory_accounting(report: Report) -> None:
    header("memory: bytes_used vs RSS growth for 100k cached ranges")
    for layer in ("SheetsCache", "ByteLRU"):
        used, grown = [], []
        for _ in range(REPEAT):
            probe = f"from bench.bench_sheets import memory_probe; memory_probe({scaled(MEMORY_ENTRIES)}, {layer!r})"
            out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
            doc = json.loads(out.strip().splitlines()[-1])
            used.append(doc["bytes_used"])
            grown.append(doc["rss_growth"])
        bytes_used, rss = statistics.median(used), statistics.median(grown)
        report.figure(f"{layer}: bytes_used (bytes)", bytes_used)
        report.figure(f"{layer}: RSS growth (bytes)", rss)
        report.figure(f"{layer}: bytes_used / RSS growth (target 0.8-1.2)", bytes_used / rss)
        report.figure(f"{layer}: unaccounted bytes per entry", (rss - bytes_used) / scaled(MEMORY_ENTRIES))


def main() -> None:
    report = Report("sheets")
    quota_replay(report)
    hit_path(report)
    memory_accounting(report)
    report.write()


if __name__ == "__main__":
    main()
