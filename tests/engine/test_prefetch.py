"""A worker's prefetch limit, checked against what engine/prefetch.py and ParallelizerConfig document.

- a set ``worker_prefetch`` is the limit, whatever the worker's pace;
- otherwise the limit starts at the floor, ``2 * worker_concurrency``, and after each measured span
  of at least ``MEASURE_SECONDS`` holds about ``prefetch_window`` seconds of the pace measured over
  that span, never below the floor and never above ``MAX_PREFETCH`` (unless the floor is higher);
  ``prefetch_window = 0`` keeps it at the floor;
- a DISPATCH frame carries at most half the limit (two frames in the pipe cover it), and the
  smallest frame sent is a quarter of it, at least one message.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sluiceway.engine import ParallelizerConfig
from sluiceway.engine.prefetch import MAX_PREFETCH, MEASURE_SECONDS, Prefetch

#: A pace a worker keeps for one span: (messages per second, span in seconds, reports it arrives in).
#: (Spans start a hair above MEASURE_SECONDS: end - start in floating point may fall short of span itself.)
paces = st.tuples(st.floats(0.0, 2_000_000.0), st.floats(MEASURE_SECONDS * 1.001, 0.5), st.integers(1, 5))


def run_span(prefetch: Prefetch, start: float, rate: float, span: float, reports: int) -> tuple[float, float]:
    """Report ``rate * span`` completions over ``span`` seconds from ``start``: all but the last report land
    before a measurement could close, so the span is measured once, at its end. Returns (end, measured rate)."""
    total = round(rate * span)
    early = [total // reports] * (reports - 1)
    for i, count in enumerate(early, start=1):
        prefetch.completed(count, start + MEASURE_SECONDS * i / reports)
    prefetch.completed(total - sum(early), start + span)
    return start + span, total / span


def frames_fit(prefetch: Prefetch) -> None:
    assert 1 <= prefetch.frame_size <= prefetch.limit
    assert 2 * prefetch.frame_size >= prefetch.limit  # two frames cover what the worker may hold
    assert 1 <= prefetch.least_frame <= prefetch.frame_size
    assert prefetch.limit < 4 or 4 * prefetch.least_frame <= prefetch.limit


@given(
    fixed=st.integers(1, 5_000),
    concurrency=st.integers(1, 600),
    window=st.floats(0.0, 1.0),
    spans=st.lists(paces, max_size=8),
)
def test_a_set_worker_prefetch_is_the_limit_at_any_pace(
    fixed: int, concurrency: int, window: float, spans: list[tuple[float, float, int]]
) -> None:
    """``worker_prefetch = n`` holds n messages from the start and never moves, fast worker or slow."""
    config = ParallelizerConfig(worker_prefetch=fixed, worker_concurrency=concurrency, prefetch_window=window)
    prefetch, now = Prefetch(config, 0.0), 0.0
    assert prefetch.limit == fixed
    for rate, span, reports in spans:
        now, _ = run_span(prefetch, now, rate, span, reports)
        assert prefetch.limit == fixed
        frames_fit(prefetch)


@given(concurrency=st.integers(1, 600), window=st.floats(0.0, 1.0), spans=st.lists(paces, min_size=1, max_size=8))
def test_an_adaptive_limit_holds_a_window_of_the_last_measured_pace_within_its_bounds(
    concurrency: int, window: float, spans: list[tuple[float, float, int]]
) -> None:
    """After each span the limit is the window's worth of that span's pace (to the message), clamped to
    [2 x concurrency, MAX_PREFETCH]; it starts at the floor, and its frames fit it."""
    config = ParallelizerConfig(worker_concurrency=concurrency, prefetch_window=window)
    floor = 2 * concurrency
    prefetch, now = Prefetch(config, 10.0), 10.0
    assert prefetch.limit == floor
    frames_fit(prefetch)
    for rate, span, reports in spans:
        now, measured = run_span(prefetch, now, rate, span, reports)
        assert floor <= prefetch.limit <= max(floor, MAX_PREFETCH)
        wanted = measured * window
        if floor + 1 < wanted < MAX_PREFETCH - 1:
            assert abs(prefetch.limit - wanted) <= 1
        elif wanted <= floor:
            assert prefetch.limit == floor
        elif wanted >= MAX_PREFETCH + 1:
            assert prefetch.limit == max(floor, MAX_PREFETCH)
        frames_fit(prefetch)


@given(
    concurrency=st.integers(1, 64),
    window=st.floats(0.0005, 0.05),
    slow=st.floats(0.0, 1_000_000.0),
    faster_by=st.floats(1.0, 100.0),
    span=st.floats(MEASURE_SECONDS * 1.001, 0.5),
)
def test_a_faster_worker_never_holds_less(
    concurrency: int, window: float, slow: float, faster_by: float, span: float
) -> None:
    """Same config and span: the worker with the higher pace has a limit at least as large; a longer window too."""
    config = ParallelizerConfig(worker_concurrency=concurrency, prefetch_window=window)
    longer = ParallelizerConfig(worker_concurrency=concurrency, prefetch_window=window * 2)
    limits = []
    for worker_config, rate in ((config, slow), (config, slow * faster_by), (longer, slow * faster_by)):
        prefetch = Prefetch(worker_config, 0.0)
        run_span(prefetch, 0.0, rate, span, 1)
        limits.append(prefetch.limit)
    assert limits[0] <= limits[1] <= limits[2]


@given(concurrency=st.integers(1, 600), counts=st.lists(st.integers(0, 100_000), max_size=20))
def test_spans_shorter_than_a_measurement_leave_the_limit_alone(concurrency: int, counts: list[int]) -> None:
    """Reports within MEASURE_SECONDS of the last measurement (too noisy to size by) change nothing."""
    config = ParallelizerConfig(worker_concurrency=concurrency, prefetch_window=0.002)
    prefetch = Prefetch(config, 0.0)
    for i, count in enumerate(counts):
        prefetch.completed(count, MEASURE_SECONDS * i / (len(counts) + 1))
        assert prefetch.limit == 2 * concurrency


@given(concurrency=st.integers(1, 600), spans=st.lists(paces, max_size=8))
def test_a_zero_window_keeps_the_floor(concurrency: int, spans: list[tuple[float, float, int]]) -> None:
    """``prefetch_window = 0`` keeps the limit at ``2 * worker_concurrency`` at any pace."""
    prefetch, now = Prefetch(ParallelizerConfig(worker_concurrency=concurrency, prefetch_window=0.0), 0.0), 0.0
    for rate, span, reports in spans:
        now, _ = run_span(prefetch, now, rate, span, reports)
        assert prefetch.limit == 2 * concurrency


def test_limits_and_frames_worked_by_hand() -> None:
    """The README's numbers and the edges, computed by hand (concurrency 64, window 2 ms unless said)."""

    def limit_after(completed: int, seconds: float, concurrency: int = 64, window: float = 0.002) -> tuple[int, ...]:
        prefetch = Prefetch(ParallelizerConfig(worker_concurrency=concurrency, prefetch_window=window), 0.0)
        prefetch.completed(completed, seconds)
        return prefetch.limit, prefetch.frame_size, prefetch.least_frame

    assert limit_after(30_000, 0.1) == (600, 300, 150)  # a no-op handler, 300k/s: 2 ms of it is 600 messages
    assert limit_after(100, 0.1) == (128, 64, 32)  # a slow one, 1k/s: 2 messages, so the floor 2 x 64
    assert limit_after(1_000_000, 0.1)[0] == 1024  # 10M/s would be 20,000: capped
    assert limit_after(0, 0.1, concurrency=600)[0] == 1200  # a floor above the cap wins
    assert limit_after(4_000, 0.0625, concurrency=1, window=1 / 64) == (1000, 500, 250)  # 64k/s, 1/64 s of it
    assert limit_after(30_000, 0.01)[0] == 128  # 10 ms is under MEASURE_SECONDS (20 ms): not measured yet
    fixed = Prefetch(ParallelizerConfig(worker_prefetch=5), 0.0)
    assert (fixed.limit, fixed.frame_size, fixed.least_frame) == (5, 3, 1)
    single = Prefetch(ParallelizerConfig(worker_prefetch=1), 0.0)
    assert (single.limit, single.frame_size, single.least_frame) == (1, 1, 1)
