"""The demo's verdict: did every inbound message get exactly one reply, in order per tenant?

The one allowed exception: a reply that was on the wire when the runtime was killed is sent again
by the restart (the Cloud API has no idempotency key, see :mod:`sluiceway.app.outbox`). The runtime
counts those ``uncertain_resends``; a run passes with at most that many extra replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from sluiceway.demo.tenants import Sent


class Verdict(msgspec.Struct):
    """The outcome of a demo run; ``ok`` only if nothing was lost or reordered, and nothing doubled
    beyond the re-sends the runtime counted as uncertain."""

    inbound: int
    replied: int
    missing: list[str]
    duplicated: list[str]
    out_of_order: list[str]
    unexpected: int
    latency_p50: float
    latency_p99: float
    latency_max: float
    #: Replies beyond the first, over all messages.
    extra_replies: int = 0
    #: Replies the runtime re-sent after a restart not knowing whether WhatsApp had them already.
    uncertain_resends: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.inbound == self.replied
            and not (self.missing or self.out_of_order or self.unexpected)
            and self.extra_replies <= self.uncertain_resends
        )


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of already sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def verify(conversations: Sequence[Sequence[Sent]], accepted: Sequence[Any], uncertain_resends: int = 0) -> Verdict:
    """Match the emulator's ``accepted`` sends (each quoting the ``wamid`` it answers) to the inbound messages.

    ``accepted`` items need ``.message.to``, ``.message.context.message_id`` and ``.at``
    (the emulator's record, on the same clock as ``Sent.posted_at``).
    """
    by_wamid = {m.wamid: m for c in conversations for m in c}
    replies: dict[str, int] = {}
    order: dict[str, list[int]] = {}
    latencies: list[float] = []
    unexpected = 0
    for record in accepted:
        context = record.message.context
        inbound = by_wamid.get(context.message_id) if context is not None else None
        if inbound is None or inbound.tenant != record.message.to:
            unexpected += 1
            continue
        replies[inbound.wamid] = replies.get(inbound.wamid, 0) + 1
        if replies[inbound.wamid] == 1:
            order.setdefault(inbound.tenant, []).append(inbound.index)
            latencies.append(record.at - inbound.posted_at)
    missing = [w for w in by_wamid if w not in replies]
    duplicated = [w for w, n in replies.items() if n > 1]
    out_of_order = [tenant for tenant, indexes in order.items() if indexes != sorted(indexes)]
    latencies.sort()
    return Verdict(
        inbound=len(by_wamid),
        replied=len(replies),
        missing=missing,
        duplicated=duplicated,
        out_of_order=out_of_order,
        unexpected=unexpected,
        latency_p50=quantile(latencies, 0.50),
        latency_p99=quantile(latencies, 0.99),
        latency_max=latencies[-1] if latencies else 0.0,
        extra_replies=sum(replies.values()) - len(replies),
        uncertain_resends=uncertain_resends,
    )
