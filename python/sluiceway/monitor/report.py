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
