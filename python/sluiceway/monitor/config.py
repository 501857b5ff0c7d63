"""The monitor's configuration: what to measure how often, the alert thresholds and the scaling policy.

Field names follow the design summary in snake_case; durations are seconds as floats,
percentages are 0-100. Every struct is frozen and validated on construction, and a bad
value raises ``ValueError`` naming the field.
"""

from __future__ import annotations

import math

import msgspec

from sluiceway._validation import non_negative, ordered, percent, positive

#: How long the finest history tier keeps every collected point (seconds)...
HISTORY_RECENT_SPAN = 3600.0
#: ...but never more than this many points per series (short intervals cover less).
HISTORY_RECENT_MAX_POINTS = 3600
#: Resolution (seconds) and span (seconds) of the middle history tier: one point a minute for a day.
HISTORY_MINUTE_TIER = (60.0, 86_400.0)
#: Resolution (seconds) of the coarsest tier, which reaches back ``history_retention``.
HISTORY_COARSE_RESOLUTION = 900.0


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Warning and critical levels for the metrics the monitor alerts on.

    An alert is raised when a metric reaches its warning level, escalated at the
    critical level, and resolved only once the metric falls ``hysteresis`` (a fraction)
    below the level it holds, so a metric hovering at a threshold does not flap.

    Example::

        Thresholds(message_latency_warning=0.2, message_latency_critical=1.0)
    """

    #: p95 message latency (seconds, enqueue to done) over the last check interval.
    message_latency_warning: float = 0.5
    message_latency_critical: float = 2.0
    #: Machine CPU utilisation (percent of all cores).
    cpu_warning_percent: float = 70.0
    cpu_critical_percent: float = 90.0
    #: Machine memory in use (percent).
    memory_warning_percent: float = 75.0
    memory_critical_percent: float = 90.0
    #: Failed attempts / all attempts over the last check interval (percent).
    error_rate_warning_percent: float = 5.0
    error_rate_critical_percent: float = 10.0
    #: p95 reply latency (seconds, webhook in → reply taken by WhatsApp) over the last check interval: what
    #: tenants wait, sender queue and retries included (only with ``set_pipeline`` or ``record_reply_latency``).
    reply_latency_warning: float = 3.0
    reply_latency_critical: float = 10.0
    #: The sender's failed attempts (retried or given up) / all its attempts over the last check (percent).
    sender_error_rate_warning_percent: float = 5.0
    sender_error_rate_critical_percent: float = 20.0
    #: How far (fraction of the level) a metric must fall below a level to leave it.
    hysteresis: float = 0.1

    def __post_init__(self) -> None:
        positive("message_latency_warning", self.message_latency_warning)
        positive("message_latency_critical", self.message_latency_critical)
        positive("reply_latency_warning", self.reply_latency_warning)
        positive("reply_latency_critical", self.reply_latency_critical)
        for name in (
            "cpu_warning_percent",
            "cpu_critical_percent",
            "memory_warning_percent",
            "memory_critical_percent",
            "error_rate_warning_percent",
            "error_rate_critical_percent",
            "sender_error_rate_warning_percent",
            "sender_error_rate_critical_percent",
        ):
            percent(name, getattr(self, name))
        ordered(
            "message_latency_warning",
            self.message_latency_warning,
            "message_latency_critical",
            self.message_latency_critical,
        )
        ordered("cpu_warning_percent", self.cpu_warning_percent, "cpu_critical_percent", self.cpu_critical_percent)
        ordered(
            "memory_warning_percent",
            self.memory_warning_percent,
            "memory_critical_percent",
            self.memory_critical_percent,
        )
        ordered(
            "error_rate_warning_percent",
            self.error_rate_warning_percent,
            "error_rate_critical_percent",
            self.error_rate_critical_percent,
        )
        ordered(
            "reply_latency_warning",
            self.reply_latency_warning,
            "reply_latency_critical",
            self.reply_latency_critical,
        )
        ordered(
            "sender_error_rate_warning_percent",
            self.sender_error_rate_warning_percent,
            "sender_error_rate_critical_percent",
            self.sender_error_rate_critical_percent,
        )
        if not 0 <= self.hysteresis < 1:
            raise ValueError(f"hysteresis must be in [0, 1), got {self.hysteresis!r}")


class AutoscaleConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Tunables of the autoscaling policy (see ``sluiceway.monitor.autoscale``).

    Example::

        AutoscaleConfig(backlog_per_worker=50, scale_up_cooldown=5.0)
    """

    #: Queued messages per worker that count as a backlog worth more workers.
    backlog_per_worker: float = 100.0
    #: A backlog that the current drain rate clears within this many seconds needs no help.
    target_drain_time: float = 10.0
    #: Seconds pressure (a backlog projected to outlast ``target_drain_time``) must have lasted
    #: before scaling up; 0 acts as soon as it is evident, which takes two samples (a drain rate).
    scale_up_sustain: float = 0.0
    #: Minimum seconds between a change and the next scale-up.
    scale_up_cooldown: float = 30.0
    #: Most workers added per scale-up, as a fraction of the current ones (at least one); fewer when
    #: the measured per-worker drain rate says fewer clear the backlog within ``target_drain_time``.
    scale_up_step: float = 0.5
    #: No worker is added for a backlog projected to drain within this many times the measured
    #: worker start time: it would start when the work is (nearly) done.
    worker_start_margin: float = 2.0
    #: Machine CPU (percent) at or above which adding workers cannot help, so none are added.
    cpu_ceiling_percent: float = 85.0
    #: Busy handler slots / all slots at or below which the engine counts as idle.
    idle_utilization: float = 0.25
    #: Idleness must last this long before scaling down.
    idle_sustain: float = 60.0
    #: Minimum seconds between a change and the next scale-down (one worker at a time).
    scale_down_cooldown: float = 60.0
    #: How many recent backlog samples (with the same worker count) the drain rate is fitted on.
    trend_samples: int = 6

    def __post_init__(self) -> None:
        for name in ("backlog_per_worker", "target_drain_time", "scale_up_step", "worker_start_margin"):
            positive(name, getattr(self, name))
        for name in ("scale_up_sustain", "scale_up_cooldown", "idle_sustain", "scale_down_cooldown"):
            non_negative(name, getattr(self, name))
        percent("cpu_ceiling_percent", self.cpu_ceiling_percent)
        if not 0 <= self.idle_utilization < 1:
            raise ValueError(f"idle_utilization must be in [0, 1), got {self.idle_utilization!r}")
        if self.trend_samples < 2:
            raise ValueError(f"trend_samples must be >= 2, got {self.trend_samples!r}")


class MonitorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How the PerformanceMonitor measures, alerts, scales and exposes.

    Example::

        monitor = PerformanceMonitor(MonitorConfig(metric_collection_interval=1.0, http_port=9464))

    Warning:
        ``metric_collection_interval`` trades freshness for overhead: each collection
        samples every worker process with psutil (in the monitor process) and ships one
        snapshot between processes; one second keeps the monitor well under 1% of a core.
    """

    #: Seconds between collections: resource samples, history points, anomaly checks, scaling.
    metric_collection_interval: float = 5.0
    #: Seconds between threshold checks (alerts) and automatic profiling.
    performance_check_interval: float = 30.0
    thresholds: Thresholds = msgspec.field(default_factory=Thresholds)
    enable_anomaly_detection: bool = True
    #: A sample this many σ from its metric's local trend is an anomaly (unless it continues the
    #: samples before it); σ is the robust spread of the last ``2/anomaly_alpha - 1`` samples around
    #: their least-squares line (see ``sluiceway.monitor.anomaly``).
    anomaly_sigma: float = 2.5
    #: How fast the anomaly baseline follows a metric, as an EWMA weight: the trend is fitted on the
    #: last ``2/anomaly_alpha - 1`` samples (39 at 0.05), and σ is remembered with this weight.
    anomaly_alpha: float = 0.05
    #: Samples a metric needs before it can be flagged.
    anomaly_warmup: int = 30
    #: Lets the monitor act: scale workers and profile on critical latency.
    auto_optimize_enabled: bool = True
    autoscale: AutoscaleConfig = msgspec.field(default_factory=AutoscaleConfig)
    #: Seconds of sampling when latency turns critical and ``auto_optimize_enabled``.
    auto_profile_seconds: float = 5.0
    #: How far back history reaches (seconds); memory stays bounded whatever the uptime.
    history_retention: float = 7 * 86_400.0
    #: Start the monitor process (psutil sampling and the HTTP endpoints) on ``start()``.
    monitor_process: bool = True
    #: Address of ``/metrics``, ``/status`` and the dashboard; port 0 picks a free port.
    http_host: str = "127.0.0.1"
    http_port: int = 9464

    def __post_init__(self) -> None:
        positive("metric_collection_interval", self.metric_collection_interval)
        positive("performance_check_interval", self.performance_check_interval)
        positive("anomaly_sigma", self.anomaly_sigma)
        if not 0 < self.anomaly_alpha <= 1:
            raise ValueError(f"anomaly_alpha must be in (0, 1], got {self.anomaly_alpha!r}")
        if self.anomaly_warmup < 2:
            raise ValueError(f"anomaly_warmup must be >= 2, got {self.anomaly_warmup!r}")
        positive("auto_profile_seconds", self.auto_profile_seconds)
        positive("history_retention", self.history_retention)
        if self.history_retention < self.metric_collection_interval:
            raise ValueError(
                f"history_retention ({self.history_retention!r}) must be at least "
                f"metric_collection_interval ({self.metric_collection_interval!r})"
            )
        if not self.http_host:
            raise ValueError("http_host must be a host name or address, got an empty string")
        if not 0 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be in 0..65535, got {self.http_port!r}")

    def history_tiers(self) -> list[tuple[float, int]]:
        """``(resolution, capacity)`` per history tier, finest first; resolution 0 keeps every point."""
        tiers: list[tuple[float, int]] = []
        recent_span = min(HISTORY_RECENT_SPAN, self.history_retention)
        recent_points = min(HISTORY_RECENT_MAX_POINTS, math.ceil(recent_span / self.metric_collection_interval))
        tiers.append((0.0, max(2, recent_points)))
        covered, resolution = recent_points * self.metric_collection_interval, self.metric_collection_interval
        for tier_resolution, span in (HISTORY_MINUTE_TIER, (HISTORY_COARSE_RESOLUTION, self.history_retention)):
            span = min(span, self.history_retention)
            if span <= covered or tier_resolution <= resolution:
                continue
            tiers.append((tier_resolution, math.ceil(span / tier_resolution)))
            covered, resolution = span, tier_resolution
        return tiers
