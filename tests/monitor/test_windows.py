"""Sliding windows: the running histogram always equals the histogram of the slots within the span."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from sluiceway.histogram import LatencyHistogram
from sluiceway.monitor.windows import SlidingWindow, Slot

slots = st.lists(
    st.tuples(
        st.floats(min_value=0.01, max_value=30.0),  # time since the previous slot
        st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=8),  # latencies
        st.integers(0, 50),
        st.integers(0, 5),
    ),
    max_size=60,
)


@given(slots, st.sampled_from([5.0, 60.0, 300.0]))
def test_window_matches_model(stream: list[tuple[float, list[float], int, int]], span: float) -> None:
    """After each slot: counts, buckets, min and max equal those of the slots ending within the last `span` seconds."""
    window = SlidingWindow(span)
    kept: list[tuple[float, list[float], int, int]] = []
    t = 0.0
    for dt, values, ok, failed in stream:
        start, t = t, t + dt
        histogram = LatencyHistogram()
        for v in values:
            histogram.record(v)
        window.add(Slot(t, histogram, ok, failed, None), start)
        kept = [s for s in [*kept, (t, values, ok, failed)] if s[0] > t - span]
        model = LatencyHistogram()
        for _, vs, _, _ in kept:
            for v in vs:
                model.record(v)
        assert window.histogram.buckets == model.buckets
        assert (window.histogram.count, window.histogram.zeros) == (model.count, model.zeros)
        assert window.histogram.min == model.min and window.histogram.max == model.max
        assert window.ok == sum(s[2] for s in kept) and window.failed == sum(s[3] for s in kept)
        assert 0 <= window.elapsed(t) <= span and not math.isnan(window.elapsed(t))
