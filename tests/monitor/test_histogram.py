"""LatencyHistogram (Rust) against a reference model: the sorted list of every value recorded.

Quantiles within the documented relative error of the model's order statistics; count, sum,
min, max and mean exact; merging equals recording everything; record_many equals a loop of
record; the wire and pickle forms round-trip; bad input is refused, naming the problem.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sluiceway
from sluiceway.histogram import MIN_VALUE, RELATIVE_ERROR, LatencyHistogram

latencies = st.one_of(
    st.floats(min_value=1e-6, max_value=3600.0),
    st.floats(min_value=0.0, max_value=1e6),
    st.sampled_from([0.0, 1e-12, MIN_VALUE, 2e-9, 1.0]),
)
samples = st.lists(latencies, min_size=1, max_size=300)
quantiles = st.floats(min_value=0.0, max_value=1.0)
bad_values = st.sampled_from([-1.0, -1e-300, -math.inf, math.inf, math.nan])


def build(values: list[float]) -> LatencyHistogram:
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    return h


def state(h: LatencyHistogram) -> tuple[Any, ...]:
    return (h.buckets, h.zeros, h.count, h.sum, h.min, h.max)


def model_quantile(model: list[float], q: float) -> list[float]:
    """The values a correct q-quantile may be: the order statistics around rank q * (n - 1)."""
    rank = q * (len(model) - 1)
    return [model[math.floor(rank)], model[math.ceil(rank)]]


def close(estimate: float, exact: float) -> bool:
    """Within the relative error; values at or below MIN_VALUE are reported as 0."""
    return abs(estimate - exact) <= RELATIVE_ERROR * exact * (1 + 1e-9) + MIN_VALUE


@given(samples, quantiles)
def test_quantile_within_relative_error_of_the_models_order_statistic(values: list[float], q: float) -> None:
    """Every quantile is within RELATIVE_ERROR of the exact order statistic at its rank."""
    model = sorted(values)
    estimate = build(values).quantile(q)
    assert any(close(estimate, exact) for exact in model_quantile(model, q)), (estimate, model_quantile(model, q))


@given(samples)
def test_totals_are_exact(values: list[float]) -> None:
    """count, sum (added in order), min, max and mean equal the model's; zeros are the values <= MIN_VALUE."""
    h = build(values)
    model = sorted(values)
    assert (h.count, h.min, h.max) == (len(model), model[0], model[-1])
    total = 0.0
    for v in values:  # not sum(): Python 3.12 compensates its rounding
        total += v
    assert (h.sum, h.mean) == (total, total / len(values))
    assert h.zeros == sum(1 for v in values if v <= MIN_VALUE)
    assert sum(h.buckets.values()) + h.zeros == h.count
    assert (h.quantile(0.0) == 0.0) == (model[0] <= MIN_VALUE)
    assert h.quantile(1.0) == model[-1]


@given(samples, samples, quantiles)
def test_merge_equals_recording_the_union(a: list[float], b: list[float], q: float) -> None:
    """Merging two histograms gives the histogram of all their values."""
    merged = build(a)
    merged.merge(build(b))
    together = build(a + b)
    assert (merged.buckets, merged.zeros, merged.count, merged.min, merged.max) == (
        together.buckets,
        together.zeros,
        together.count,
        together.min,
        together.max,
    )
    assert merged.sum == pytest.approx(together.sum)
    assert merged.quantile(q) == together.quantile(q)


def test_merging_a_histogram_into_itself_doubles_it() -> None:
    h = build([0.5, 2.0])
    h.merge(h)
    assert (h.count, h.buckets) == (4, build([0.5, 2.0, 0.5, 2.0]).buckets)


@given(samples, samples)
def test_subtract_undoes_merge(a: list[float], b: list[float]) -> None:
    """Subtracting a merged-in histogram restores the original counts (sliding windows rely on it)."""
    h = build(a)
    h.merge(build(b))
    h.subtract(build(b))
    original = build(a)
    assert (h.buckets, h.zeros, h.count) == (original.buckets, original.zeros, original.count)
    # Float subtraction: exact up to the rounding of the larger sum it went through.
    assert abs(h.sum - original.sum) <= 1e-12 * (original.sum + sum(b))


def test_subtracting_what_was_never_merged_in_is_refused_and_changes_nothing() -> None:
    h = build([0.5, 0.0])
    before = state(h)
    for other in ([2.0], [0.5, 0.5], [0.0, 0.0]):
        with pytest.raises(ValueError, match="never merged in"):
            h.subtract(build(other))
        assert state(h) == before


@given(st.lists(latencies, max_size=20), st.lists(latencies, max_size=200))
def test_record_many_equals_a_loop_of_record(before: list[float], values: list[float]) -> None:
    """record_many leaves the very state a loop of record would, continuing earlier counts, for any iterable."""
    expected = build(before + values)
    from_list, from_iterator = build(before), build(before)
    from_list.record_many(values)
    from_iterator.record_many(iter(values))
    assert state(from_list) == state(expected) == state(from_iterator)


@given(st.lists(latencies, max_size=20), bad_values, st.integers(0, 20))
def test_a_bad_value_is_refused_after_counting_those_before_it(values: list[float], bad: float, where: int) -> None:
    """A negative, infinite or NaN latency raises ValueError naming it; record_many keeps the values before it."""
    where = min(where, len(values))
    h = LatencyHistogram()
    with pytest.raises(ValueError, match="finite non-negative"):
        h.record_many([*values[:where], bad, *values[where:]])
    assert state(h) == state(build(values[:where]))
    with pytest.raises(ValueError, match="latency"):
        h.record(bad)
    assert state(h) == state(build(values[:where]))


def test_record_many_refuses_a_non_number_after_counting_those_before_it() -> None:
    h = LatencyHistogram()
    with pytest.raises(TypeError):
        h.record_many([0.5, "slow", 1.0])  # type: ignore[list-item]
    assert h.count == 1


@given(samples)
def test_wire_and_pickle_round_trip(values: list[float]) -> None:
    """to_wire/from_wire (also through msgpack, which turns tuples into lists) and pickle give an identical copy."""
    h = build(values)
    through_msgpack = msgspec.msgpack.decode(msgspec.msgpack.encode(h.to_wire()))
    copies = [LatencyHistogram.from_wire(h.to_wire()), LatencyHistogram.from_wire(through_msgpack)]
    for copy in [*copies, pickle.loads(pickle.dumps(h))]:
        assert state(copy) == state(h)


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        ("not a wire form", "wire form"),
        (([], 0, 0, 0.0), "wire form"),
        (([(1, 2, 3)], 0, 2, 1.0, 0.5, 0.6), "wire form"),
        (([(1, 2)], 0, 5, 1.0, 0.5, 0.6), "count"),
        (([(10**9, 1)], 0, 1, 1.0, 0.5, 0.6), "bucket index"),
    ],
)
def test_from_wire_refuses_what_to_wire_cannot_produce(wire: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        LatencyHistogram.from_wire(wire)


bounds_lists = st.lists(st.floats(min_value=1e-6, max_value=1e4), min_size=1, max_size=10, unique=True).map(sorted)


@given(samples, bounds_lists)
def test_cumulative_counts_agree_with_the_model_up_to_the_relative_error(
    values: list[float], bounds: list[float]
) -> None:
    """At each bound: at least the values surely below it, at most those that may round below it."""
    counts = build(values).cumulative_counts(bounds)
    for bound, count in zip(bounds, counts, strict=False):
        surely_below = sum(1 for v in values if v <= MIN_VALUE or v <= bound / (1 + RELATIVE_ERROR) * (1 - 1e-9))
        maybe_below = sum(1 for v in values if v <= MIN_VALUE or v <= bound / (1 - RELATIVE_ERROR) * (1 + 1e-9))
        assert surely_below <= count <= maybe_below, (bound, count, surely_below, maybe_below)
    assert counts == sorted(counts)


@pytest.mark.parametrize("bounds", [[0.1, 0.1], [1.0, 0.5], [math.nan]])
def test_cumulative_counts_refuse_bounds_that_do_not_increase(bounds: list[float]) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        build([1.0]).cumulative_counts(bounds)


def test_rejects_quantile_outside_unit_interval() -> None:
    """Asking for the 1.5-quantile is an error that names the quantile."""
    with pytest.raises(ValueError, match="quantile"):
        build([1.0]).quantile(1.5)


def test_empty_and_reset_histograms_report_zero() -> None:
    """An empty histogram's quantiles and mean are 0, not an exception; reset empties one."""
    h = build([0.25, 3.0])
    h.reset()
    assert state(h) == state(LatencyHistogram()) == ({}, 0, 0, 0.0, math.inf, 0.0)
    assert h.quantile(0.99) == 0.0
    assert h.mean == 0.0


def test_public_paths_and_constants() -> None:
    """The class is reachable as sluiceway.LatencyHistogram and sluiceway.histogram.LatencyHistogram, with 1% error."""
    assert sluiceway.LatencyHistogram is LatencyHistogram
    assert (RELATIVE_ERROR, MIN_VALUE) == (LatencyHistogram.RELATIVE_ERROR, LatencyHistogram.MIN_VALUE) == (0.01, 1e-9)
