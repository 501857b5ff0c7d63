"""History: stitched fine/coarse ring buffers, downsampling by slot means, bounded memory."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sluiceway.monitor.config import MonitorConfig
from sluiceway.monitor.history import History, Series

TIERS = [(0.0, 8), (10.0, 6), (60.0, 5)]


class SeriesVersusModel(RuleBasedStateMachine):
    """A Series checked against a model that keeps every point forever."""

    def __init__(self) -> None:
        super().__init__()
        self.series = Series(TIERS)
        self.raw: list[tuple[float, float]] = []
        self.t = 0.0

    @rule(dt=st.floats(min_value=0.0, max_value=25.0), value=st.floats(min_value=-1e6, max_value=1e6))
    def append(self, dt: float, value: float) -> None:
        self.t += dt
        self.series.append(self.t, value)
        self.raw.append((self.t, value))

    @invariant()
    def memory_is_bounded(self) -> None:
        assert len(self.series) <= self.series.capacity == 19

    @invariant()
    def recent_points_are_exact(self) -> None:
        points = self.series.points()
        tail = self.raw[-8:]
        assert [(p.t, p.value) for p in points[-len(tail) :]] == tail if tail else points == []

    @invariant()
    def points_are_ordered_and_downsampled_faithfully(self) -> None:
        points = self.series.points()
        times = [p.t for p in points]
        assert times == sorted(times)
        slots: dict[tuple[float, float], list[float]] = defaultdict(list)
        for t, v in self.raw:
            for resolution, _ in TIERS[1:]:
                slots[(resolution, math.floor(t / resolution) * resolution)].append(v)
        raw_set = set(self.raw)
        for p in points:
            if (p.t, p.value) in raw_set and p.low == p.high == p.value:
                continue
            matches = [
                values
                for (res, start), values in slots.items()
                if start == p.t and min(values) == p.low and max(values) == p.high
            ]
            assert any(sum(v) / len(v) == pytest.approx(p.value, rel=1e-9, abs=1e-6) for v in matches), p


TestSeriesVersusModel = SeriesVersusModel.TestCase


def test_memory_stays_flat_over_a_simulated_week() -> None:
    """A week of 1 s collections keeps no more points than the tiers' capacities."""
    config = MonitorConfig(metric_collection_interval=1.0)
    history = History(config.history_tiers())
    bound = sum(capacity for _, capacity in config.history_tiers())
    for t in range(0, 7 * 86_400, 1):
        history.record("throughput", float(t), float(t % 100))
    series = history._series["throughput"]
    assert len(series) <= bound
    assert bound < 10_000


def test_trend_covers_the_window_at_decreasing_resolution() -> None:
    """A day-long trend returns every recent point and coarser points before them."""
    config = MonitorConfig(metric_collection_interval=5.0)
    history = History(config.history_tiers())
    for t in range(0, 2 * 86_400, 5):
        history.record("q", float(t), 1.0)
    now = 2 * 86_400 - 5.0
    points = history.trend("q", 86_400.0, now)
    assert points[0].t >= now - 86_400.0
    assert points[-1].t == now
    spacing = [b.t - a.t for a, b in itertools.pairwise(points)]
    assert spacing[-1] == 5.0 and max(spacing) == 60.0
    assert all(p.value == 1.0 for p in points)


def test_unknown_metric_names_known_ones() -> None:
    """Asking for a metric never recorded raises KeyError listing the known names."""
    history = History([(0.0, 4)])
    history.record("throughput", 0.0, 1.0)
    with pytest.raises(KeyError, match="throughput"):
        history.trend("latency", 10.0, 1.0)


@given(st.lists(st.tuples(st.floats(0, 1e9), st.integers(1, 100)), min_size=1, max_size=4))
def test_bad_tiers_are_rejected(tiers: list[tuple[float, int]]) -> None:
    """Tiers must start with a raw tier and increase in resolution, else ValueError."""
    valid = tiers[0][0] == 0.0 and [r for r, _ in tiers] == sorted({r for r, _ in tiers})
    if valid:
        Series(tiers)
    else:
        with pytest.raises(ValueError):
            Series(tiers)


def test_time_must_not_go_back() -> None:
    """Appending an older point than the last one is refused."""
    series = Series([(0.0, 4)])
    series.append(5.0, 1.0)
    with pytest.raises(ValueError, match="go back"):
        series.append(4.0, 1.0)
