"""The statistics meters and the frame splitter, against plain reference models."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sluiceway.engine.pipe import FrameReader, encode_frame
from sluiceway.engine.statistics import LATENCY_SLICES, LATENCY_WINDOW, LatencyWindow, ThroughputMeter
from sluiceway.histogram import LatencyHistogram

samples = st.lists(st.tuples(st.floats(0.01, 5.0), st.integers(0, 1000)), min_size=1, max_size=60)


@given(steps=samples, window=st.sampled_from([1.0, 10.0, 60.0]))
def test_throughput_is_completions_over_the_trailing_window(steps: list[tuple[float, int]], window: float) -> None:
    """rate(window) equals (latest total - total at the newest sample at least `window` old) / elapsed."""
    meter = ThroughputMeter()
    history: list[tuple[float, int]] = [(0.0, 0)]
    meter.sample(0.0, 0)
    now, total = 0.0, 0
    for dt, added in steps:
        now += dt
        total += added
        meter.sample(now, total)
        history.append((now, total))
    base = history[0]
    for sample in reversed(history):
        base = sample
        if now - sample[0] >= window:
            break
    expected = (total - base[1]) / (now - base[0]) if now > base[0] else 0.0
    assert abs(meter.rate(now, window) - expected) <= 1e-9 * max(1.0, expected)


def test_latency_window_forgets_slices_older_than_the_window() -> None:
    """A latency recorded more than LATENCY_WINDOW ago no longer shows in the quantiles."""
    window = LatencyWindow(0.0)
    window.current.record(5.0)
    step = LATENCY_WINDOW / LATENCY_SLICES
    for i in range(1, LATENCY_SLICES):
        window.rotate(i * step)
        window.current.record(0.001)
    assert window.merged().max == 5.0
    window.rotate(LATENCY_SLICES * step)
    assert window.merged().max < 1.0 and window.merged().count == LATENCY_SLICES - 1


frames = st.lists(
    st.lists(st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(max_size=50), st.binary(max_size=300)), max_size=8),
    max_size=20,
)


@given(sent=frames, cuts=st.lists(st.integers(0, 10_000), max_size=30))
def test_frames_survive_any_split_of_the_byte_stream(sent: list[list[Any]], cuts: list[int]) -> None:
    """However the pipe splits the stream into reads, the reader yields exactly the frames sent, in order."""
    stream = b"".join(bytes(encode_frame(f)) for f in sent)
    received: list[Any] = []
    reader = FrameReader(received.append, lambda: None)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for start, end in itertools.pairwise(points):
        reader.data_received(stream[start:end])
    assert received == sent


_latencies = st.one_of(st.floats(min_value=0.0, max_value=3600.0), st.sampled_from([-1.0, float("inf"), float("nan")]))


@given(st.lists(st.lists(_latencies, max_size=20), max_size=5))
def test_record_many_counts_exactly_as_record_one_at_a_time(batches: list[list[float]]) -> None:
    """Recording a batch at once gives the same histogram as recording its values one by one, errors included."""
    batched, single = LatencyHistogram(), LatencyHistogram()
    for batch in batches:
        batch_error = single_error = None
        try:
            batched.record_many(batch)
        except ValueError as exc:
            batch_error = str(exc)
        try:
            for value in batch:
                single.record(value)
        except ValueError as exc:
            single_error = str(exc)
        assert batch_error == single_error
    assert (batched.buckets, batched.zeros, batched.count, batched.min, batched.max) == (
        single.buckets,
        single.zeros,
        single.count,
        single.min,
        single.max,
    )
    assert batched.sum == single.sum
