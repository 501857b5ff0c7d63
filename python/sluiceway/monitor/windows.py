"""Sliding windows over per-collection slots: latency histograms and message counts.

Each collection closes a slot (the latencies and outcomes recorded since the last
one). A window keeps a running histogram of the slots within its span: a new slot is
merged in and the expired ones subtracted, so a collection costs O(buckets) whatever
the window's length.
"""

from __future__ import annotations

import math
from collections import deque

from sluiceway.histogram import LatencyHistogram
from sluiceway.monitor.report import LatencyWindow


class Slot:
    """What happened between two collections, ending at ``t``."""

    __slots__ = ("failed", "histogram", "ok", "slowest_id", "t")

    def __init__(self, t: float, histogram: LatencyHistogram, ok: int, failed: int, slowest_id: str | None) -> None:
        self.t, self.histogram, self.ok, self.failed, self.slowest_id = t, histogram, ok, failed, slowest_id


class SlidingWindow:
    """The slots of the last ``span`` seconds, with their merged histogram and counts."""

    def __init__(self, span: float) -> None:
        self.span = span
        self.slots: deque[Slot] = deque()
        self.histogram = LatencyHistogram()
        self.ok = 0
        self.failed = 0
        self.started = math.nan

    def add(self, slot: Slot, slot_start: float) -> None:
        if not self.slots:
            self.started = slot_start
        self.slots.append(slot)
        self.histogram.merge(slot.histogram)
        self.ok += slot.ok
        self.failed += slot.failed
        while self.slots and self.slots[0].t <= slot.t - self.span:
            old = self.slots.popleft()
            self.histogram.subtract(old.histogram)
            self.ok -= old.ok
            self.failed -= old.failed
            self.started = old.t
        # min and max cannot be subtracted: recompute them from the slots left.
        self.histogram.min = min((s.histogram.min for s in self.slots), default=math.inf)
        self.histogram.max = max((s.histogram.max for s in self.slots), default=0.0)

    def elapsed(self, now: float) -> float:
        """Seconds the window actually covers (less than ``span`` just after start)."""
        return 0.0 if math.isnan(self.started) else min(self.span, now - self.started)

    def slowest(self) -> str | None:
        """Id of the slowest message recorded in the window, if ids were given."""
        best = max(self.slots, key=lambda s: s.histogram.max if s.histogram.count else -1.0, default=None)
        return best.slowest_id if best is not None else None


def latency_window(window: SlidingWindow) -> LatencyWindow:
    """The report's summary of ``window``'s latencies (zeros when it holds none)."""
    h = window.histogram
    if not h.count:
        return LatencyWindow(window=window.span, count=0, min=0.0, avg=0.0, max=0.0, p50=0.0, p95=0.0, p99=0.0)
    return LatencyWindow(
        window=window.span,
        count=h.count,
        min=h.min,
        avg=h.mean,
        max=h.max,
        p50=h.quantile(0.5),
        p95=h.quantile(0.95),
        p99=h.quantile(0.99),
    )
