"""What the demo shows and reports: one ``Snapshot`` of the whole pipeline per sampling tick."""

from __future__ import annotations

import msgspec


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The pipeline at time ``t`` (seconds since the demo started)."""

    t: float
    inbound: int
    replies: int
    throughput: float
    latency_p50: float
    latency_p99: float
    cache_hit_rate: float
    sheets_requests: int
    sheets_reads: int
    throttle_events: int
    sender_retries: int
    workers: int
    queued: int
    alerts: list[str]
    events: list[str]
