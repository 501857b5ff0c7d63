"""A scripted stand-in for MessageParallelizer's EngineView, for tests of the monitor's engine side."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluiceway.engine import ParallelizerConfig, Statistics
from sluiceway.engine.errors import EngineNotRunning


@dataclass
class FakeStatistics:
    """The figures a test sets; ``FakeEngine.get_statistics`` turns them into a ``Statistics``."""

    completed: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    in_flight: int = 0
    queue_depths: list[int] = field(default_factory=lambda: [0, 0, 0])
    worker_count: int = 2


class FakeEngine:
    """Statistics set by the test; ``scale_to`` records the calls and applies them."""

    def __init__(self, min_workers: int = 2, max_workers: int = 8, auto_scaling: bool = True) -> None:
        self.config = ParallelizerConfig(
            default_worker_count=min_workers,
            min_workers=min_workers,
            max_workers=max_workers,
            enable_auto_scaling=auto_scaling,
            worker_concurrency=4,
        )
        self.stats = FakeStatistics(worker_count=min_workers)
        self.scaled_to: list[int] = []
        self.pids: list[int] = []
        #: Set by a test to play an engine that has shut down: ``scale_to`` then raises.
        self.stopped = False

    def get_statistics(self) -> Statistics:
        s = self.stats
        return Statistics(
            enqueued=s.completed + s.dead_lettered + s.in_flight + sum(s.queue_depths),
            completed=s.completed,
            failed_attempts=s.failed_attempts,
            retried=0,
            dead_lettered=s.dead_lettered,
            in_flight=s.in_flight,
            queued=sum(s.queue_depths),
            queue_depths=list(s.queue_depths),
            backpressure=False,
            worker_count=s.worker_count,
            workers=[],
            throughput_1s=0.0,
            throughput_10s=0.0,
            throughput_60s=0.0,
            latency_p50=0.0,
            latency_p95=0.0,
            latency_p99=0.0,
            uptime=0.0,
        )

    def publish_latencies(self) -> None:
        """Nothing pending: a test hands the monitor its ``LatencyDelta`` events itself."""

    def worker_pids(self) -> list[int]:
        return self.pids

    async def scale_to(self, n: int) -> None:
        if self.stopped:
            raise EngineNotRunning("scale_to needs a running engine")
        self.scaled_to.append(n)
        self.stats.worker_count = n
