"""Metric history in bounded ring buffers, fine for the recent past and coarse for the old.

Each series has tiers, finest first. Tier 0 keeps every collected point; each coarser
tier keeps one point per ``resolution`` seconds: the mean (with min and max) of the
points that fell in that slot. Every tier is a ring buffer of fixed capacity, so a
series never holds more than the sum of its capacities, whatever the uptime.
A query stitches the tiers: the finest tier for the span it still covers, coarser
ones before that.

Complexity: ``append`` O(tiers); ``points`` O(points stored).
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import msgspec


class Point(msgspec.Struct, array_like=True, frozen=True):
    """A value at time ``t``; a downsampled point also carries its slot's ``low`` and ``high``."""

    t: float
    value: float
    low: float
    high: float


class _Tier:
    __slots__ = ("count", "high", "low", "points", "resolution", "slot", "total")

    def __init__(self, resolution: float, capacity: int) -> None:
        self.resolution = resolution
        self.points: deque[Point] = deque(maxlen=capacity)
        self.slot: int | None = None
        self.total = 0.0
        self.count = 0
        self.low = math.inf
        self.high = -math.inf

    def add(self, t: float, value: float) -> None:
        if self.resolution == 0.0:
            self.points.append(Point(t, value, value, value))
            return
        slot = math.floor(t / self.resolution)
        if slot != self.slot:
            self.flush()
            self.slot = slot
        self.total += value
        self.count += 1
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    def flush(self) -> None:
        if self.slot is not None and self.count:
            self.points.append(Point(self.slot * self.resolution, self.total / self.count, self.low, self.high))
        self.slot, self.total, self.count, self.low, self.high = None, 0.0, 0, math.inf, -math.inf


class Series:
    """One metric's history.

    Example::

        series = Series([(0.0, 720), (60.0, 1440)])   # an hour of 5 s points, a day of minutes
        series.append(now, 0.25)
        series.points(since=now - 3600)
    """

    def __init__(self, tiers: list[tuple[float, int]]) -> None:
        if not tiers or tiers[0][0] != 0.0:
            raise ValueError("the first history tier must keep every point (resolution 0)")
        resolutions = [r for r, _ in tiers]
        if resolutions != sorted(set(resolutions)):
            raise ValueError(f"tier resolutions must strictly increase, got {resolutions}")
        if any(capacity < 1 for _, capacity in tiers):
            raise ValueError("every tier needs a capacity of at least 1")
        self._tiers = [_Tier(resolution, capacity) for resolution, capacity in tiers]
        self._last_t = -math.inf

    @property
    def capacity(self) -> int:
        """The most points this series can ever hold."""
        return sum(tier.points.maxlen or 0 for tier in self._tiers)

    def __len__(self) -> int:
        return sum(len(tier.points) for tier in self._tiers)

    def append(self, t: float, value: float) -> None:
        """Add the value of time ``t`` (times must not go back); ``ValueError`` if not finite."""
        if not math.isfinite(value):
            raise ValueError(f"a history value must be finite, got {value!r}")
        if t < self._last_t:
            raise ValueError(f"history times must not go back: {t!r} after {self._last_t!r}")
        self._last_t = t
        for tier in self._tiers:
            tier.add(t, value)

    def points(self, since: float = -math.inf) -> list[Point]:
        """Points at or after ``since``, oldest first, each from the finest tier still covering its time."""
        result: list[Point] = []
        covered_from = math.inf
        for tier in self._tiers:
            stored = tier.points
            if not stored:
                continue
            # A coarse point stands for its whole slot; take it only when the slot ends
            # before the finer tiers begin, so no span is counted twice.
            times = [p.t for p in stored]
            lo = bisect.bisect_left(times, since)
            hi = bisect.bisect_right(times, covered_from - tier.resolution) if tier.resolution else len(times)
            chunk = list(stored)[lo:hi]
            result[:0] = chunk
            covered_from = min(covered_from, stored[0].t)
        return result


class History:
    """Named series, created on first use, all with the same tiers.

    Example::

        history = History(config.history_tiers())
        history.record("throughput", now, 812.0)
        history.trend("throughput", window=600.0, now=now)
    """

    def __init__(self, tiers: list[tuple[float, int]]) -> None:
        Series(tiers)  # validates the tiers once, up front
        self._tiers = tiers
        self._series: dict[str, Series] = {}

    def record(self, name: str, t: float, value: float) -> None:
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = Series(self._tiers)
        series.append(t, value)

    def names(self) -> list[str]:
        return sorted(self._series)

    def trend(self, name: str, window: float, now: float) -> list[Point]:
        """``name``'s points of the last ``window`` seconds; ``KeyError`` for an unknown metric."""
        if not window > 0:
            raise ValueError(f"window must be > 0 seconds, got {window!r}")
        try:
            series = self._series[name]
        except KeyError:
            raise KeyError(f"no history for metric {name!r}; known: {', '.join(self.names()) or 'none yet'}") from None
        return series.points(since=now - window)
