"""A worker's prefetch limit: fixed when set, else sized to a window of its measured pace, within bounds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sluiceway.engine import ParallelizerConfig
from sluiceway.engine.prefetch import MAX_PREFETCH, MEASURE_SECONDS, Prefetch

reports = st.lists(st.tuples(st.integers(0, 5_000), st.floats(0.0, 0.05)), max_size=60)


@given(window=st.floats(0.0, 1.0), concurrency=st.integers(1, 600), reports=reports)
def test_an_adaptive_limit_stays_within_its_floor_and_max_and_follows_each_measured_span(
    window: float, concurrency: int, reports: list[tuple[int, float]]
) -> None:
    """Each span of at least MEASURE_SECONDS sets limit = clamp(rate * window); frames carry half of it
    (rounded up) at most and, while the queue is long, a quarter at least."""
    config = ParallelizerConfig(worker_concurrency=concurrency, prefetch_window=window)
    now = 100.0
    prefetch = Prefetch(config, now)
    floor = 2 * concurrency
    expected, count, since = floor, 0, now
    for settled, step in reports:
        now += step
        prefetch.completed(settled, now)
        count += settled
        if window > 0 and now - since >= MEASURE_SECONDS:
            expected = max(floor, min(MAX_PREFETCH, int(count / (now - since) * window)))
            count, since = 0, now
        assert prefetch.limit == expected
        assert floor <= prefetch.limit <= max(floor, MAX_PREFETCH)
        assert prefetch.frame_size == (prefetch.limit + 1) // 2 >= 1
        assert prefetch.least_frame == max(1, prefetch.limit // 4) <= prefetch.frame_size


@given(fixed=st.integers(1, 5_000), reports=reports)
def test_a_set_worker_prefetch_never_moves(fixed: int, reports: list[tuple[int, float]]) -> None:
    prefetch = Prefetch(ParallelizerConfig(worker_prefetch=fixed), 0.0)
    now = 0.0
    for settled, step in reports:
        now += step
        prefetch.completed(settled, now)
        assert (prefetch.limit, prefetch.frame_size, prefetch.least_frame) == (fixed, (fixed + 1) // 2, max(1, fixed // 4))


def test_a_fast_worker_may_hold_its_window_of_work_and_a_slow_one_its_floor() -> None:
    """At 300k msg/s a 2 ms window is 600 messages; at 1k msg/s (a slow handler) it stays at 2 x concurrency."""
    config = ParallelizerConfig(worker_concurrency=64, prefetch_window=0.002)
    fast, slow = Prefetch(config, 0.0), Prefetch(config, 0.0)
    fast.completed(30_000, 0.1)
    slow.completed(100, 0.1)
    assert (fast.limit, slow.limit) == (600, 128)
