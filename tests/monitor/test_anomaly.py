"""Anomaly detection: known outliers are flagged, stationary noise is not."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.monitor.anomaly import AnomalyDetector
from sluiceway.testing import ManualClock

WARMUP = 30


def detector() -> AnomalyDetector:
    return AnomalyDetector(sigma=2.5, alpha=0.05, warmup=WARMUP, clock=ManualClock())


@pytest.mark.parametrize("seed", range(10))
def test_no_flags_on_bounded_stationary_noise(seed: int) -> None:
    """Uniform noise around a constant level (|x - mean| <= 1.73σ) is never flagged, over 2,000 samples."""
    rng = random.Random(seed)
    d = detector()
    flagged = [d.observe("latency", 100.0 + rng.uniform(-5.0, 5.0)) for _ in range(2000)]
    assert not any(flagged)


@pytest.mark.parametrize("seed", range(10))
def test_known_outliers_are_flagged(seed: int) -> None:
    """Spikes of 10σ injected at known positions into noise are each flagged, and nothing else is."""
    rng = random.Random(seed)
    outliers = set(rng.sample(range(WARMUP + 10, 1000), 12))
    d = detector()
    flagged = set()
    for i in range(1000):
        value = 100.0 + rng.uniform(-5.0, 5.0)
        if i in outliers:
            value += rng.choice([-1, 1]) * 30.0  # the noise's σ is 5/√3 ≈ 2.9
        if d.observe("latency", value) is not None:
            flagged.add(i)
    assert flagged == outliers
    assert d.total == len(outliers)


def test_nothing_flagged_during_warmup() -> None:
    """The first `warmup` samples build the baseline and are never flagged, however wild."""
    d = detector()
    assert all(d.observe("m", v) is None for v in [1.0, 1000.0, 2.0, 5000.0] * 5)


def test_level_shift_becomes_the_new_normal() -> None:
    """After a lasting jump the detector stops flagging the new level."""
    rng = random.Random(1)
    d = detector()
    for _ in range(200):
        d.observe("m", 10.0 + rng.uniform(-1, 1))
    late = [d.observe("m", 50.0 + rng.uniform(-1, 1)) for _ in range(300)][-100:]
    assert not any(late)


def test_anomaly_carries_its_score_and_time() -> None:
    """A flagged sample reports the baseline it was judged against and when."""
    clock = ManualClock(100.0)
    d = AnomalyDetector(sigma=2.5, alpha=0.05, warmup=WARMUP, clock=clock)
    for i in range(50):
        d.observe("m", 10.0 + (i % 2))
    anomaly = d.observe("m", 30.0)
    assert anomaly is not None
    assert anomaly.at == 100.0 and anomaly.metric == "m"
    assert anomaly.score > 2.5 and 10.0 <= anomaly.mean <= 11.0


@given(st.floats(min_value=-1e6, max_value=1e6), st.integers(min_value=WARMUP, max_value=200))
def test_constant_series_never_flagged(level: float, n: int) -> None:
    """A perfectly flat series has zero variance yet is never flagged (relative floor on σ)."""
    d = detector()
    assert not any(d.observe("m", level) for _ in range(n))


def test_rejects_non_finite_values() -> None:
    """A NaN sample is refused with an error naming the metric."""
    with pytest.raises(ValueError, match="latency"):
        detector().observe("latency", float("nan"))
