"""PriorityQueue push+pop and pop_many vs ``heapq`` and ``queue.PriorityQueue``.

Two push+pop shapes, both with ``ITEMS`` distinct objects at random priorities in
``range(LEVELS)``, as the engine's supervisor moves every message: *burst* pushes them
all then pops them all back (a deep queue), *steady* keeps ``STEADY_DEPTH`` items
queued and pushes one, pops one (a shallow queue, where heaps are cheapest). The
peers get the usual hand-written equivalent: ``heapq`` over ``(priority, seq, item)``
tuples (the sequence number keeps FIFO order within a priority and never compares
items) and ``queue.PriorityQueue`` with the same tuples. Rates are push+pop pairs
per second; ``pop_many`` drains in batches of ``BATCH`` against a heapq loop popping
the same batches. Every loop binds its methods to locals, so no side pays for
attribute lookups the other avoids.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import random
from collections.abc import Callable

from bench.harness import Comparison, Report, header, interleaved_rates, scaled
from sluiceway._core import PriorityQueue

#: Items pushed and popped per timed round.
ITEMS = scaled(200_000)
#: Priority levels used by every side.
LEVELS = 3
#: Items kept waiting in the steady-state case.
STEADY_DEPTH = 10
#: Items taken per ``pop_many`` call (and per batch of the heapq loop).
BATCH = 100
#: Targets from issue 2: push+pop ours ÷ theirs.
TARGET_VS_HEAPQ = 1.5
TARGET_VS_QUEUE = 10.0


def _workload() -> list[tuple[object, int]]:
    rng = random.Random(2)
    return [(object(), rng.randrange(LEVELS)) for _ in range(ITEMS)]


def _ours_push_pop(work: list[tuple[object, int]], steady: bool) -> Callable[[], int]:
    q = PriorityQueue(levels=LEVELS)
    push, pop = q.push, q.pop
    if steady:
        for item, priority in work[:STEADY_DEPTH]:
            push(item, priority)

        def run() -> int:
            for item, priority in work:
                push(item, priority)
                pop()
            return len(work)

        return run

    def run_burst() -> int:
        for item, priority in work:
            push(item, priority)
        for _ in range(len(work)):
            pop()
        return len(work)

    return run_burst


def _queue_push_pop(work: list[tuple[object, int]], steady: bool) -> Callable[[], int]:
    q: queue.PriorityQueue[tuple[int, int, object]] = queue.PriorityQueue()
    push, pop, seq = q.put_nowait, q.get_nowait, itertools.count()
    if steady:
        for item, priority in work[:STEADY_DEPTH]:
            push((priority, next(seq), item))

        def run() -> int:
            for item, priority in work:
                push((priority, next(seq), item))
                pop()
            return len(work)

        return run

    def run_burst() -> int:
        for item, priority in work:
            push((priority, next(seq), item))
        for _ in range(len(work)):
            pop()
        return len(work)

    return run_burst


def _heapq_push_pop(work: list[tuple[object, int]], steady: bool) -> Callable[[], int]:
    heap: list[tuple[int, int, object]] = []
    push, pop, seq = heapq.heappush, heapq.heappop, itertools.count()
    if steady:
        for item, priority in work[:STEADY_DEPTH]:
            push(heap, (priority, next(seq), item))

        def run() -> int:
            for item, priority in work:
                push(heap, (priority, next(seq), item))
                pop(heap)
            return len(work)

        return run

    def run_burst() -> int:
        for item, priority in work:
            push(heap, (priority, next(seq), item))
        for _ in range(len(work)):
            pop(heap)
        return len(work)

    return run_burst


def _ours_pop_many(work: list[tuple[object, int]]) -> Callable[[], int]:
    q = PriorityQueue(levels=LEVELS)
    levels: list[list[object]] = [[item for item, p in work if p == level] for level in range(LEVELS)]

    def run() -> int:
        for level, items in enumerate(levels):
            q.push_many(items, level)
        pop_many = q.pop_many
        while pop_many(BATCH):
            pass
        return len(work)

    return run


def _heapq_pop_many(work: list[tuple[object, int]]) -> Callable[[], int]:
    def run() -> int:
        seq = itertools.count()
        heap = [(priority, next(seq), item) for item, priority in work]
        heapq.heapify(heap)
        pop, batch = heapq.heappop, range(BATCH)
        while heap:
            [pop(heap) for _ in batch if heap]
        return len(work)

    return run


def run(report: Report) -> None:
    """Measure and add the PriorityQueue rows to ``report``."""
    header(f"PriorityQueue: {ITEMS:,} items over {LEVELS} levels")
    work = _workload()
    for steady, case in ((True, f"push+pop steady (depth {STEADY_DEPTH})"), (False, f"push+pop burst ({ITEMS:,})")):
        rates = interleaved_rates(
            {
                "ours": _ours_push_pop(work, steady),
                "heapq": _heapq_push_pop(work, steady),
                "queue": _queue_push_pop(work, steady),
            }
        )
        ours, ours_samples = rates["ours"]
        for peer, key, target in (
            ("heapq (p, seq, item)", "heapq", TARGET_VS_HEAPQ),
            ("queue.PriorityQueue", "queue", TARGET_VS_QUEUE),
        ):
            theirs, theirs_samples = rates[key]
            report.add(
                Comparison(
                    case,
                    peer,
                    ours,
                    theirs,
                    "pairs/s",
                    target=target,
                    samples_ours=ours_samples,
                    samples_theirs=theirs_samples,
                )
            )
    batch = interleaved_rates({"ours": _ours_pop_many(work), "heapq": _heapq_pop_many(work)})
    report.add(
        Comparison(
            f"push_many + pop_many({BATCH})",
            "heapify + heappop loop",
            batch["ours"][0],
            batch["heapq"][0],
            "items/s",
            samples_ours=batch["ours"][1],
            samples_theirs=batch["heapq"][1],
        )
    )
