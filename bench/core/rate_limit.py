"""Rate limiter ``try_acquire`` throughput against pyrate-limiter, aiolimiter and limits.

Every case measures the admitting path: each repetition builds a fresh limiter
whose capacity covers the whole run, then acquires one permit at a time with the
default clock (each library reads its own), so the figure is the cost of a
successful acquire, clock read included.

* WindowLimiter vs pyrate-limiter's exact sliding-window log (``InMemoryBucket``,
  ``SlidingWindowLog``, non-blocking) and vs limits' moving window (memory storage).
* ``RateLimiter.per(second=, minute=, hour=)`` vs pyrate-limiter with the same three rates.
* TokenBucket vs aiolimiter's ``AsyncLimiter.acquire()``, both driven from one
  coroutine inside a running event loop (aiolimiter only works there).
* KeyedLimiter over 10,000 keys vs limits' moving window over the same identifiers.
* KeyedLimiter memory per key held (RSS growth, one acquisition per key, keys
  of 12 characters), a figure without a peer.

Run alone with ``python -m bench.core.rate_limit`` (writes
``bench/results/core_rate_limit.json``) or with the rest of the core via
``python -m bench core``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bench.harness import Comparison, Report, header, interleaved_rates, scaled

#: Acquisitions per repetition for our limiters and for the (slower) peers.
OURS_OPS = scaled(200_000)
PEER_OPS = scaled(20_000)
#: Distinct keys cycled through in the keyed case.
KEYS = 10_000
#: Keys held when measuring memory per key.
MEMORY_KEYS = scaled(200_000)
#: Targets from issue 2 (ours ÷ theirs).
TARGET_PYRATE = 50.0
TARGET_AIOLIMITER = 10.0


def _ours_window(ops: int) -> Callable[[], int]:
    from sluiceway._core import WindowLimiter

    def run() -> int:
        acquire = WindowLimiter(ops, 1.0).try_acquire
        for _ in range(ops):
            acquire()
        return ops

    return run


def _ours_per(ops: int) -> Callable[[], int]:
    from sluiceway._core import RateLimiter

    def run() -> int:
        acquire = RateLimiter.per(second=ops, minute=ops + 1, hour=ops + 2).try_acquire
        for _ in range(ops):
            acquire()
        return ops

    return run


def _pyrate(ops: int, intervals_ms: list[int]) -> Callable[[], int]:
    from pyrate_limiter import InMemoryBucket, Limiter, Rate, SlidingWindowLog

    def run() -> int:
        # pyrate-limiter insists on strictly increasing limits, so ours get the same +1, +2.
        rates = [Rate(ops + i, ms) for i, ms in enumerate(intervals_ms)]
        bucket = InMemoryBucket(rates, algorithm=SlidingWindowLog())
        with Limiter(bucket) as limiter:
            acquire = limiter.try_acquire
            for _ in range(ops):
                acquire("bench", blocking=False)
        return ops

    return run


def _limits_moving(ops: int, keys: int = 1) -> Callable[[], int]:
    from limits import RateLimitItemPerSecond
    from limits.storage import MemoryStorage
    from limits.strategies import MovingWindowRateLimiter

    names = [f"key-{i}" for i in range(keys)]

    def run() -> int:
        limiter = MovingWindowRateLimiter(MemoryStorage())
        item = RateLimitItemPerSecond(ops)
        hit = limiter.hit
        for i in range(ops):
            hit(item, names[i % keys])
        return ops

    return run


def _ours_keyed(ops: int, keys: int) -> Callable[[], int]:
    from sluiceway._core import KeyedLimiter

    names = [f"key-{i}" for i in range(keys)]

    def run() -> int:
        acquire = KeyedLimiter(ops, 1.0, max_keys=keys).try_acquire
        for i in range(ops):
            acquire(names[i % keys])
        return ops

    return run


def _in_loop(body: Callable[[], object]) -> Callable[[], int]:
    """``body`` (a coroutine function returning its op count) run to completion on a fresh loop."""

    def run() -> int:
        return asyncio.run(body())  # type: ignore[arg-type]

    return run


def _ours_bucket_async(ops: int) -> Callable[[], int]:
    from sluiceway._core import TokenBucket

    async def body() -> int:
        acquire = TokenBucket(float(ops), float(ops)).try_acquire
        for _ in range(ops):
            if not acquire():
                await asyncio.sleep(0)
        return ops

    return _in_loop(body)


def _aiolimiter(ops: int) -> Callable[[], int]:
    from aiolimiter import AsyncLimiter

    async def body() -> int:
        limiter = AsyncLimiter(ops, 1.0)
        acquire = limiter.acquire
        for _ in range(ops):
            await acquire()
        return ops

    return _in_loop(body)


def _row(
    report: Report, case: str, peer: str, ours: Callable[[], int], theirs: Callable[[], int], target: float | None
) -> None:
    rates = interleaved_rates({"ours": ours, "theirs": theirs})
    report.add(
        Comparison(
            case=case,
            peer=peer,
            ours=rates["ours"][0],
            theirs=rates["theirs"][0],
            unit="acquires/s",
            target=target,
            samples_ours=rates["ours"][1],
            samples_theirs=rates["theirs"][1],
        )
    )


def run(report: Report) -> None:
    header("rate limiters: try_acquire while capacity is available")
    _row(
        report,
        "WindowLimiter try_acquire",
        "pyrate-limiter (log)",
        _ours_window(OURS_OPS),
        _pyrate(PEER_OPS, [1000]),
        TARGET_PYRATE,
    )
    _row(
        report,
        "RateLimiter.per(s, min, h)",
        "pyrate-limiter (log)",
        _ours_per(OURS_OPS),
        _pyrate(PEER_OPS, [1000, 60_000, 3_600_000]),
        TARGET_PYRATE,
    )
    _row(
        report,
        "WindowLimiter try_acquire",
        "limits moving window",
        _ours_window(OURS_OPS),
        _limits_moving(PEER_OPS),
        None,
    )
    _row(
        report,
        "TokenBucket try_acquire (in loop)",
        "aiolimiter acquire",
        _ours_bucket_async(OURS_OPS),
        _aiolimiter(PEER_OPS),
        TARGET_AIOLIMITER,
    )
    _row(
        report,
        f"KeyedLimiter, {KEYS:,} keys",
        "limits moving window",
        _ours_keyed(OURS_OPS, KEYS),
        _limits_moving(PEER_OPS, KEYS),
        None,
    )
    report.figure(f"KeyedLimiter bytes per key ({MEMORY_KEYS:,} keys)", _bytes_per_key_fresh(MEMORY_KEYS))


def _bytes_per_key(keys: int) -> float:
    """RSS growth per key of a KeyedLimiter holding ``keys`` keys with one acquisition each."""
    import gc

    import psutil  # type: ignore[import-untyped]

    from sluiceway._core import KeyedLimiter

    names = [f"+1555{i:08d}" for i in range(keys)]
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    limiter = KeyedLimiter(1, 60.0, max_keys=keys)
    for name in names:
        limiter.try_acquire(name, now=0.0)
    grown: int = process.memory_info().rss - before
    assert len(limiter) == keys
    return grown / keys


def _bytes_per_key_fresh(keys: int) -> float:
    """``_bytes_per_key`` in a fresh interpreter, so memory freed by earlier cases cannot hide growth."""
    import subprocess
    import sys
    from pathlib import Path

    code = f"from bench.core.rate_limit import _bytes_per_key; print(_bytes_per_key({keys}))"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, check=True, capture_output=True, text=True)
    return float(out.stdout)


def main() -> None:
    report = Report("core_rate_limit")
    run(report)
    report.write()


if __name__ == "__main__":
    main()
