"""Anomaly detection: trends are not anomalies, spikes and steps on top of them are, at the right sample."""

from __future__ import annotations

import asyncio
import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluiceway import MonitorConfig, PerformanceMonitor
from sluiceway.engine import LatencyDelta
from sluiceway.histogram import LatencyHistogram
from sluiceway.monitor.anomaly import AnomalyDetector, fit_window_length
from sluiceway.testing import ManualClock

from .fake_engine import FakeEngine

WARMUP = 30
SIGMA = 2.5
#: Jitter of ±1 unit (like a count wobbling by one): σ = 1, never farther than σ from the trend, so inside
#: the band by construction. (Unbounded noise is flagged at its tail rate; see the uniform-noise tests.)
WOBBLE = (-1.0, 1.0)


def detector(clock: ManualClock | None = None) -> AnomalyDetector:
    return AnomalyDetector(sigma=SIGMA, alpha=0.05, warmup=WARMUP, clock=clock or ManualClock())


def flagged(values: list[float]) -> list[int]:
    d = detector()
    return [i for i, v in enumerate(values) if d.observe("m", v) is not None]


#: Longest run of jitter on one side of the ramp: a longer run is a level shift, which the
#: detector may rightly flag when the series comes back (e.g. eleven -1s in a row then a +1).
MAX_RUN = 4


def jittered_ramp(seed: int, n: int, start: float, slope: float, scale: float) -> list[float]:
    """A ramp plus ±``scale`` jitter drawn at random, never more than ``MAX_RUN`` times in a row on one side."""
    rng = random.Random(seed)
    values: list[float] = []
    side, run = 0.0, 0
    for i in range(n):
        wobble = rng.choice(WOBBLE)
        run = run + 1 if wobble == side else 1
        if run > MAX_RUN:
            wobble, run = -wobble, 1
        side = wobble
        values.append(start + slope * i + scale * wobble)
    return values


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32),
    st.floats(-1e4, 1e4),
    st.floats(-50.0, 50.0),
    st.floats(0.01, 100.0),
)
def test_ramps_with_noise_raise_nothing(seed: int, start: float, slope: float, scale: float) -> None:
    """A steadily rising, falling or flat series wobbling by ±σ is never flagged, however steep."""
    assert flagged(jittered_ramp(seed, 400, start, slope, scale)) == []


#: Spikes and steps ride on trends up to ±5 per sample from 0, jittered by ±10 (σ = 10), so over 300 samples
#: the level stays where σ, not the floor of 1% of the level, sets the band.
SPIKE_SCALE = 10.0


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32),
    st.floats(-5.0, 5.0),
    st.integers(WARMUP + 5, 300),
    st.floats(10.0, 50.0),
    st.sampled_from([-1.0, 1.0]),
)
def test_spike_on_a_trend_is_flagged_at_its_sample(seed: int, slope: float, at: int, k: float, sign: float) -> None:
    """A sample k σ off a noisy trend (k >= 10: beyond the band and the jitter) is flagged there, and only it."""
    values = jittered_ramp(seed, 350, 0.0, slope, SPIKE_SCALE)
    values[at] += sign * k * SPIKE_SCALE
    clock = ManualClock(7.0)
    d = detector(clock)
    anomalies = [(i, a) for i, v in enumerate(values) if (a := d.observe("m", v)) is not None]
    assert [i for i, _ in anomalies] == [at]
    anomaly = anomalies[0][1]
    assert anomaly.metric == "m" and anomaly.at == 7.0 and anomaly.value == values[at]
    assert math.copysign(1.0, anomaly.score) == sign and abs(anomaly.score) > SIGMA
    assert abs(anomaly.mean - slope * at) < 3 * SPIKE_SCALE  # judged against the trend


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.floats(-5.0, 5.0), st.integers(WARMUP + 5, 300), st.floats(10.0, 50.0))
def test_step_on_a_trend_is_flagged_once_at_the_step(seed: int, slope: float, at: int, k: float) -> None:
    """A lasting jump of k σ on a trend is flagged at its first sample; the trend continuing from it is not."""
    values = jittered_ramp(seed, 350, 0.0, slope, SPIKE_SCALE)
    for i in range(at, len(values)):
        values[i] += k * SPIKE_SCALE
    assert flagged(values) == [at]


def test_sigma_threshold_is_honoured() -> None:
    """On a noisy trend a sample 50 off is flagged at sigma 2 and not at sigma 4.

    The jitter is ±10 (σ = 10; its MAD-based estimate is 14.8, the larger of the two
    estimates, ×1.05 for the line's uncertainty): the band is 31 at sigma 2 and 62 at
    sigma 4, and the sample lies 50 from the trend and 37 or more from the previous sample.
    """
    values = jittered_ramp(3, 200, 500.0, -3.0, 10.0)
    values[150] = 500.0 - 3.0 * 150 + 50.0
    for sigma, expected in ((2.0, [150]), (4.0, [])):
        d = AnomalyDetector(sigma=sigma, alpha=0.05, warmup=WARMUP, clock=ManualClock())
        assert [i for i, v in enumerate(values) if d.observe("m", v)] == expected


def test_the_reported_drain_through_the_monitor_raises_only_the_end_of_work() -> None:
    """The reported case end to end: the monitor collecting every 0.1 s while one worker drains 1,500
    messages of 30 ms. Queue depth, latency and throughput raise nothing while it drains (the old
    detector raised one anomaly per sample of it); the one flag is throughput dropping to zero when
    the work runs out, a real change of behaviour."""

    async def scenario() -> list[tuple[str, float]]:
        rng = random.Random(1)
        clock = ManualClock()
        engine = FakeEngine(min_workers=1, max_workers=1, auto_scaling=False)
        monitor = PerformanceMonitor(MonitorConfig(metric_collection_interval=0.1, monitor_process=False), clock=clock)
        monitor.on_start(engine)
        queued = 1500
        while clock.now < 60.0:
            done = min(queued, rng.choice([3, 3, 4]))
            queued -= done
            engine.stats.queue_depths, engine.stats.in_flight = [queued, 0, 0], int(queued > 0)
            engine.stats.completed += done
            latencies = LatencyHistogram()
            for _ in range(done):
                latencies.record(0.03 + rng.uniform(0.0, 0.002))
            monitor.on_latencies(LatencyDelta(1, latencies))
            clock.advance(0.1)
            monitor.tick()
        await monitor.on_stop()
        return [(a.metric, a.value) for a in monitor.current_report().anomalies]

    assert asyncio.run(scenario()) == [("throughput", 0.0)]


def test_a_backlog_draining_to_zero_raises_nothing() -> None:
    """The reported case: 1,500 messages of 30 ms draining on one worker (3-4 per 0.1 s collection), then idle."""
    rng = random.Random(1)
    depth = [1500.0]
    while depth[-1] > 0:
        depth.append(max(0.0, depth[-1] - rng.choice([3, 3, 4])))
    depth += [0.0] * 200
    throughput = [rng.choice([30.0, 40.0]) for _ in range(len(depth) - 200)]
    d = detector()
    assert [i for i, v in enumerate(depth) if d.observe("queue_depth", v)] == []
    assert [i for i, v in enumerate(throughput) if d.observe("throughput", v)] == []


@pytest.mark.parametrize("slope", [-3.0, 0.0, 3.0])
def test_uniform_noise_on_a_trend_is_rarely_flagged(slope: float) -> None:
    """Uniform noise (|x - trend| <= 1.73σ) on a trend is (almost) never flagged over 20,000 samples.

    Not never by construction: the σ of a 39-sample window and the line through it wobble."""
    count = 0
    for seed in range(10):
        rng = random.Random(seed)
        count += len(flagged([100.0 + slope * i + rng.uniform(-5.0, 5.0) for i in range(2000)]))
    assert count <= 2


@pytest.mark.parametrize("seed", range(10))
def test_known_outliers_are_flagged(seed: int) -> None:
    """Spikes of 10σ injected at known positions into uniform noise are each flagged, and nothing else is."""
    rng = random.Random(seed)
    outliers = set(rng.sample(range(WARMUP + 10, 1000), 12))
    values = []
    for i in range(1000):
        value = 100.0 + rng.uniform(-5.0, 5.0)
        if i in outliers:
            value += rng.choice([-1, 1]) * 30.0  # the noise's σ is 5/√3 ≈ 2.9
        values.append(value)
    assert set(flagged(values)) == outliers


def test_nothing_flagged_during_warmup() -> None:
    """The first `warmup` samples build the baseline and are never flagged, however wild."""
    d = detector()
    assert all(d.observe("m", v) is None for v in [1.0, 1000.0, 2.0, 5000.0] * 5)


def test_level_shift_becomes_the_new_normal() -> None:
    """After a lasting jump in noise the detector stops flagging the new level."""
    rng = random.Random(1)
    d = detector()
    for _ in range(200):
        d.observe("m", 10.0 + rng.uniform(-1, 1))
    late = [d.observe("m", 50.0 + rng.uniform(-1, 1)) for _ in range(300)][-200:]
    assert not any(late)


@given(st.floats(min_value=-1e6, max_value=1e6), st.integers(min_value=WARMUP, max_value=200))
def test_constant_series_never_flagged(level: float, n: int) -> None:
    """A perfectly flat series has zero spread yet is never flagged (floors on σ)."""
    d = detector()
    assert not any(d.observe("m", level) for _ in range(n))


@given(st.floats(1e-3, 1e6), st.integers(0, 2**32))
def test_flat_series_with_float_noise_never_flagged(level: float, seed: int) -> None:
    """A level wobbling by a millionth of itself, even right after sitting at zero, is never flagged."""
    rng = random.Random(seed)
    values = [level * (1 + 1e-6 * rng.uniform(-1, 1)) for _ in range(100)]
    assert flagged(values) == []
    assert flagged([0.0] * WARMUP + values)[1:] == []  # the step from zero itself may be flagged


def test_rejects_non_finite_values() -> None:
    """A NaN sample is refused with an error naming the metric."""
    with pytest.raises(ValueError, match="latency"):
        detector().observe("latency", float("nan"))


def reference_flags(values: list[float], warmup: int, alpha: float, sigma: float) -> list[int]:
    """The detector restated from scratch on full lists with the standard library's regression."""
    window = fit_window_length(alpha)
    memory: float | None = None
    learned: list[float] = []
    flags, off_line = [], set()
    for i, value in enumerate(values):
        if i < warmup:
            learned.append(value)
            continue
        recent = learned[-window:]
        n = len(recent)
        slope, intercept = statistics.linear_regression(range(n), recent)
        residuals = [abs(v - intercept - slope * x) for x, v in enumerate(recent)]
        window_std = max(
            1.4826 * statistics.median(residuals),
            math.sqrt(math.pi / 2) * statistics.fmean(residuals),
            0.01 * statistics.median(abs(v) for v in recent),
            1e-9,
        )
        memory = window_std if memory is None else memory
        std = max(window_std, memory, 0.01 * abs(value))
        memory += alpha * (window_std - memory)
        x_mean = (n - 1) / 2
        spread = math.sqrt(1 + 1 / n + (n - x_mean) ** 2 / sum((x - x_mean) ** 2 for x in range(n)))
        band = sigma * std * spread
        expected = intercept + slope * n
        last, before = values[i - 1], values[i - 2]
        near = [last, last + slope] + ([2 * last - before] if i - 1 in off_line else [])
        if abs(value - expected) > band:
            off_line.add(i)
        if i in off_line and all(abs(value - c) > band for c in near):
            flags.append(i)
            learned.append(expected + math.copysign(band, value - expected))
        else:
            learned.append(value)
    return flags


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(-50, 50), min_size=0, max_size=150),
    st.integers(2, 40),
    st.sampled_from([0.02, 0.05, 0.2, 1.0]),
    st.floats(1.0, 4.0),
)
def test_matches_a_from_scratch_reference(noise: list[int], warmup: int, alpha: float, sigma: float) -> None:
    """The rolling window agrees with recomputing everything from the full history."""
    values = [float(v) + 0.37 * i for i, v in enumerate(noise)]
    d = AnomalyDetector(sigma=sigma, alpha=alpha, warmup=warmup, clock=ManualClock())
    got = [i for i, v in enumerate(values) if d.observe("m", v) is not None]
    assert got == reference_flags(values, warmup, alpha, sigma)
