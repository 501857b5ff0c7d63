"""The Rust core against the libraries users would otherwise pick: ``python -m bench core``.

Measures PriorityQueue vs heapq and queue.PriorityQueue, ByteLRU vs cachetools,
cachebox and moka-py, and the rate limiters vs pyrate-limiter, limits and
aiolimiter; writes ``bench/results/core.json``.
"""

from __future__ import annotations

from bench.core import lru_cache, priority_queue, rate_limit
from bench.harness import Report


def main() -> None:
    report = Report("core")
    priority_queue.run(report)
    lru_cache.run(report)
    rate_limit.run(report)
    report.write()


if __name__ == "__main__":
    main()
