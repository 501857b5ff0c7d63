"""The monitor's HTTP face (in the monitor process): ``/metrics``, ``/status`` and the dashboard.

``/metrics`` is rendered by ``prometheus_client`` from a custom collector that reads the
latest snapshot, so nothing is counted twice and scrapes cost the supervisor nothing. It passes
``promtool check metrics``: windowed latency quantiles are gauges named per quantile
(``sluiceway_message_latency_p99_seconds{window="60s"}``), since Prometheus reserves the
``quantile`` label for summaries; the ``sluiceway_message_latency_seconds`` histogram is the one
to aggregate across instances (``histogram_quantile``).
``/status`` is the latest report plus the dashboard's recent series as JSON; ``/``
serves the dashboard, whose assets ship in ``sluiceway/monitor/static``.
"""

from __future__ import annotations

import mimetypes
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sluiceway.histogram import LatencyHistogram
from sluiceway.http import Request, Response
from sluiceway.http.routes import Routes
from sluiceway.monitor.report import BREAKER_LEVELS, ResourceSample
from sluiceway.monitor.wire import Publish

#: Points per dashboard series (at a 5 s interval: the last 25 minutes).
DASHBOARD_POINTS = 300
#: Upper bounds (seconds) of the ``sluiceway_message_latency_seconds`` histogram buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")


class ExpositionState:
    """What the endpoints serve: the latest snapshot and sample, and the recent series."""

    def __init__(self) -> None:
        self.publish: Publish | None = None
        self.sample: ResourceSample | None = None
        self.series: dict[str, deque[tuple[float, float]]] = {}

    def update(self, publish: Publish) -> None:
        self.publish = publish
        for name, value in publish.points.items():
            series = self.series.get(name)
            if series is None:
                series = self.series[name] = deque(maxlen=DASHBOARD_POINTS)
            series.append((publish.report.at, value))


def _label_name(name: str) -> str:
    """A custom metric's label (already a valid name, ``record_metric`` checks) as Prometheus accepts it on
    a gauge: ``le`` and ``quantile`` (reserved for histograms and summaries) and names starting ``__``
    (reserved for Prometheus itself) get a ``label_`` prefix, so none is dropped or breaks the scrape."""
    return "label_" + name if name in ("le", "quantile") or name.startswith("__") else name


def latency_buckets(histogram: LatencyHistogram) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets (``le`` bound, count) from a log-bucketed histogram.

    A count at a bound is exact up to the histogram's relative error.
    """
    counts = histogram.cumulative_counts(LATENCY_BUCKETS)
    result = [(repr(bound), float(n)) for bound, n in zip(LATENCY_BUCKETS, counts, strict=True)]
    result.append(("+Inf", float(histogram.count)))
    return result


class SnapshotCollector:
    """A ``prometheus_client`` collector over an ``ExpositionState``."""

    def __init__(self, state: ExpositionState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        publish = self._state.publish
        if publish is not None:
            yield from self._engine_metrics(publish)
        sample = self._state.sample
        if sample is not None:
            yield from self._resource_metrics(sample)

    def _engine_metrics(self, publish: Publish) -> Iterator[Metric]:
        report = publish.report
        for name, doc, value in (
            ("sluiceway_messages_completed", "Messages whose handler succeeded.", report.completed_total),
            ("sluiceway_messages_failed", "Handler attempts that failed.", report.failed_total),
            (
                "sluiceway_messages_dead_lettered",
                "Messages dead-lettered after their last attempt.",
                report.dead_lettered_total,
            ),
            ("sluiceway_anomalies", "Samples flagged as anomalies.", report.anomalies_total),
            ("sluiceway_scaling_decisions", "Worker-count changes made by the autoscaler.", report.scaling_total),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        depth = GaugeMetricFamily("sluiceway_queue_depth", "Messages waiting, per priority.", labels=["priority"])
        for priority, n in enumerate(report.queue_depths):
            depth.add_metric([str(priority)], n)
        yield depth
        yield GaugeMetricFamily(
            "sluiceway_messages_in_flight", "Messages handed to workers and not yet settled.", value=report.in_flight
        )
        yield GaugeMetricFamily("sluiceway_workers", "Live worker processes.", value=report.workers)
        points = publish.points
        if "journal_bytes" in points:  # an engine with a journal
            yield GaugeMetricFamily(
                "sluiceway_journal_bytes",
                "The engine journal's size (database and WAL).",
                value=points["journal_bytes"],
            )
            yield GaugeMetricFamily(
                "sluiceway_journal_pending_messages",
                "Unfinished messages the journal holds.",
                value=points["journal_pending"],
            )
        yield GaugeMetricFamily(
            "sluiceway_error_ratio",
            "Failed attempts / all attempts over the last check.",
            value=report.error_rate_percent / 100,
        )
        rate = GaugeMetricFamily(
            "sluiceway_throughput_messages_per_second", "Messages finished per second.", labels=["window"]
        )
        for window in report.throughput:
            rate.add_metric([f"{window.window:g}s"], window.rate)
        yield rate
        # One gauge per quantile, not one with a ``quantile`` label: Prometheus reserves that label
        # for summaries (promtool rejects it elsewhere), and these windowed quantiles are not a
        # summary (no _sum/_count per window). Aggregate across instances with the histogram below.
        for name in ("p50", "p95", "p99"):  # fields of each window's latency report
            quantile = GaugeMetricFamily(
                f"sluiceway_message_latency_{name}_seconds",
                f"Message latency (enqueue to done), {name} over the last window.",
                labels=["window"],
            )
            for w in report.latency:
                quantile.add_metric([f"{w.window:g}s"], getattr(w, name))
            yield quantile
        histogram = LatencyHistogram.from_wire(publish.latency)
        yield HistogramMetricFamily(
            "sluiceway_message_latency_seconds",
            "Message latency (enqueue to done) since the monitor started.",
            buckets=latency_buckets(histogram),
            sum_value=histogram.sum,
        )
        alerts = GaugeMetricFamily("sluiceway_alert_active", "1 per active alert.", labels=["metric", "level"])
        for alert in report.alerts:
            alerts.add_metric([alert.metric, alert.level.lower()], 1)
        yield alerts
        yield from self._pipeline_metrics(publish)
        yield from self._custom_metrics(publish)
        yield from _source_metrics(publish.report.sources)

    def _pipeline_metrics(self, publish: Publish) -> Iterator[Metric]:
        """The reply latency tenants feel, the sender and the cache (when the runtime watches them)."""
        pipeline = publish.report.pipeline
        if pipeline is None:
            return
        for name in ("p50", "p95", "p99"):
            quantile = GaugeMetricFamily(
                f"sluiceway_reply_latency_{name}_seconds",
                f"Reply latency (webhook in to reply taken by WhatsApp), {name} over the last window.",
                labels=["window"],
            )
            for w in pipeline.reply_latency:
                quantile.add_metric([f"{w.window:g}s"], getattr(w, name))
            yield quantile
        if publish.reply_latency is not None:
            histogram = LatencyHistogram.from_wire(publish.reply_latency)
            yield HistogramMetricFamily(
                "sluiceway_reply_latency_seconds",
                "Reply latency (webhook in to reply taken by WhatsApp) since the monitor started.",
                buckets=latency_buckets(histogram),
                sum_value=histogram.sum,
            )
        sample = pipeline.sample
        yield GaugeMetricFamily(
            "sluiceway_sender_queue_messages",
            "Replies not yet taken by WhatsApp (queued, on the wire, waiting to be retried).",
            value=sample.sender_queued,
        )
        for name, doc, value in (
            ("sluiceway_sender_sent", "Replies WhatsApp took.", sample.sender_sent),
            ("sluiceway_sender_failed", "Replies the sender gave up on.", sample.sender_failed),
            (
                "sluiceway_sender_retries",
                "Send attempts that failed transiently and were retried.",
                sample.sender_retries,
            ),
            ("sluiceway_sender_throttle_events", "Throughput and pair-rate refusals (429s).", sample.throttle_events),
            (
                "sluiceway_sender_pair_rate_holds",
                "Recipients held back a window after a pair-rate refusal.",
                sample.pair_rate_holds,
            ),
            ("sluiceway_cache_hits", "Sheets cache lookups answered from the cache.", sample.cache_hits),
            ("sluiceway_cache_misses", "Sheets cache lookups that went to the Sheets API.", sample.cache_misses),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "sluiceway_sender_error_ratio",
            "The sender's failed attempts (retried or given up) / all its attempts over the last interval.",
            value=pipeline.sender_error_rate_percent / 100,
        )
        breaker = GaugeMetricFamily(
            "sluiceway_sender_breaker_state", "1 for the circuit breaker's current state.", labels=["state"]
        )
        for state in BREAKER_LEVELS:
            breaker.add_metric([state], 1.0 if state == sample.breaker else 0.0)
        yield breaker
        yield GaugeMetricFamily(
            "sluiceway_cache_hit_ratio",
            "Sheets cache hits / lookups since start (each hit is a Sheets API request saved).",
            value=pipeline.cache_hit_rate_percent / 100,
        )

    def _custom_metrics(self, publish: Publish) -> Iterator[Metric]:
        by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
        for metric in publish.report.custom:
            name = "sluiceway_custom_" + _INVALID_NAME_CHARS.sub("_", metric.name)
            by_name.setdefault(name, []).append((metric.labels, metric.value))
        for name, values in by_name.items():
            label_names = sorted({k for labels, _ in values for k in labels})
            family = GaugeMetricFamily(
                name, "Recorded with PerformanceMonitor.record_metric.", labels=[_label_name(k) for k in label_names]
            )
            for labels, value in values:
                family.add_metric([labels.get(k, "") for k in label_names], value)
            yield family

    def _resource_metrics(self, sample: ResourceSample) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "sluiceway_process_cpu_seconds", "CPU time of each engine process.", labels=["pid", "role"]
        )
        rss = GaugeMetricFamily(
            "sluiceway_process_resident_memory_bytes", "Resident memory of each engine process.", labels=["pid", "role"]
        )
        share = GaugeMetricFamily(
            "sluiceway_process_cpu_utilization_ratio",
            "Share of one core used since the last sample.",
            labels=["pid", "role"],
        )
        for p in sample.processes:
            labels = [str(p.pid), p.role]
            cpu.add_metric(labels, p.cpu_seconds)
            rss.add_metric(labels, p.rss_bytes)
            share.add_metric(labels, p.cpu_percent / 100)
        yield from (cpu, rss, share)
        m = sample.machine
        yield GaugeMetricFamily(
            "sluiceway_machine_cpu_utilization_ratio", "Machine CPU in use (all cores).", value=m.cpu_percent / 100
        )
        yield GaugeMetricFamily(
            "sluiceway_machine_memory_utilization_ratio", "Machine memory in use.", value=m.memory_percent / 100
        )


def _source_metrics(sources: dict[str, Any]) -> Iterator[Metric]:
    """Each ``add_source`` statistic as a gauge ``sluiceway_<source>_<name>`` (e.g. the sender's ``failed``),
    a text one (the breaker's state) as ``sluiceway_<source>_<name>{state="..."} 1``."""
    for source, stats in sorted(sources.items()):
        if not isinstance(stats, dict):
            continue
        for key, value in sorted(stats.items()):
            name = f"sluiceway_{_INVALID_NAME_CHARS.sub('_', source)}_{_INVALID_NAME_CHARS.sub('_', str(key))}"
            doc = f"The {source}'s statistic {key!r} (PerformanceMonitor.add_source)."
            if isinstance(value, bool | int | float):
                yield GaugeMetricFamily(name, doc, value=float(value))
            elif isinstance(value, str):
                family = GaugeMetricFamily(name, doc, labels=["state"])
                family.add_metric([value], 1.0)
                yield family


def build_routes(state: ExpositionState) -> Routes:
    """The endpoints serving ``state``, for ``sluiceway.http.HttpServer``.

    Example::

        server = HttpServer(build_routes(state).handle)
        await server.start("127.0.0.1", 9464)
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(state))
    encoder = msgspec.json.Encoder()

    async def metrics(_: Request) -> Response:
        return Response(200, generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    async def status(_: Request) -> Response:
        body = {
            "report": state.publish.report if state.publish else None,
            "resources": state.sample,
            "series": {name: list(points) for name, points in state.series.items()},
        }
        return Response(200, encoder.encode(body), content_type="application/json")

    routes = Routes()
    routes.add("GET", "/metrics", metrics)
    routes.add("GET", "/status", status)
    # The dashboard's few small assets, read once: only these names are served, so no path can escape the folder.
    for asset in sorted(STATIC_DIR.iterdir()):
        if asset.is_file():
            endpoint = _static(asset)
            routes.add("GET", f"/static/{asset.name}", endpoint)
            if asset.name == "index.html":
                routes.add("GET", "/", endpoint)
    return routes


def _static(asset: Path) -> Callable[[Request], Awaitable[Response]]:
    content_type = mimetypes.guess_type(asset.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type.endswith("javascript"):
        content_type += "; charset=utf-8"
    answer = Response(200, asset.read_bytes(), content_type=content_type)

    async def serve(_: Request) -> Response:
        return answer

    return serve
