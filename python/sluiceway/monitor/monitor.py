"""The PerformanceMonitor: measures the engine, raises alerts and anomalies, and drives the worker count.

It lives in the supervisor as an ``EngineHooks``. The per-message path
(``record_message_latency``, the engine's ``LatencyDelta`` events) only adds to an in-memory
histogram; once per ``metric_collection_interval`` a collection closes that slot,
updates windows, history and anomaly baselines, asks the autoscaling policy, and ships
one snapshot to the monitor process, which samples psutil and serves HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

import msgspec

from sluiceway.engine.errors import EngineNotRunning
from sluiceway.engine.hooks import EngineHooks, EngineView, LatencyDelta, Scaled
from sluiceway.engine.statistics import Statistics
from sluiceway.histogram import LatencyHistogram
from sluiceway.monitor.alerts import Alert, AlertLevel, AlertManager
from sluiceway.monitor.anomaly import AnomalyDetector
from sluiceway.monitor.autoscale import AutoscalePolicy, ScalingDecision, ScalingInputs
from sluiceway.monitor.config import MonitorConfig
from sluiceway.monitor.events import EventLog
from sluiceway.monitor.history import History, Point
from sluiceway.monitor.pipeline import PipelineTracker
from sluiceway.monitor.process import MonitorProcess
from sluiceway.monitor.profiling import Profile, has_profiler, profile_process
from sluiceway.monitor.report import (
    CustomMetric,
    PipelineSample,
    Report,
    ResourceSample,
    ThroughputWindow,
)
from sluiceway.monitor.windows import SlidingWindow, Slot, latency_window
from sluiceway.monitor.wire import Publish

#: Spans (seconds) of the latency and throughput windows in the report.
WINDOWS = (60.0, 300.0, 900.0)
#: Scaling decisions kept for the report.
SCALING_DECISIONS_KEPT = 50
#: Metrics the anomaly detector watches (all recorded in history too).
WATCHED_METRICS = ("throughput", "latency_p95", "error_rate_percent", "queue_depth", "cpu_percent", "memory_percent")

_METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
log = logging.getLogger("sluiceway.monitor")


class PerformanceMonitor(EngineHooks):
    """Real-time latency, throughput, errors and resources; alerts, anomalies, autoscaling, profiling.

    Attach it to an engine, or use it alone and feed it yourself.

    Example::

        monitor = PerformanceMonitor(MonitorConfig(metric_collection_interval=1.0))
        async with MessageParallelizer("bot.handlers:handle", config, monitor=monitor) as engine:
            ...
            print(monitor.http_url, monitor.current_report().latency[0].p95)

        # alone
        async with PerformanceMonitor() as monitor:
            monitor.record_message_latency("msg-1", 0.120, success=True)

    Warning:
        Latencies are kept in log buckets: every reported percentile is within 1% of the
        exact one, in exchange for constant memory and O(1) recording.
    """

    def __init__(self, config: MonitorConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config = config if config is not None else MonitorConfig()
        self._clock = clock
        now = self._started_at = clock()
        # The per-message state: recorded into until the next collection closes the slot.
        self._histogram = LatencyHistogram()
        self._ok = 0
        self._failed = 0
        self._slowest_id: str | None = None
        self._last_collect = now
        self._windows = [SlidingWindow(span) for span in WINDOWS]
        self._since_check = SlidingWindow(math.inf)
        self._cumulative = LatencyHistogram()
        self._completed_total = 0
        self._failed_total = 0
        #: The engine's statistics as of the last collection.
        self._statistics: Statistics | None = None
        #: The engine's completion and failure totals already counted (its figures when attached).
        self._engine_completed = 0
        self._engine_failed = 0
        self._custom: dict[tuple[str, tuple[tuple[str, str], ...]], CustomMetric] = {}
        self._sources: dict[str, Callable[[], Any]] = {}
        self._history = History(config.history_tiers())
        self._alerts = AlertManager(config.thresholds.hysteresis, clock)
        self._anomalies = AnomalyDetector(config.anomaly_sigma, config.anomaly_alpha, config.anomaly_warmup, clock)
        self._scaling: deque[ScalingDecision] = deque(maxlen=SCALING_DECISIONS_KEPT)
        self._scaling_total = 0
        self._events = EventLog()
        self._pipeline = PipelineTracker(WINDOWS)
        self._policy: AutoscalePolicy | None = None
        self._scaling_task: asyncio.Task[Any] | None = None
        self._engine: EngineView | None = None
        self._resources: ResourceSample | None = None
        self._profile: Profile | None = None
        self._points: dict[str, float] = {}
        self._next_collect = now + config.metric_collection_interval
        self._next_check = now + config.performance_check_interval
        self._process: MonitorProcess | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.http_url: str | None = None

    # -- the per-message path -------------------------------------------------------------

    def record_message_latency(self, message_id: str | None, latency: float, success: bool = True) -> None:
        """Count one handled message: ``latency`` in seconds; ``ValueError`` if negative or not finite."""
        histogram = self._histogram
        histogram.record(latency)
        if latency == histogram.max:
            self._slowest_id = message_id
        if success:
            self._ok += 1
        else:
            self._failed += 1

    def record_metric(self, name: str, value: float, **labels: str) -> None:
        """Set custom gauge ``name`` (a Prometheus-style name) with ``labels`` to ``value``; kept in history."""
        if not _METRIC_NAME.fullmatch(name):
            raise ValueError(f"metric name must match {_METRIC_NAME.pattern}, got {name!r}")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"metric {name!r} needs a finite number, got {value!r}")
        for label in labels:
            if not _METRIC_NAME.fullmatch(label):
                raise ValueError(f"label name must match {_METRIC_NAME.pattern}, got {label!r}")
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        self._custom[key] = CustomMetric(name=name, value=float(value), labels=dict(key[1]))

    def record_reply_latency(self, seconds: float) -> None:
        """Count one reply WhatsApp took, ``seconds`` after its webhook arrived (what the tenant waited)."""
        self._pipeline.record(seconds)

    def set_pipeline(self, get_sample: Callable[[], PipelineSample]) -> None:
        """Watch the stages after the engine: ``get_sample()`` is read once per collection.

        Its figures reach the report's ``pipeline``, the dashboard, ``/metrics`` and two alerts
        (``reply_latency_p95`` and ``sender_error_rate_percent``).
        """
        self._pipeline.source = get_sample

    def mark(self, kind: str, text: str) -> None:
        """Mark an event (e.g. ``"restart"``) now on the charts' time axis and in the report's ``events``."""
        self._events.add(self._clock(), kind, text)

    def add_source(self, name: str, get_statistics: Callable[[], Any]) -> None:
        """Include ``get_statistics()`` (e.g. a cache's or a sender's) in every report under ``name``."""
        self._sources[name] = get_statistics

    # -- engine hooks ----------------------------------------------------------------------

    def on_start(self, engine: EngineView) -> None:
        self._engine = engine
        config = engine.config
        # Counted from here: what the engine completes while the monitor is attached.
        baseline = engine.get_statistics()
        self._engine_completed, self._engine_failed = baseline.completed, baseline.failed_attempts
        if self.config.auto_optimize_enabled and config.enable_auto_scaling:
            self._policy = AutoscalePolicy(
                self.config.autoscale,
                min_workers=config.min_workers,
                max_workers=config.max_workers,
                latency_warning=self.config.thresholds.message_latency_warning,
            )
        if self._loop_task is None:
            self._spawn(self.start())

    async def on_stop(self) -> None:
        await self.stop()

    def on_latencies(self, delta: LatencyDelta) -> None:
        self._histogram.merge(delta.histogram)

    def on_scaled(self, event: Scaled) -> None:
        if self._policy is not None:
            self._policy.note_change(self._clock())
        if not any(d.old == event.old and d.new == event.new for d in list(self._scaling)[-1:]):
            decision = ScalingDecision(at=self._clock(), old=event.old, new=event.new, reason=event.reason)
            self._remember_decision(decision)

    # -- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the monitor process (if configured) and the collection loop."""
        if self._loop_task is not None:
            return
        self._loop_task = asyncio.get_running_loop().create_task(self._run())
        if self.config.monitor_process:
            process = MonitorProcess(self.config, self._on_sample)
            self.http_url = await process.start(os.getpid())
            self._process = process
            log.info("monitor serving %s", self.http_url)

    async def stop(self) -> None:
        """Stop collecting and end the monitor process."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pending in list(self._background):
            pending.cancel()
        if self._process is not None:
            await self._process.stop()
            self._process = None
        self.http_url = None

    async def __aenter__(self) -> PerformanceMonitor:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            self.tick()
            delay = min(self._next_collect, self._next_check) - self._clock()
            await asyncio.sleep(max(0.0, min(delay, self.config.metric_collection_interval)))

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)
        return task

    def _on_sample(self, sample: ResourceSample) -> None:
        self._resources = sample

    def tick(self) -> None:
        """Run the collection and the threshold check if their intervals have passed (by the clock)."""
        now = self._clock()
        if now >= self._next_collect:
            self.collect()
            self._next_collect = max(self._next_collect + self.config.metric_collection_interval, now)
        if now >= self._next_check:
            self.check()
            self._next_check = max(self._next_check + self.config.performance_check_interval, now)

    # -- collection ------------------------------------------------------------------------

    def collect(self) -> None:
        """Close the current slot; update windows, history and anomalies; scale; publish."""
        now = self._clock()
        ok, failed = self._ok, self._failed
        if self._engine is not None:
            # Completions are counted from the engine's settlement: its latency deltas land in
            # the histogram first, then its totals are read, so both cover the same messages.
            self._engine.publish_latencies()
            statistics = self._statistics = self._engine.get_statistics()
            ok += statistics.completed - self._engine_completed
            failed += statistics.failed_attempts - self._engine_failed
            self._engine_completed, self._engine_failed = statistics.completed, statistics.failed_attempts
        slot = Slot(now, self._histogram, ok, failed, self._slowest_id)
        self._histogram, self._ok, self._failed, self._slowest_id = LatencyHistogram(), 0, 0, None
        self._cumulative.merge(slot.histogram)
        self._completed_total += ok
        self._failed_total += failed
        for window in self._windows:
            window.add(slot, self._last_collect)
        self._since_check.add(slot, self._last_collect)
        elapsed = max(now - self._last_collect, 1e-9)
        pipeline_points = self._pipeline.collect(now, self._last_collect, elapsed)
        self._last_collect = now

        recent = self._windows[0]
        points = {
            "throughput": (ok + failed) / elapsed,
            "latency_p50": recent.histogram.quantile(0.5),
            "latency_p95": recent.histogram.quantile(0.95),
            "latency_p99": recent.histogram.quantile(0.99),
            "error_rate_percent": 100.0 * failed / (ok + failed) if ok + failed else 0.0,
        }
        if self._statistics is not None:
            points["queue_depth"] = float(self._statistics.queued)
            points["in_flight"] = float(self._statistics.in_flight)
            points["workers"] = float(self._statistics.worker_count)
            if self._statistics.journal_bytes:  # only an engine with a journal has these series
                points["journal_bytes"] = float(self._statistics.journal_bytes)
                points["journal_pending"] = float(self._statistics.journal_pending)
            self._events.workers(now, set(self._engine.worker_pids()) if self._engine is not None else set())
        points |= pipeline_points
        if self._resources is not None:
            points["cpu_percent"] = self._resources.machine.cpu_percent
            points["memory_percent"] = self._resources.machine.memory_percent
        for metric in self._custom.values():
            labels = ",".join(f"{k}={v}" for k, v in metric.labels.items())
            points[f"{metric.name}{{{labels}}}" if labels else metric.name] = metric.value
        for name, value in points.items():
            self._history.record(name, now, value)
            if self.config.enable_anomaly_detection and name in WATCHED_METRICS:
                anomaly = self._anomalies.observe(name, value)
                if anomaly is not None:
                    log.info("anomaly: %s = %g (%.1fσ from %g)", name, value, anomaly.score, anomaly.mean)
        self._points = points
        self._autoscale(now)
        if self._process is not None:
            self._process.publish(
                Publish(
                    report=self.current_report(),
                    worker_pids=self._engine.worker_pids() if self._engine is not None else [],
                    points=points,
                    latency=self._cumulative.to_wire(),
                    reply_latency=self._pipeline.cumulative.to_wire() if self._pipeline.cumulative.count else None,
                )
            )

    def _autoscale(self, now: float) -> None:
        engine, policy, statistics = self._engine, self._policy, self._statistics
        if engine is None or policy is None or statistics is None:
            return
        if self._scaling_task is not None and not self._scaling_task.done():
            return  # the worker count is moving: judge it once the change has landed
        decision = policy.decide(
            ScalingInputs(
                now=now,
                workers=statistics.worker_count,
                backlog=statistics.queued,
                in_flight=statistics.in_flight,
                concurrency=engine.config.worker_concurrency,
                latency_p95=self._points["latency_p95"] if self._windows[0].histogram.count else None,
                cpu_percent=self._resources.machine.cpu_percent if self._resources is not None else None,
                worker_start_seconds=statistics.worker_start_seconds or None,
            )
        )
        if decision is None:
            return
        log.info("scaling workers %d → %d: %s", decision.old, decision.new, decision.reason)
        self._remember_decision(decision)
        self._scaling_task = self._spawn(_scale(engine, decision.new))
        # Cooldowns count from when the new workers are running, not from the request.
        self._scaling_task.add_done_callback(lambda _: policy.note_change(self._clock()))

    def _remember_decision(self, decision: ScalingDecision) -> None:
        self._scaling.append(decision)
        self._scaling_total += 1
        self._events.scaled(decision)

    # -- threshold checks ------------------------------------------------------------------

    def check(self) -> list[Alert]:
        """Evaluate the thresholds on what happened since the last check; returns the alerts that changed."""
        t = self.config.thresholds
        window = self._since_check
        self._since_check = SlidingWindow(math.inf)
        attempts = window.ok + window.failed
        changed = [
            self._alerts.evaluate(
                "message_latency_p95",
                window.histogram.quantile(0.95),
                warning=t.message_latency_warning,
                critical=t.message_latency_critical,
            ),
            self._alerts.evaluate(
                "error_rate_percent",
                100.0 * window.failed / attempts if attempts else 0.0,
                warning=t.error_rate_warning_percent,
                critical=t.error_rate_critical_percent,
            ),
        ]
        reply_p95, sender_errors = self._pipeline.check()
        if reply_p95 is not None or self._alerts.active("reply_latency_p95") is not None:
            changed.append(
                self._alerts.evaluate(
                    "reply_latency_p95",
                    reply_p95 or 0.0,
                    warning=t.reply_latency_warning,
                    critical=t.reply_latency_critical,
                )
            )
        if sender_errors is not None:
            changed.append(
                self._alerts.evaluate(
                    "sender_error_rate_percent",
                    sender_errors,
                    warning=t.sender_error_rate_warning_percent,
                    critical=t.sender_error_rate_critical_percent,
                )
            )
        if self._resources is not None:
            machine = self._resources.machine
            changed.append(
                self._alerts.evaluate(
                    "cpu_percent", machine.cpu_percent, warning=t.cpu_warning_percent, critical=t.cpu_critical_percent
                )
            )
            changed.append(
                self._alerts.evaluate(
                    "memory_percent",
                    machine.memory_percent,
                    warning=t.memory_warning_percent,
                    critical=t.memory_critical_percent,
                )
            )
        latency_alert = self._alerts.active("message_latency_p95")
        if (
            self.config.auto_optimize_enabled
            and latency_alert is not None
            and latency_alert in changed
            and latency_alert.level == AlertLevel.CRITICAL.name
        ):
            self._spawn(self.profile(None, self.config.auto_profile_seconds))
        changed_alerts = [alert for alert in changed if alert is not None]
        self._events.alerts(self._clock(), changed_alerts)
        return changed_alerts

    # -- reading ---------------------------------------------------------------------------

    def current_report(self) -> Report:
        """Everything measured so far, as of the last collection (resources as of the last sample)."""
        now = self._clock()
        statistics = self._statistics
        return Report(
            at=now,
            uptime=now - self._started_at,
            throughput=[
                ThroughputWindow(window=w.span, rate=(w.ok + w.failed) / w.elapsed(now) if w.elapsed(now) > 0 else 0.0)
                for w in self._windows
            ],
            latency=[latency_window(w) for w in self._windows],
            error_rate_percent=self._points.get("error_rate_percent", 0.0),
            completed_total=self._completed_total,
            failed_total=self._failed_total,
            dead_lettered_total=statistics.dead_lettered if statistics is not None else 0,
            queue_depths=list(statistics.queue_depths) if statistics is not None else [],
            in_flight=statistics.in_flight if statistics is not None else 0,
            workers=statistics.worker_count if statistics is not None else 0,
            resources=self._resources,
            custom=list(self._custom.values()),
            sources={name: msgspec.to_builtins(get()) for name, get in self._sources.items()},
            alerts=self._alerts.alerts(active_only=True),
            anomalies=list(self._anomalies.recent),
            anomalies_total=self._anomalies.total,
            scaling=list(self._scaling),
            scaling_total=self._scaling_total,
            profile=self._profile,
            engine=msgspec.to_builtins(statistics) if statistics is not None else None,
            pipeline=self._pipeline.report(),
            events=self._events.recent(),
        )

    def historical_trend(self, name: str, window: float) -> list[Point]:
        """Time-stamped points of metric ``name`` over the last ``window`` seconds, oldest first.

        Names: ``throughput``, ``latency_p50/p95/p99``, ``error_rate_percent``, ``queue_depth``,
        ``in_flight``, ``workers``, ``cpu_percent``, ``memory_percent`` and custom metrics
        (``name`` or ``name{label=value,...}``).
        """
        return self._history.trend(name, window, self._clock())

    def alerts(self, active_only: bool = True) -> list[Alert]:
        """Active alerts, or all alerts including resolved ones."""
        return self._alerts.alerts(active_only)

    async def profile(self, worker: int | None = None, seconds: float = 10.0) -> Profile:
        """The top functions of ``worker`` (a pid) over ``seconds``; it also appears in the report.

        ``worker=None`` picks the busiest worker that called ``install_worker_profiler()``,
        or else the process hosting the monitor (the supervisor).
        """
        pid = worker if worker is not None else self._busiest_profilable()
        self._profile = result = await profile_process(pid, seconds)
        return result

    def _busiest_profilable(self) -> int:
        candidates = self._engine.worker_pids() if self._engine is not None else []
        cpu = {p.pid: p.cpu_percent for p in self._resources.processes} if self._resources else {}
        ready = [pid for pid in candidates if has_profiler(pid)]
        return max(ready, key=lambda pid: cpu.get(pid, 0.0)) if ready else os.getpid()


async def _scale(engine: EngineView, n: int) -> None:
    """``engine.scale_to(n)``; an engine that began shutting down meanwhile is no failure."""
    try:
        await engine.scale_to(n)
    except EngineNotRunning:
        log.info("scaling to %d skipped: the engine has stopped", n)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("monitor task failed", exc_info=task.exception())
