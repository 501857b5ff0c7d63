"""Anomaly detection: per-metric EWMA mean and variance, samples beyond ``sigma`` σ flagged.

The first ``warmup`` samples seed the baseline with their plain mean and variance
(Welford). After that, a sample farther than ``sigma`` standard deviations from the
exponentially weighted mean of the samples before it is an anomaly. The variance
moves ``VARIANCE_ALPHA_RATIO`` times slower than the mean: a variance estimate needs
more samples to settle than a mean, and a jumpy one shrinks in calm stretches and
then flags ordinary noise. The baseline then
learns from the sample *clipped* to ``mean ± sigma·σ`` (winsorised), so a single spike
does not inflate the variance enough to hide the next one, while a lasting level shift
still widens the band step by step until it becomes the new normal.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import msgspec

#: A deviation smaller than this fraction of the mean is never an anomaly (flat series, float noise).
MIN_RELATIVE_STD = 0.01
#: The variance's EWMA weight relative to the mean's (slower = steadier band).
VARIANCE_ALPHA_RATIO = 0.4
#: Recent anomalies kept for the report.
RECENT_ANOMALIES_KEPT = 100


class Anomaly(msgspec.Struct, kw_only=True):
    """A sample that lay ``score`` standard deviations from its metric's recent mean."""

    metric: str
    at: float
    value: float
    mean: float
    std: float
    score: float


class EwmaBaseline:
    """Mean and variance of one metric: plain (Welford) for ``warmup`` samples, then EWMA."""

    __slots__ = ("alpha", "count", "mean", "variance", "warmup")

    def __init__(self, alpha: float, warmup: int) -> None:
        self.alpha = alpha
        self.warmup = warmup
        self.count = 0
        self.mean = 0.0
        self.variance = 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    def update(self, value: float) -> None:
        diff = value - self.mean
        if self.count < self.warmup:
            self.count += 1
            self.mean += diff / self.count
            self.variance += (diff * (value - self.mean) - self.variance) / self.count
            return
        self.count += 1
        self.mean += self.alpha * diff
        variance_alpha = self.alpha * VARIANCE_ALPHA_RATIO
        self.variance = (1.0 - variance_alpha) * (self.variance + variance_alpha * diff * diff)


class AnomalyDetector:
    """Flags samples far from each metric's EWMA baseline.

    Example::

        detector = AnomalyDetector(sigma=2.5, alpha=0.05, warmup=30, clock=clock)
        for value in series:
            if (anomaly := detector.observe("throughput", value)) is not None:
                print(anomaly.score)

    Warning:
        A 2.5σ band flags about 1% of samples of Gaussian noise by construction; the
        band is about spotting changes in behaviour, so alert on anomalies that
        persist rather than on a single flag.
    """

    def __init__(
        self, sigma: float = 2.5, alpha: float = 0.05, warmup: int = 30, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        if warmup < 2:
            raise ValueError(f"warmup must be >= 2, got {warmup!r}")
        self._sigma, self._alpha, self._warmup, self._clock = sigma, alpha, warmup, clock
        self._baselines: dict[str, EwmaBaseline] = {}
        self.recent: deque[Anomaly] = deque(maxlen=RECENT_ANOMALIES_KEPT)
        self.total = 0

    def observe(self, metric: str, value: float) -> Anomaly | None:
        """Score ``value`` against ``metric``'s baseline, then learn from it; the anomaly if flagged."""
        if not math.isfinite(value):
            raise ValueError(f"{metric}: an observed value must be finite, got {value!r}")
        baseline = self._baselines.get(metric)
        if baseline is None:
            baseline = self._baselines[metric] = EwmaBaseline(self._alpha, self._warmup)
        anomaly = None
        learned = value
        if baseline.count >= self._warmup:
            std = max(baseline.std, abs(baseline.mean) * MIN_RELATIVE_STD, 1e-12)
            score = (value - baseline.mean) / std
            if abs(score) > self._sigma:
                anomaly = Anomaly(
                    metric=metric, at=self._clock(), value=value, mean=baseline.mean, std=std, score=score
                )
                self.recent.append(anomaly)
                self.total += 1
                learned = baseline.mean + math.copysign(self._sigma * std, score)
        baseline.update(learned)
        return anomaly
