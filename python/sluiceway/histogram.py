"""A mergeable, log-bucketed histogram for latencies with a bounded relative error.

Values are counted in buckets whose bounds grow geometrically by
``gamma = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)``; a quantile is reported as
the bucket's midpoint ``2 * gamma**i / (gamma + 1)``, which is within
``RELATIVE_ERROR`` of every value in bucket ``i`` (the DDSketch construction).
Histograms from different processes merge by adding counts, so a worker records
locally and ships only its delta once per interval.

Complexity: ``record`` O(1); ``merge`` O(buckets); ``quantile`` O(buckets), and
buckets stay few (about 1,400 cover 1 µs to 1 hour at 1%).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

#: Guaranteed bound on |reported - true| / true for any quantile of positive values.
RELATIVE_ERROR = 0.01
#: Values at or below this (seconds) are counted as zero: below timer resolution.
MIN_VALUE = 1e-9

_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
_INV_LOG_GAMMA = 1.0 / _LOG_GAMMA
_INF = math.inf
_ceil = math.ceil
_log = math.log


class LatencyHistogram:
    """Counts of non-negative values (e.g. seconds) in geometric buckets.

    Example::

        h = LatencyHistogram()
        for latency in (0.010, 0.012, 0.250):
            h.record(latency)
        h.quantile(0.5)   # 0.012, within 1%
    """

    __slots__ = ("buckets", "count", "max", "min", "sum", "zeros")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0

    def record(self, value: float) -> None:
        """Count one value; ``ValueError`` for a negative or non-finite one."""
        # The hot path of every latency recorded: one comparison chain (NaN fails it),
        # module-level aliases instead of attribute lookups.
        if MIN_VALUE < value < _INF:
            index = _ceil(_log(value) * _INV_LOG_GAMMA)
            buckets = self.buckets
            buckets[index] = buckets.get(index, 0) + 1
        elif 0.0 <= value <= MIN_VALUE:
            self.zeros += 1
        else:
            raise ValueError(f"a latency must be a finite non-negative number, got {value!r}")
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def record_many(self, values: Iterable[float]) -> None:
        """Count each of ``values``, as ``record`` would, in one call (the engine's ack path).

        ``ValueError`` for a negative or non-finite value; the values before it are counted.
        """
        buckets = self.buckets
        get = buckets.get
        log = math.log
        ceil = math.ceil
        low, high, total, count, zeros = self.min, self.max, self.sum, self.count, self.zeros
        try:
            for value in values:
                if not value >= 0.0 or value == math.inf:
                    raise ValueError(f"a latency must be a finite non-negative number, got {value!r}")
                count += 1
                total += value
                if value < low:
                    low = value
                if value > high:
                    high = value
                if value <= MIN_VALUE:
                    zeros += 1
                    continue
                index = ceil(log(value) / _LOG_GAMMA)
                buckets[index] = get(index, 0) + 1
        finally:
            self.min, self.max, self.sum, self.count, self.zeros = low, high, total, count, zeros

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts to this histogram."""
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.zeros += other.zeros
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def subtract(self, other: LatencyHistogram) -> None:
        """Remove ``other``'s counts, which must have been merged in before (sliding windows).

        ``min`` and ``max`` cannot be subtracted and are left as they were.
        """
        for index, n in other.buckets.items():
            left = self.buckets[index] - n
            if left:
                self.buckets[index] = left
            else:
                del self.buckets[index]
        self.zeros -= other.zeros
        self.count -= other.count
        self.sum = self.sum - other.sum if self.count else 0.0

    def quantile(self, q: float) -> float:
        """The ``q``-quantile (0 <= q <= 1) within ``RELATIVE_ERROR``; 0.0 when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile must be within [0, 1], got {q!r}")
        if self.count == 0:
            return 0.0
        if q == 1.0:
            return self.max  # the extremes are known exactly
        rank = q * (self.count - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if rank < seen:
                estimate = 2 * _GAMMA**index / (_GAMMA + 1)
                return min(max(estimate, self.min), self.max)
        return self.max

    @property
    def mean(self) -> float:
        """The exact mean of the recorded values; 0.0 when empty."""
        return self.sum / self.count if self.count else 0.0

    def to_wire(self) -> tuple[list[tuple[int, int]], int, int, float, float, float]:
        """A plain, msgpack-friendly form for shipping between processes."""
        return list(self.buckets.items()), self.zeros, self.count, self.sum, self.min, self.max

    @classmethod
    def from_wire(cls, wire: Sequence[Any]) -> LatencyHistogram:
        """Rebuild a histogram from ``to_wire()``'s output."""
        buckets, zeros, count, total, low, high = wire
        h = cls()
        h.buckets = {int(i): int(n) for i, n in buckets}
        h.zeros, h.count, h.sum, h.min, h.max = int(zeros), int(count), float(total), float(low), float(high)
        return h

    def reset(self) -> None:
        """Forget every value (after shipping a delta)."""
        self.__init__()  # type: ignore[misc]
