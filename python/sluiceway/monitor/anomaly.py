"""Anomaly detection: samples far from their metric's local trend are flagged, trends themselves are not.

A queue that drains, a latency that climbs while a backlog builds, a throughput that
ramps up: these move steadily, and a detector comparing samples with a (lagging) mean
flags every one of them. So each metric keeps its last ``window`` samples (the span of an
EWMA of weight ``alpha``: 39 at 0.05) and fits a least-squares line through them; the
next sample is expected on that line, one step on.

**What σ is.** The spread of the window's samples around their line: the larger of
1.4826 × their median absolute residual (MAD, which a spike in the window does not move)
and √(π/2) × their mean absolute residual (the MAD is zero for a quantised series that
sits on one value most of the time); both equal the standard deviation for Gaussian
noise. It never drops below an EWMA (weight ``alpha``) of the previous windows' σ,
since 39 samples can happen to be calm, or happen to line up into a slope that
explains their noise.

**What is flagged.** The band of ordinary values is ``sigma`` σ around the line's next
value, widened by the line's own uncertainty one step past the window (a prediction
interval: ×1.05 for 39 samples). A sample outside the band is an anomaly unless it merely
carries on from the last samples: it lies within the band around the previous sample,
around the previous sample plus the fitted slope, or, if the previous sample was off the
line too (a new course rather than noise), around the straight continuation of the last
two. So the first sample of a spike, a step or a bend is flagged, and the samples that
carry on from it are the new behaviour, not one anomaly each until the line catches up
(a backlog that drains to zero and stays there raises none). A flagged sample is learned
at the band's edge, so a spike does not tilt the line the next samples are judged against.

σ never falls below ``MIN_RELATIVE_STD`` of the magnitude of the window or of the sample,
nor below ``MIN_STD``: a flat series with float-sized noise has a σ of (nearly) zero, and
without a floor any wobble would be "infinitely many σ" away.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence

import msgspec

#: σ is at least this fraction of the window's median magnitude or of the sample's (float noise)...
MIN_RELATIVE_STD = 0.01
#: ...and at least this, for series that sit at zero.
MIN_STD = 1e-9
#: 1 / Φ⁻¹(3/4): turns a median absolute deviation into a standard deviation for Gaussian noise.
MAD_TO_STD = 1.4826
#: √(π/2): turns a mean absolute deviation into a standard deviation for Gaussian noise.
MEAN_ABS_TO_STD = math.sqrt(math.pi / 2.0)
#: The shortest fit window whatever ``alpha``: fewer samples make the line and σ erratic.
MIN_WINDOW = 8
#: Recent anomalies kept for the report.
RECENT_ANOMALIES_KEPT = 100


class Anomaly(msgspec.Struct, kw_only=True):
    """A sample that lay ``score`` σ from the value its metric's recent trend expected (``mean``)."""

    metric: str
    at: float
    value: float
    #: The value the local trend line expected at this sample.
    mean: float
    #: The robust σ of the window's samples around that line (with its floors); ``score`` counts these.
    std: float
    score: float


class Expectation(msgspec.Struct, frozen=True):
    """What a metric's window expects of its next sample: the trend value, its slope per sample, σ, the band."""

    value: float
    slope: float
    std: float
    #: Half-width of the band of ordinary values around ``value``, in units of ``std``: 1 plus the fit's own
    #: uncertainty one sample past the window (a prediction interval), so sigma·std·spread is the band.
    spread: float


def fit_window_length(alpha: float) -> int:
    """Samples in the fit window for an EWMA weight ``alpha``: the span ``2/alpha - 1`` (39 at 0.05)."""
    return max(MIN_WINDOW, round(2.0 / alpha) - 1)


def expect_next(window: Sequence[float]) -> Expectation:
    """The least-squares line through ``window`` (at least two evenly spaced samples) one sample on."""
    n = len(window)
    mid = (n - 1) / 2.0
    mean = math.fsum(window) / n
    sxx = n * (n * n - 1) / 12.0
    slope = math.fsum((i - mid) * (v - mean) for i, v in enumerate(window)) / sxx
    residuals = [abs(v - mean - slope * (i - mid)) for i, v in enumerate(window)]
    typical = statistics.median(abs(v) for v in window)
    std = max(
        MAD_TO_STD * statistics.median(residuals),
        MEAN_ABS_TO_STD * math.fsum(residuals) / n,
        MIN_RELATIVE_STD * typical,
        MIN_STD,
    )
    ahead = n - mid
    return Expectation(mean + slope * ahead, slope, std, math.sqrt(1.0 + 1.0 / n + ahead * ahead / sxx))


class MetricWindow:
    """One metric's recent samples as the line learns them, and its last two samples as observed."""

    __slots__ = ("before", "last", "last_off_line", "learned", "seen", "std_memory")

    def __init__(self, length: int) -> None:
        self.learned: deque[float] = deque(maxlen=length)
        self.last = self.before = 0.0
        self.last_off_line = False
        self.seen = 0
        #: EWMA of the window's σ: a window that happens to be calm must not shrink the band at once.
        self.std_memory: float | None = None

    def continuations(self, slope: float) -> tuple[float, ...]:
        """Where the series goes if it carries on from its last samples (see the module doc)."""
        if self.last_off_line:
            return (self.last, self.last + slope, 2.0 * self.last - self.before)
        return (self.last, self.last + slope)

    def add(self, observed: float, learned: float, off_line: bool) -> None:
        self.learned.append(learned)
        self.before, self.last = self.last, observed
        self.last_off_line = off_line
        self.seen += 1


class AnomalyDetector:
    """Flags samples far from each metric's local trend (see the module doc).

    Example::

        detector = AnomalyDetector(sigma=2.5, alpha=0.05, warmup=30, clock=clock)
        for value in series:
            if (anomaly := detector.observe("throughput", value)) is not None:
                print(anomaly.score)

    Warning:
        Gaussian noise lies beyond 2.5σ about 1% of the time, so a noisy metric is flagged
        now and then by construction; alert on anomalies that persist rather than on a
        single flag. Samples are taken as evenly spaced in time (one per collection). A
        spike is surely caught once it lies ``sigma`` σ beyond the trend *and* beyond the
        previous sample's own noise (a few σ more): the price of not flagging a series that
        merely carries on from where it went.
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
        self._window_length = fit_window_length(alpha)
        self._windows: dict[str, MetricWindow] = {}
        self.recent: deque[Anomaly] = deque(maxlen=RECENT_ANOMALIES_KEPT)
        self.total = 0

    def observe(self, metric: str, value: float) -> Anomaly | None:
        """Score ``value`` against ``metric``'s recent trend, then learn from it; the anomaly if flagged."""
        if not math.isfinite(value):
            raise ValueError(f"{metric}: an observed value must be finite, got {value!r}")
        window = self._windows.get(metric)
        if window is None:
            window = self._windows[metric] = MetricWindow(self._window_length)
        if window.seen < self._warmup:
            window.add(value, value, off_line=False)
            return None
        expected = expect_next(window.learned)
        memory = window.std_memory if window.std_memory is not None else expected.std
        # The floor relative to magnitude also counts the new sample: a series stepping from
        # zero onto a level with float-sized noise must not alarm on every wobble of it.
        std = max(expected.std, memory, MIN_RELATIVE_STD * abs(value))
        window.std_memory = memory + self._alpha * (expected.std - memory)
        band = self._sigma * std * expected.spread
        deviation = value - expected.value
        if abs(deviation) <= band:
            window.add(value, value, off_line=False)
            return None
        if any(abs(value - c) <= band for c in window.continuations(expected.slope)):
            window.add(value, value, off_line=True)
            return None
        # The fit learns the flagged sample at the band's edge: a spike must not tilt the line
        # it is judged against next, while a lasting change still arrives through the samples
        # that continue it (learned as they are).
        window.add(value, expected.value + math.copysign(band, deviation), off_line=True)
        anomaly = Anomaly(
            metric=metric,
            at=self._clock(),
            value=value,
            mean=expected.value,
            std=std,
            score=deviation / std,
        )
        self.recent.append(anomaly)
        self.total += 1
        return anomaly
