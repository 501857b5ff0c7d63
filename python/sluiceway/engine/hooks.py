"""How other components attach to the engine without the engine importing them.

The PerformanceMonitor (``sluiceway.monitor``) and anything else that wants to watch
or steer a running ``MessageParallelizer`` subclasses ``EngineHooks`` and is passed
in as ``MessageParallelizer(handler, config, monitor=...)`` (or ``hooks=[...]``).
Every method runs in the supervisor process, on its event loop, and must not block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence


class EngineView(Protocol):
    """What a hook may read from, and do to, the running engine."""

    @property
    def config(self) -> Any:
        """The engine's ``ParallelizerConfig`` (``min_workers``, ``max_workers``, ...)."""

    def get_statistics(self) -> Any:
        """The engine's ``Statistics`` snapshot (see ``MessageParallelizer.get_statistics``)."""

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

    def on_statistics(self, statistics: Any) -> None:
        """A fresh ``Statistics`` snapshot, once per statistics interval (about 1 s)."""

    def on_latencies(self, worker_pid: int, histogram_delta: Any) -> None:
        """A worker's handler latencies since its last report: a ``LatencyHistogram``."""

    def on_worker_started(self, pid: int) -> None:
        """A worker process is up and ready for messages."""

    def on_worker_exited(self, pid: int, exitcode: int | None, reason: str) -> None:
        """A worker process ended: ``reason`` is e.g. "retired", "crashed", "unresponsive", "recycled"."""

    def on_dead_letter(self, dead_letter: Any) -> None:
        """A message was dead-lettered after its last attempt."""

    def on_scaled(self, old: int, new: int, reason: str) -> None:
        """The worker count changed from ``old`` to ``new``."""


def call_all(hooks: Sequence[EngineHooks], method: str, *args: Any) -> None:
    """Call a synchronous hook method on each hook; a failing hook is logged, never fatal."""
    import logging

    for hook in hooks:
        try:
            getattr(hook, method)(*args)
        except Exception:
            logging.getLogger("sluiceway.engine").exception("hook %r failed in %s", hook, method)
