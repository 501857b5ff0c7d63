"""ByteLRU against cachetools, cachebox and moka-py: ``python -m bench.core.lru_cache``.

Measures, side by side in one process with the runs interleaved, the operations per
second of:

- ``get`` hits with 1,000 and with 100,000 entries held (random held keys);
- ``get`` misses;
- ``set`` into a full cache, so that every call evicts the least recently used entry
  (ByteLRU's budget is sized to hold exactly the same entry count as the peers);
- a Zipf(1.1) read-through mix over 100,000 keys with 10,000 held: ``get``, and ``set``
  on a miss;

and the memory each library needs per entry beyond the key and value objects
themselves: RSS growth over 1,000,000 entries, in a fresh subprocess per library, with
the keys and values created before the baseline is read.

Peers are configured as a user would for this job: ``cachetools.LRUCache(getsizeof=len)``
(a byte budget on values), ``cachebox.LRUCache`` and ``moka_py.Moka(policy="lru")``
bounded by entry count (their fastest mode; a byte budget would call a Python function
per insert). Also part of ``python -m bench core``.

Caveats: the machine is shared, so figures move between runs; ratios are the stable
part. moka-py applies evictions in batches, so its set rate is not strictly per call.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench.harness import REPEAT, Comparison, Report, header, interleaved_rates, scaled
from sluiceway._core import ByteLRU

#: Bytes in every benchmark value (a small Sheets range payload).
VALUE_SIZE = 100
#: Entries inserted by the memory measurement.
MEMORY_ENTRIES = 1_000_000
#: The issue's bar: ours / cachebox for get-hit and set-with-eviction, and memory per entry.
TARGET = 1.0
#: Zipf exponent of the read-through mix.
ZIPF_S = 1.1

Cache = Any


def _key(i: int) -> str:
    return f"sheet:{i:09d}"


def _value(i: int) -> bytes:
    return i.to_bytes(8, "little") * (VALUE_SIZE // 8) + b"\0" * (VALUE_SIZE % 8)


def _byte_lru(entries: int) -> ByteLRU:
    """A ByteLRU whose budget holds exactly ``entries`` benchmark entries."""
    per_entry = len(_key(0)) + VALUE_SIZE + ByteLRU.ENTRY_OVERHEAD
    return ByteLRU(per_entry * entries)


def _factories(entries: int) -> dict[str, Callable[[], Cache]]:
    """Empty caches holding at most ``entries`` benchmark entries, by library name."""
    import cachebox
    import cachetools
    import moka_py

    return {
        "sluiceway": lambda: _byte_lru(entries),
        "cachebox": lambda: cachebox.LRUCache(entries),
        "cachetools": lambda: cachetools.LRUCache(entries * VALUE_SIZE, getsizeof=len),
        "moka-py": lambda: moka_py.Moka(entries, policy="lru"),
    }


def _setter(name: str, cache: Cache) -> Callable[[str, bytes], object]:
    put: Callable[[str, bytes], object] = cache.set if name in ("sluiceway", "moka-py") else cache.__setitem__
    return put


def _filled(name: str, make: Callable[[], Cache], keys: list[str], values: list[bytes]) -> Cache:
    cache = make()
    put = _setter(name, cache)
    for k, v in zip(keys, values, strict=False):
        put(k, v)
    return cache


def _get_run(cache: Cache, probe: list[str]) -> Callable[[], int]:
    def run() -> int:
        get = cache.get
        for k in probe:
            get(k)
        return len(probe)

    return run


def _set_run(name: str, cache: Cache, keys: list[str], values: list[bytes]) -> Callable[[], int]:
    def run() -> int:
        put = _setter(name, cache)
        for k, v in zip(keys, values, strict=False):
            put(k, v)
        return len(keys)

    return run


def _zipf_run(name: str, cache: Cache, probe: list[str], values: dict[str, bytes]) -> Callable[[], int]:
    def run() -> int:
        get, put = cache.get, _setter(name, cache)
        for k in probe:
            if get(k) is None:
                put(k, values[k])
        return len(probe)

    return run


def _compare(report: Report, case: str, runs: dict[str, Callable[[], int]], targets: dict[str, float]) -> None:
    rates = interleaved_rates(runs)
    ours, ours_samples = rates["sluiceway"]
    for peer, (theirs, samples) in rates.items():
        if peer == "sluiceway":
            continue
        report.add(
            Comparison(
                case,
                peer,
                ours,
                theirs,
                "ops/s",
                target=targets.get(peer),
                samples_ours=ours_samples,
                samples_theirs=samples,
            )
        )


def _get_hit(report: Report, held: int) -> None:
    keys = [_key(i) for i in range(held)]
    values = [_value(i) for i in range(held)]
    rng = random.Random(held)
    probe = [keys[rng.randrange(held)] for _ in range(scaled(300_000))]
    runs = {name: _get_run(_filled(name, make, keys, values), probe) for name, make in _factories(held).items()}
    _compare(report, f"get hit, {held:,} held", runs, {"cachebox": TARGET})


def _get_miss(report: Report) -> None:
    held = 1_000
    keys = [_key(i) for i in range(held)]
    values = [_value(i) for i in range(held)]
    probe = [_key(held + i) for i in range(scaled(300_000))]
    runs = {name: _get_run(_filled(name, make, keys, values), probe) for name, make in _factories(held).items()}
    _compare(report, "get miss", runs, {})


def _set_evicting(report: Report) -> None:
    held = 1_000
    n = scaled(200_000)
    keys = [_key(i) for i in range(held + n)]
    values = [_value(i) for i in range(held + n)]
    runs = {
        name: _set_run(name, _filled(name, make, keys[:held], values[:held]), keys[held:], values[held:])
        for name, make in _factories(held).items()
    }
    _compare(report, "set with eviction, 1,000 held", runs, {"cachebox": TARGET})


def _zipf(report: Report) -> None:
    universe, held = 100_000, 10_000
    keys = [_key(i) for i in range(universe)]
    values = {k: _value(i) for i, k in enumerate(keys)}
    weights = [1 / (rank + 1) ** ZIPF_S for rank in range(universe)]
    rng = random.Random(7)
    probe = rng.choices(keys, weights, k=scaled(300_000))
    runs = {name: _zipf_run(name, make(), probe, values) for name, make in _factories(held).items()}
    _compare(report, f"zipf read-through, {held:,} held", runs, {})


#: Run in a fresh interpreter: prints the RSS growth per entry of filling one cache.
_MEMORY_PROBE = """
import gc, sys
n, lib = int(sys.argv[1]), sys.argv[2]
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * __import__("os").sysconf("SC_PAGE_SIZE")
from bench.core.lru_cache import _factories, _key, _setter, VALUE_SIZE
make = _factories(n)[lib]
keys = [_key(i) for i in range(n)]
values = [i.to_bytes(8, "little") * (VALUE_SIZE // 8) for i in range(n)]
cache = make()
put = _setter(lib, cache)
gc.collect()
before = rss()
for k, v in zip(keys, values):
    put(k, v)
if lib == "moka-py":
    cache.run_pending_tasks()
gc.collect()
print((rss() - before) / n)
"""


def _memory_per_entry(lib: str, entries: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(entries), lib],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def _memory(report: Report) -> None:
    entries = scaled(MEMORY_ENTRIES)
    libs = ["sluiceway", "cachebox", "cachetools", "moka-py"]
    samples: dict[str, list[float]] = {lib: [] for lib in libs}
    for _ in range(REPEAT):
        for lib in libs:
            samples[lib].append(_memory_per_entry(lib, entries))
    ours = samples["sluiceway"]
    for lib in libs[1:]:
        report.add(
            Comparison(
                f"memory per entry, {entries:,} held",
                lib,
                statistics.median(ours),
                statistics.median(samples[lib]),
                "bytes/entry",
                higher_is_better=False,
                target=TARGET if lib == "cachebox" else None,
                samples_ours=ours,
                samples_theirs=samples[lib],
            )
        )


def run(report: Report) -> None:
    """Add the ByteLRU rows to ``report``."""
    header("ByteLRU vs cachebox, cachetools, moka-py")
    _get_hit(report, 1_000)
    _get_hit(report, 100_000)
    _get_miss(report)
    _set_evicting(report)
    _zipf(report)
    _memory(report)


def main() -> None:
    report = Report("lru_cache")
    run(report)
    report.write()


if __name__ == "__main__":
    main()
