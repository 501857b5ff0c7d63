"""What the dashboard's charts mark on their time axis: alerts changing, scaling decisions, workers replaced."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from sluiceway.monitor.alerts import Alert
from sluiceway.monitor.autoscale import ScalingDecision
from sluiceway.monitor.report import MonitorEvent

#: Events kept for the report (the dashboard shows the last 25 minutes).
EVENTS_KEPT = 100


class EventLog:
    """The recent events, oldest first.

    Example::

        events = EventLog()
        events.workers(now, {101, 102})
        events.workers(now + 5, {101, 103})    # 102 replaced by 103: one "restart"
    """

    def __init__(self) -> None:
        self._events: deque[MonitorEvent] = deque(maxlen=EVENTS_KEPT)
        self._worker_pids: set[int] = set()

    def add(self, at: float, kind: str, text: str) -> None:
        self._events.append(MonitorEvent(at=at, kind=kind, text=text))

    def scaled(self, decision: ScalingDecision) -> None:
        self._events.append(
            MonitorEvent(at=decision.at, kind="scaling", text=f"workers {decision.old} → {decision.new}")
        )

    def alerts(self, now: float, changed: Iterable[Alert]) -> None:
        for alert in changed:
            what = "resolved" if alert.resolved_at is not None else alert.level
            self._events.append(MonitorEvent(at=now, kind="alert", text=f"{alert.metric} {what}"))

    def workers(self, now: float, pids: set[int]) -> None:
        """The engine's worker pids now: workers that replaced others (a crash, a kill, a recycle) are marked."""
        gone, new = self._worker_pids - pids, pids - self._worker_pids
        replaced = min(len(gone), len(new))  # the rest is scaling, marked by its decision
        if self._worker_pids and replaced:
            self._events.append(MonitorEvent(at=now, kind="restart", text=f"{replaced} worker(s) replaced"))
        self._worker_pids = pids

    def recent(self) -> list[MonitorEvent]:
        return list(self._events)
