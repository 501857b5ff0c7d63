"""LatencyHistogram: percentiles within the documented relative error, merging equals recording everything."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.histogram import RELATIVE_ERROR, LatencyHistogram

latencies = st.floats(min_value=1e-6, max_value=3600.0, allow_nan=False, allow_infinity=False)
samples = st.lists(latencies, min_size=1, max_size=300)
quantiles = st.floats(min_value=0.0, max_value=1.0)


def exact_quantile(values: list[float], q: float) -> list[float]:
    """The values a correct q-quantile may be: the order statistics around rank q * (n - 1)."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    return [ordered[math.floor(rank)], ordered[math.ceil(rank)]]


def build(values: list[float]) -> LatencyHistogram:
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    return h


@given(samples, quantiles)
def test_quantile_within_relative_error_of_an_exact_order_statistic(values: list[float], q: float) -> None:
    """Every quantile is within RELATIVE_ERROR of the exact order statistic at its rank."""
    estimate = build(values).quantile(q)
    candidates = exact_quantile(values, q)
    assert any(abs(estimate - c) <= RELATIVE_ERROR * c * (1 + 1e-9) for c in candidates), (estimate, candidates)


@given(samples, samples, quantiles)
def test_merge_equals_recording_all(a: list[float], b: list[float], q: float) -> None:
    """Merging two histograms gives the histogram of all their values."""
    merged = build(a)
    merged.merge(build(b))
    together = build(a + b)
    assert merged.buckets == together.buckets
    assert merged.count == together.count
    assert (merged.min, merged.max) == (together.min, together.max)
    assert merged.sum == pytest.approx(together.sum)
    assert merged.quantile(q) == together.quantile(q)


@given(samples, samples)
def test_subtract_undoes_merge(a: list[float], b: list[float]) -> None:
    """Subtracting a merged-in histogram restores the original counts (sliding windows rely on it)."""
    h = build(a)
    h.merge(build(b))
    h.subtract(build(b))
    original = build(a)
    assert h.buckets == original.buckets
    assert h.count == original.count
    assert h.sum == pytest.approx(original.sum)


@given(samples)
def test_wire_round_trip(values: list[float]) -> None:
    """A histogram shipped with to_wire/from_wire is identical on arrival."""
    h = build(values)
    copy = LatencyHistogram.from_wire(h.to_wire())
    assert (copy.buckets, copy.zeros, copy.count, copy.sum, copy.min, copy.max) == (
        h.buckets,
        h.zeros,
        h.count,
        h.sum,
        h.min,
        h.max,
    )


def test_zero_latencies_count_as_zero() -> None:
    """Values at or below timer resolution are reported as 0 rather than a tiny bucket."""
    h = build([0.0, 0.0, 0.0, 1.0])
    assert h.quantile(0.5) == 0.0
    assert h.quantile(1.0) == 1.0


@pytest.mark.parametrize("bad", [-0.1, math.inf, math.nan])
def test_rejects_bad_values(bad: float) -> None:
    """A negative, infinite or NaN latency raises ValueError instead of corrupting the counts."""
    with pytest.raises(ValueError, match="latency"):
        LatencyHistogram().record(bad)


def test_rejects_quantile_outside_unit_interval() -> None:
    """Asking for the 1.5-quantile is an error that names the quantile."""
    with pytest.raises(ValueError, match="quantile"):
        build([1.0]).quantile(1.5)


def test_empty_histogram_reports_zero() -> None:
    """An empty histogram's quantiles and mean are 0, not an exception."""
    h = LatencyHistogram()
    assert h.quantile(0.99) == 0.0
    assert h.mean == 0.0
