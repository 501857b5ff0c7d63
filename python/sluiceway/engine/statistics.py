"""The engine's figures: the ``Statistics`` snapshot and the meters behind it."""

from __future__ import annotations

from collections import deque

import msgspec

from sluiceway.histogram import LatencyHistogram

#: Throughput windows reported, in seconds.
THROUGHPUT_WINDOWS = (1.0, 10.0, 60.0)
#: Latency quantiles cover roughly this many seconds (in LATENCY_SLICES rotating slices).
LATENCY_WINDOW = 60.0
#: How many histograms the latency window rotates through.
LATENCY_SLICES = 6


class WorkerStatistics(msgspec.Struct, frozen=True):
    """One worker process's figures; handler latencies are the worker's own measurements."""

    pid: int
    index: int
    state: str
    in_flight: int
    #: Messages it may hold now (see ``ParallelizerConfig.prefetch_window``).
    prefetch: int
    completed: int
    failed_attempts: int
    rss_bytes: int
    handler_p50: float
    handler_p99: float


class Statistics(msgspec.Struct, frozen=True):
    """A snapshot of a running engine (``MessageParallelizer.get_statistics()``).

    Counters are totals since ``start()``. ``queue_depths`` counts messages waiting in the
    priority queue per ``Priority``; ``queued`` adds those parked behind their ordering key,
    waiting out a retry backoff, or waiting to be re-run alone after a worker crash.
    Throughputs are completions per second over the last 1, 10 and 60 seconds; latencies are
    enqueue-to-done seconds over about the last minute. ``worker_start_seconds`` is the median
    time recent workers took from spawn to ready (0.0 before any): how long a scale-up takes.
    ``journal_bytes`` (database plus write-ahead log) and ``journal_pending`` (unfinished
    messages it holds) are read each ``statistics_interval``; 0 without a journal.
    """

    enqueued: int
    completed: int
    failed_attempts: int
    retried: int
    dead_lettered: int
    in_flight: int
    queued: int
    queue_depths: list[int]
    backpressure: bool
    worker_count: int
    workers: list[WorkerStatistics]
    throughput_1s: float
    throughput_10s: float
    throughput_60s: float
    latency_p50: float
    latency_p95: float
    latency_p99: float
    uptime: float
    worker_start_seconds: float = 0.0
    journal_bytes: int = 0
    journal_pending: int = 0


class ThroughputMeter:
    """Completions per second over trailing windows, from (time, total) samples.

    Example::

        meter = ThroughputMeter()
        meter.sample(0.0, 0); meter.sample(1.0, 500)
        meter.rate(1.0, 1.0)    # 500.0
    """

    def __init__(self, horizon: float = max(THROUGHPUT_WINDOWS)) -> None:
        self._horizon = horizon
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, total: int) -> None:
        """Record that ``total`` completions had happened by ``now``."""
        self._samples.append((now, total))
        # Keep one sample at or beyond the horizon so the longest window stays measurable.
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._horizon:
            self._samples.popleft()

    def rate(self, now: float, window: float) -> float:
        """Completions per second over the last ``window`` seconds (0.0 before two samples)."""
        if len(self._samples) < 2:
            return 0.0
        latest_time, latest_total = self._samples[-1]
        base_time, base_total = self._samples[0]
        for sample_time, sample_total in reversed(self._samples):
            base_time, base_total = sample_time, sample_total
            if latest_time - sample_time >= window:
                break
        elapsed = latest_time - base_time
        return (latest_total - base_total) / elapsed if elapsed > 0 else 0.0


class LatencyWindow:
    """Quantiles over roughly the last ``LATENCY_WINDOW`` seconds, in rotating slices."""

    def __init__(self, start: float) -> None:
        self._slices: deque[LatencyHistogram] = deque([LatencyHistogram()])
        self._slice_started = start
        self.current = self._slices[-1]

    def rotate(self, now: float) -> None:
        """Start a new slice when the current one is old enough; drop the oldest beyond the window."""
        if now - self._slice_started >= LATENCY_WINDOW / LATENCY_SLICES:
            self._slice_started = now
            self.current = LatencyHistogram()
            self._slices.append(self.current)
            while len(self._slices) > LATENCY_SLICES:
                self._slices.popleft()

    def merged(self) -> LatencyHistogram:
        total = LatencyHistogram()
        for histogram in self._slices:
            total.merge(histogram)
        return total
