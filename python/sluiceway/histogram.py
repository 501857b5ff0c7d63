"""A mergeable, log-bucketed histogram for latencies with a bounded relative error.

``LatencyHistogram`` is implemented in Rust (``sluiceway._core``); this module is its
public home, with its constants. Values are counted in buckets whose bounds grow
geometrically by ``gamma = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)``; a quantile is
reported as its bucket's midpoint, within ``RELATIVE_ERROR`` of the true value (the
DDSketch construction). Histograms from different processes merge by adding counts, so a
worker records locally and ships only its delta (``to_wire``/``from_wire``) once per interval.

Example::

    h = LatencyHistogram()
    h.record_many([0.010, 0.012, 0.250])
    h.quantile(0.5)   # 0.012, within 1%
"""

from __future__ import annotations

from typing import Final

from sluiceway._core import LatencyHistogram

#: Guaranteed bound on |reported - true| / true for any quantile of positive values.
RELATIVE_ERROR: Final[float] = LatencyHistogram.RELATIVE_ERROR
#: Values at or below this (seconds) are counted as zero: below timer resolution.
MIN_VALUE: Final[float] = LatencyHistogram.MIN_VALUE

__all__ = ["MIN_VALUE", "RELATIVE_ERROR", "LatencyHistogram"]
