"""AckSettler (Rust) against its pure-Python model, LatencyHistogram.record_many."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway import histogram
from sluiceway._core import AckSettler
from sluiceway.histogram import LatencyHistogram

SETTLER = AckSettler(histogram.RELATIVE_ERROR, histogram.MIN_VALUE)

latencies = st.one_of(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
    st.sampled_from([0.0, histogram.MIN_VALUE, 2e-9, 1e-6, 1.0]),
)


def state(h: LatencyHistogram) -> tuple[Any, ...]:
    return (dict(h.buckets), h.zeros, h.count, h.sum, h.min, h.max)


@given(before=st.lists(latencies, max_size=20), values=st.lists(latencies, max_size=200))
def test_record_counts_exactly_as_record_many(before: list[float], values: list[float]) -> None:
    """record() leaves a histogram in the very state record_many() would, continuing earlier counts."""
    ours, model = LatencyHistogram(), LatencyHistogram()
    model.record_many(before)
    ours.record_many(before)
    SETTLER.record(ours, values)
    model.record_many(values)
    assert state(ours) == state(model)
    assert ours.quantile(0.99) == model.quantile(0.99)


@given(values=st.lists(latencies, max_size=20), bad=st.sampled_from([-1.0, -1e-300, math.nan, math.inf]), where=st.integers(0, 20))
def test_record_refuses_a_bad_value_after_counting_those_before_it(values: list[float], bad: float, where: int) -> None:
    """A negative or non-finite value raises ValueError, like record_many, with the values before it counted."""
    where = min(where, len(values))
    mixed = values[:where] + [bad] + values[where:]
    ours, model = LatencyHistogram(), LatencyHistogram()
    with pytest.raises(ValueError, match="finite non-negative"):
        SETTLER.record(ours, iter(mixed))
    with pytest.raises(ValueError):
        model.record_many(mixed)
    assert state(ours) == state(model)


@pytest.mark.parametrize(("relative_error", "min_value"), [(0.0, 1e-9), (1.0, 1e-9), (0.01, -1.0), (0.01, math.inf)])
def test_bad_constants_are_refused(relative_error: float, min_value: float) -> None:
    """AckSettler refuses a relative error outside (0, 1) or a negative / infinite min value, naming it."""
    with pytest.raises(ValueError, match="relative_error|min_value"):
        AckSettler(relative_error, min_value)
