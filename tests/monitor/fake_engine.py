"""A scripted stand-in for MessageParallelizer's EngineView, for tests of the monitor's engine side."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sluiceway.engine.errors import EngineNotRunning


@dataclass
class FakeStatistics:
    completed: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    in_flight: int = 0
    queue_depths: list[int] = field(default_factory=lambda: [0, 0, 0])
    worker_count: int = 2


class FakeEngine:
    """Statistics set by the test; ``scale_to`` records the calls and applies them."""

    def __init__(self, min_workers: int = 2, max_workers: int = 8, auto_scaling: bool = True) -> None:
        self.config = SimpleNamespace(
            min_workers=min_workers, max_workers=max_workers, enable_auto_scaling=auto_scaling, worker_concurrency=4
        )
        self.stats = FakeStatistics(worker_count=min_workers)
        self.scaled_to: list[int] = []
        self.pids: list[int] = []
        #: Set by a test to play an engine that has shut down: ``scale_to`` then raises.
        self.stopped = False

    def get_statistics(self) -> Any:
        return self.stats

    def worker_pids(self) -> list[int]:
        return self.pids

    async def scale_to(self, n: int) -> None:
        if self.stopped:
            raise EngineNotRunning("scale_to needs a running engine")
        self.scaled_to.append(n)
        self.stats.worker_count = n
