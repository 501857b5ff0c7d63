"""The stages after the engine, as the monitor sees them: the reply latency tenants feel, the sender, the cache.

The engine's figures say how fast handlers run; a tenant waits for more than that: the webhook is
answered, the handler runs, the reply queues in the sender (paced by Meta's rate limits, retried
through outages and 429s) until WhatsApp takes it. The runtime measures that whole wait per reply
(``PerformanceMonitor.record_reply_latency``) and hands the sender's and the cache's totals over
once per collection (a ``PipelineSample`` from the source given to ``set_pipeline``). This module
turns them into dashboard series, the report's ``pipeline`` part and the values two alerts watch:
the reply latency's p95 and the sender's error rate (failed attempts, retried or given up, over all
attempts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from sluiceway.histogram import LatencyHistogram
from sluiceway.monitor.report import BREAKER_LEVELS, PipelineReport, PipelineSample
from sluiceway.monitor.windows import SlidingWindow, Slot, latency_window


def sender_error_percent(before: PipelineSample | None, after: PipelineSample) -> float:
    """Failed attempts (retried or given up) / all attempts between two samples, in percent."""
    base = before if before is not None else PipelineSample()
    failed = (after.sender_retries - base.sender_retries) + (after.sender_failed - base.sender_failed)
    attempts = failed + after.sender_sent - base.sender_sent
    return 100.0 * failed / attempts if attempts > 0 else 0.0


def cache_hit_percent(sample: PipelineSample) -> float:
    """Cache hits / lookups since start, in percent (0 before any lookup)."""
    lookups = sample.cache_hits + sample.cache_misses
    return 100.0 * sample.cache_hits / lookups if lookups else 0.0


class PipelineTracker:
    """Reply latencies and pipeline samples between collections, kept in windows of ``spans`` seconds."""

    def __init__(self, spans: Sequence[float]) -> None:
        self.source: Callable[[], PipelineSample] | None = None
        self._histogram = LatencyHistogram()
        self.cumulative = LatencyHistogram()
        self._windows = [SlidingWindow(span) for span in spans]
        self._since_check = SlidingWindow(math.inf)
        self._last: PipelineSample | None = None
        self._at_check: PipelineSample | None = None
        self._error_percent = 0.0

    def record(self, seconds: float) -> None:
        """One reply WhatsApp took, ``seconds`` after its webhook arrived."""
        self._histogram.record(seconds)

    def collect(self, now: float, slot_start: float, elapsed: float) -> dict[str, float]:
        """Close the slot since ``slot_start``; the dashboard points of the pipeline at ``now``."""
        histogram, self._histogram = self._histogram, LatencyHistogram()
        slot = Slot(now, histogram, histogram.count, 0, None)
        self.cumulative.merge(histogram)
        for window in self._windows:
            window.add(slot, slot_start)
        self._since_check.add(slot, slot_start)
        if self.source is None and not self.cumulative.count:
            return {}
        recent = self._windows[0].histogram
        points = {
            "reply_latency_p50": recent.quantile(0.5),
            "reply_latency_p95": recent.quantile(0.95),
            "reply_latency_p99": recent.quantile(0.99),
        }
        if self.source is None:
            return points
        sample = self.source()
        before = self._last if self._last is not None else PipelineSample()
        self._error_percent = sender_error_percent(self._last, sample)
        self._last = sample
        per_second = 1.0 / max(elapsed, 1e-9)
        points |= {
            "sender_queue": float(sample.sender_queued),
            "sender_error_rate_percent": self._error_percent,
            "sender_retries_per_second": (sample.sender_retries - before.sender_retries) * per_second,
            "throttle_events_per_second": (sample.throttle_events - before.throttle_events) * per_second,
            "pair_rate_holds_per_second": (sample.pair_rate_holds - before.pair_rate_holds) * per_second,
            "breaker": BREAKER_LEVELS[sample.breaker],
            "cache_hit_rate_percent": cache_hit_percent(sample),
        }
        return points

    def check(self) -> tuple[float | None, float | None]:
        """The reply latency's p95 and the sender's error rate (percent) since the last check; None: not measured."""
        window, self._since_check = self._since_check, SlidingWindow(math.inf)
        reply_p95 = window.histogram.quantile(0.95) if window.histogram.count else None
        if self._last is None:
            return reply_p95, None
        error_percent = sender_error_percent(self._at_check, self._last)
        self._at_check = self._last
        return reply_p95, error_percent

    def report(self) -> PipelineReport | None:
        """The report's pipeline part, or None when nothing after the engine is watched."""
        if self.source is None and not self.cumulative.count:
            return None
        sample = self._last if self._last is not None else PipelineSample()
        return PipelineReport(
            sample=sample,
            reply_latency=[latency_window(w) for w in self._windows],
            replies_timed=self.cumulative.count,
            sender_error_rate_percent=self._error_percent,
            cache_hit_rate_percent=cache_hit_percent(sample),
        )
