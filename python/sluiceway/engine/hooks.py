"""How other components attach to the engine without the engine importing them.

The PerformanceMonitor (``sluiceway.monitor``) and anything else that wants to watch
or steer a running ``MessageParallelizer`` subclasses ``EngineHooks`` and is passed
in as ``MessageParallelizer(handler, config, monitor=...)`` (or ``hooks=[...]``).
Every method runs in the supervisor process, on its event loop, and must not block.
Each event is one typed struct, so a hook reads fields rather than guessing shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

import msgspec

from sluiceway.engine.config import ParallelizerConfig
from sluiceway.engine.dead_letters import DeadLetter
from sluiceway.engine.statistics import Statistics
from sluiceway.histogram import LatencyHistogram

_log = logging.getLogger("sluiceway.engine")


class LatencyDelta(msgspec.Struct, frozen=True):
    """Messages a worker completed since its previous delta, as counted by the supervisor when it settled them.

    ``histogram`` holds their enqueue-to-done latencies (seconds), so ``histogram.count``
    is exactly how many completed: every completion is in exactly one delta.
    """

    worker_pid: int
    histogram: LatencyHistogram


class WorkerStarted(msgspec.Struct, frozen=True):
    """A worker process is up and ready for messages; ``start_seconds`` from spawn to READY."""

    pid: int
    index: int
    start_seconds: float


class WorkerExited(msgspec.Struct, frozen=True):
    """A worker process ended: ``reason`` is "retired", "recycled", "crashed" or "unresponsive"."""

    pid: int
    index: int
    exitcode: int | None
    reason: str


class Scaled(msgspec.Struct, frozen=True):
    """The worker count changed from ``old`` to ``new`` (``reason``: who asked, e.g. "scale_to")."""

    old: int
    new: int
    reason: str


class EngineView(Protocol):
    """What a hook may read from, and do to, the running engine."""

    @property
    def config(self) -> ParallelizerConfig:
        """The engine's configuration (``min_workers``, ``max_workers``, ...)."""

    def get_statistics(self) -> Statistics:
        """The engine's snapshot (see ``MessageParallelizer.get_statistics``)."""

    def publish_latencies(self) -> None:
        """Deliver the pending ``LatencyDelta`` events now (a collector calls it before reading statistics)."""

    def worker_pids(self) -> list[int]:
        """The live worker processes."""

    async def scale_to(self, n: int) -> None:
        """Run ``n`` workers (clamped by the caller to ``min_workers..max_workers``)."""


class EngineHooks:
    """Receives engine events in the supervisor. Every method is a no-op by default."""

    def on_start(self, engine: EngineView) -> None:
        """The engine has started its workers; keep ``engine`` to read statistics or scale."""

    async def on_stop(self) -> None:
        """The engine is shutting down (after drain); release what ``on_start`` took."""

    def on_statistics(self, statistics: Statistics) -> None:
        """A fresh snapshot, once per statistics interval (about 1 s)."""

    def on_latencies(self, delta: LatencyDelta) -> None:
        """Completions since the last delta, with their latencies (once per statistics interval, or on demand)."""

    def on_worker_started(self, event: WorkerStarted) -> None:
        """A worker process is up and ready for messages."""

    def on_worker_exited(self, event: WorkerExited) -> None:
        """A worker process ended."""

    def on_dead_letter(self, dead_letter: DeadLetter) -> None:
        """A message was dead-lettered after its last attempt."""

    def on_scaled(self, event: Scaled) -> None:
        """The worker count changed."""


class HookSet:
    """The engine's hooks, called in order; a failing hook is logged, never fatal to the engine."""

    def __init__(self, hooks: Iterable[EngineHooks]) -> None:
        self._hooks = list(hooks)

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def _each(self, event_name: str, call: Callable[[EngineHooks], None]) -> None:
        for hook in self._hooks:
            try:
                call(hook)
            except Exception:
                _log.exception("hook %r failed in %s", hook, event_name)

    def start(self, engine: EngineView) -> None:
        self._each("on_start", lambda hook: hook.on_start(engine))

    async def stop(self) -> None:
        for hook in self._hooks:
            try:
                await hook.on_stop()
            except Exception:
                _log.exception("hook %r failed in on_stop", hook)

    def statistics(self, statistics: Statistics) -> None:
        self._each("on_statistics", lambda hook: hook.on_statistics(statistics))

    def latencies(self, delta: LatencyDelta) -> None:
        self._each("on_latencies", lambda hook: hook.on_latencies(delta))

    def worker_started(self, event: WorkerStarted) -> None:
        self._each("on_worker_started", lambda hook: hook.on_worker_started(event))

    def worker_exited(self, event: WorkerExited) -> None:
        self._each("on_worker_exited", lambda hook: hook.on_worker_exited(event))

    def dead_letter(self, letter: DeadLetter) -> None:
        self._each("on_dead_letter", lambda hook: hook.on_dead_letter(letter))

    def scaled(self, event: Scaled) -> None:
        self._each("on_scaled", lambda hook: hook.on_scaled(event))
