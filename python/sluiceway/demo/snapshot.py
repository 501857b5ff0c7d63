"""What the demo shows and reports: one ``Snapshot`` of the whole pipeline per sampling tick, and its faults."""

from __future__ import annotations

import msgspec


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The pipeline at time ``t`` (seconds since the demo started); counters add up over restarts."""

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
    #: Replies the sender holds and WhatsApp has not accepted yet (where a tenant's wait sits in an outage).
    sender_backlog: int = 0
    #: False while the runtime is down (killed, not yet restarted): its figures are the last ones seen.
    up: bool = True


class FaultEvent(msgspec.Struct, frozen=True):
    """Something the demo did to the pipeline (or saw it do), at ``t`` seconds since the start."""

    t: float
    label: str

    def line(self) -> str:
        return f"{self.t:.1f} s: {self.label}"


class Recovery(msgspec.Struct, frozen=True, kw_only=True):
    """The ``kill -9`` of the whole runtime and its restart on the same state_dir.

    ``killed_at`` counts from the demo's start, the other times from the kill.
    """

    killed_at: float
    in_flight: int
    restart: float
    first_200: float
    first_reply: float | None
    #: Webhooks that got no 200 while the runtime was down and were posted again (Meta re-delivers those).
    redelivered: int
