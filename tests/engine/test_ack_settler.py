"""AckSettler (Rust) against pure-Python models: LatencyHistogram.record_many and dict pops."""

from __future__ import annotations

import math
from typing import Any

import msgspec
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


class Entry(msgspec.Struct):
    """The fields settle() reads, as the supervisor's entries have them."""

    seq: int
    enqueued: float
    key: str | None


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


@given(
    held_seqs=st.sets(st.integers(0, 60), max_size=40),
    acked=st.lists(st.integers(0, 80), max_size=60),
    ages=st.lists(st.floats(0.0, 100.0), min_size=61, max_size=61),
    keyed=st.sets(st.integers(0, 60)),
)
def test_settle_pops_acked_entries_and_counts_their_latencies(
    held_seqs: set[int], acked: list[int], ages: list[float], keyed: set[int]
) -> None:
    """settle() pops every acked seq still held (skipping the rest), counts now - enqueued, returns keyed entries in ack order."""
    now = 1000.0
    entries = {seq: Entry(seq, now - ages[seq], f"k{seq}" if seq in keyed else None) for seq in held_seqs}
    held = dict(entries)
    ours = LatencyHistogram()
    settled, keyed_out = SETTLER.settle(held, acked, now, ours)
    # The model: pop in ack order, a seq acked twice is settled once.
    model_held = dict(entries)
    popped = [model_held.pop(seq) for seq in acked if seq in model_held]
    model = LatencyHistogram()
    model.record_many([now - entry.enqueued for entry in popped])
    assert held == model_held
    assert settled == len(popped)
    assert keyed_out == [entry for entry in popped if entry.key is not None]
    assert state(ours) == state(model)


def test_settle_counts_a_clock_that_went_back_as_zero() -> None:
    """An entry enqueued 'after' now (a clock stepping back) settles with latency 0 instead of failing."""
    held = {1: Entry(1, 5.0, None)}
    h = LatencyHistogram()
    assert SETTLER.settle(held, [1], 4.0, h) == (1, [])
    assert (h.count, h.zeros, held) == (1, 1, {})


@pytest.mark.parametrize(("relative_error", "min_value"), [(0.0, 1e-9), (1.0, 1e-9), (0.01, -1.0), (0.01, math.inf)])
def test_bad_constants_are_refused(relative_error: float, min_value: float) -> None:
    """AckSettler refuses a relative error outside (0, 1) or a negative / infinite min value, naming it."""
    with pytest.raises(ValueError, match="relative_error|min_value"):
        AckSettler(relative_error, min_value)
