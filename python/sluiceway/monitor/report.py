"""The shapes the monitor reports in: ``current_report()``, ``/status`` and the wire to the monitor process."""

from __future__ import annotations

from typing import Any

import msgspec

from sluiceway.monitor.alerts import Alert
from sluiceway.monitor.anomaly import Anomaly
from sluiceway.monitor.autoscale import ScalingDecision
from sluiceway.monitor.profiling import Profile


class LatencyWindow(msgspec.Struct, kw_only=True, frozen=True):
    """Message latency (seconds, enqueue to done) over the last ``window`` seconds; zeros when nothing completed."""

    window: float
    count: int
    min: float
    avg: float
    max: float
    p50: float
    p95: float
    p99: float


class ThroughputWindow(msgspec.Struct, kw_only=True, frozen=True):
    """Messages finished per second (completed and failed) over the last ``window`` seconds."""

    window: float
    rate: float


class ProcessResources(msgspec.Struct, kw_only=True, frozen=True):
    """One process as psutil sees it; ``cpu_percent`` is of one core since the last sample."""

    pid: int
    role: str
    cpu_percent: float
    cpu_seconds: float
    rss_bytes: int
    memory_percent: float
    threads: int


class MachineResources(msgspec.Struct, kw_only=True, frozen=True):
    """The whole machine: CPU percent of all cores, memory in use."""

    cpu_percent: float
    cpu_count: int
    memory_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    load_1m: float


class ResourceSample(msgspec.Struct, kw_only=True, frozen=True):
    """One psutil sample of the machine and of every engine process, taken in the monitor process."""

    at: float
    machine: MachineResources
    processes: list[ProcessResources]


class CustomMetric(msgspec.Struct, kw_only=True, frozen=True):
    """The last value given to ``record_metric(name, value, **labels)``."""

    name: str
    value: float
    labels: dict[str, str]


#: The breaker's states as a dashboard series: 0 closed (sending), 0.5 half open (one trial), 1 open (waiting).
BREAKER_LEVELS = {"closed": 0.0, "half_open": 0.5, "open": 1.0}


class PipelineSample(msgspec.Struct, frozen=True, kw_only=True):
    """The sender's and the Sheets cache's figures at one moment; counters are totals since start."""

    #: Replies not yet taken by WhatsApp: queued, on the wire or waiting to be retried.
    sender_queued: int = 0
    #: Replies WhatsApp took.
    sender_sent: int = 0
    #: Replies the sender gave up on (its dead letters).
    sender_failed: int = 0
    #: Attempts that failed transiently (5xx, timeouts, an outage) and were retried.
    sender_retries: int = 0
    #: Throughput and pair-rate refusals (429s): the sender slowed down.
    throttle_events: int = 0
    #: Pair-rate refusals (131056): the recipient was held back a window.
    pair_rate_holds: int = 0
    #: The circuit breaker: ``closed``, ``half_open`` or ``open``.
    breaker: str = "closed"
    #: Sheets cache lookups answered from the cache (each a Sheets API request saved) and not.
    cache_hits: int = 0
    cache_misses: int = 0

    def __post_init__(self) -> None:
        if self.breaker not in BREAKER_LEVELS:
            raise ValueError(f"breaker must be one of {', '.join(BREAKER_LEVELS)}, got {self.breaker!r}")


class PipelineReport(msgspec.Struct, kw_only=True):
    """The pipeline's part of the monitor's report."""

    #: The latest sample (totals since start).
    sample: PipelineSample
    #: Webhook in → reply taken by WhatsApp, per window (like the report's ``latency``).
    reply_latency: list[LatencyWindow]
    #: Replies timed since the monitor started.
    replies_timed: int
    #: Failed sender attempts / all attempts over the last collection interval (percent).
    sender_error_rate_percent: float
    #: Cache hits / lookups since start (percent; 0 before any lookup).
    cache_hit_rate_percent: float


class MonitorEvent(msgspec.Struct, kw_only=True, frozen=True):
    """Something the charts mark on their time axis: an alert changing, a scaling decision, a worker replaced."""

    #: When (the report's clock: monotonic seconds).
    at: float
    #: ``alert``, ``scaling`` or ``restart``.
    kind: str
    text: str


class Report(msgspec.Struct, kw_only=True):
    """Everything the monitor knows at ``at`` (monotonic seconds)."""

    at: float
    uptime: float
    throughput: list[ThroughputWindow]
    latency: list[LatencyWindow]
    error_rate_percent: float
    completed_total: int
    failed_total: int
    dead_lettered_total: int
    queue_depths: list[int]
    in_flight: int
    workers: int
    resources: ResourceSample | None
    custom: list[CustomMetric]
    #: ``get_statistics()`` of each source added with ``add_source`` (e.g. "cache", "sender"), as plain data.
    sources: dict[str, Any]
    alerts: list[Alert]
    anomalies: list[Anomaly]
    anomalies_total: int
    scaling: list[ScalingDecision]
    scaling_total: int
    profile: Profile | None
    #: The engine's own ``get_statistics()`` as plain data, when attached.
    engine: dict[str, Any] | None = None
    #: The reply latency, the sender and the cache (``PerformanceMonitor.set_pipeline``), when watched.
    pipeline: PipelineReport | None = None
    #: Recent alerts, scaling decisions and worker restarts, oldest first, for the charts' time axis.
    events: list[MonitorEvent] = []
