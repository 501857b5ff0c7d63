"""The engine's configuration: one frozen, validated struct.

Field names follow the seed design (``defaultWorkerCount`` → ``default_worker_count``);
times are seconds as floats and sizes are bytes.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from sluiceway._validation import integer_at_least, non_negative, positive


class ParallelizerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How many workers run, how much they may hold, and how failures are retried.

    Example::

        config = ParallelizerConfig(default_worker_count=2, worker_concurrency=64, max_attempts=5)
        async with MessageParallelizer("bot.handlers:handle", config) as engine:
            await engine.enqueue_message({"from": "+15550100", "text": "hi"})

    With a journal (``MessageParallelizer(handler, config, journal=path)``), ``journal_sync``
    says how durable a reported accept is ("full": survives power loss; "normal": survives
    a process crash), and ``dedup_window`` / ``dedup_max_entries`` bound the remembered
    ``dedup_key`` values (journal or not).

    Warning:
        Prefetch trades priority latency for throughput: a high-priority message may wait
        behind what each worker already holds. By default that is about
        ``prefetch_window`` seconds of the worker's own work (at least
        ``2 * worker_concurrency`` messages, at most 1,024); a set ``worker_prefetch``
        holds exactly that many instead.
    """

    #: Workers started by ``start()``.
    default_worker_count: int = 8
    #: Lower bound for ``scale_to`` (and the monitor's autoscaling).
    min_workers: int = 2
    #: Upper bound for ``scale_to``.
    max_workers: int = 16
    #: Queued messages at which backpressure switches on.
    queue_high_water_mark: int = 1000
    #: Queued messages at which backpressure switches off again (hysteresis).
    queue_low_water_mark: int = 100
    #: Seconds a handler may run before it is cancelled (a failed attempt), and seconds a
    #: worker may go without answering before it is killed and its messages re-delivered.
    worker_timeout: float = 30.0
    #: Whether the monitor may call ``scale_to`` on its own (the engine itself never does).
    enable_auto_scaling: bool = True
    #: Handlers in flight at once in one worker process.
    worker_concurrency: int = 64
    #: Messages dispatched to a worker and not yet acknowledged, at most (credit-based
    #: prefetch); 0 means adaptive: ``prefetch_window`` seconds of the worker's measured
    #: pace, never below ``2 * worker_concurrency``.
    worker_prefetch: int = 0
    #: Seconds of its own work an adaptive prefetch lets a worker hold (see the warning
    #: above); 0 keeps it at ``2 * worker_concurrency``. Measured with a no-op handler on
    #: 2 cores: 2 ms lets a worker hold ~600 messages, and the engine runs 1.5x as fast
    #: as at 128, while a 5 ms handler stays at its floor.
    prefetch_window: float = 0.002
    #: Deliveries of one message before it is dead-lettered (the first try included).
    max_attempts: int = 4
    #: Backoff before the first retry, in seconds.
    retry_initial_backoff: float = 1.0
    #: Each further retry waits this many times longer...
    retry_backoff_factor: float = 2.0
    #: ...but never longer than this, in seconds.
    retry_max_backoff: float = 60.0
    #: Each backoff is scaled by a uniform random factor in [1 - jitter, 1 + jitter].
    retry_jitter: float = 0.2
    #: Retire (and replace) a worker after it has completed this many messages; 0 = never.
    max_messages_per_worker: int = 0
    #: Retire (and replace) a worker whose resident memory exceeds this; 0 = never.
    max_worker_rss_bytes: int = 0
    #: Seconds between a worker's heartbeats (each also carries its latency histogram delta).
    heartbeat_interval: float = 1.0
    #: Seconds between statistics snapshots handed to hooks.
    statistics_interval: float = 1.0
    #: With a journal (``MessageParallelizer(journal=path)``): "full" (SQLite
    #: synchronous=FULL: a reported accept survives power loss) or "normal" (it survives a
    #: process crash, even ``kill -9``, but the last commits may be lost to a power loss).
    journal_sync: Literal["full", "normal"] = "full"
    #: Seconds a ``dedup_key`` (a webhook's wamid) is remembered: the same key within it is
    #: not accepted again. A week by default (WhatsApp re-delivers for days).
    dedup_window: float = 604800.0
    #: Most ``dedup_key`` values remembered; the oldest are forgotten first.
    dedup_max_entries: int = 1_000_000

    def __post_init__(self) -> None:
        integer_at_least("default_worker_count", self.default_worker_count, 1)
        integer_at_least("min_workers", self.min_workers, 1)
        integer_at_least("max_workers", self.max_workers, 1)
        integer_at_least("queue_high_water_mark", self.queue_high_water_mark, 1)
        integer_at_least("queue_low_water_mark", self.queue_low_water_mark, 0)
        integer_at_least("worker_concurrency", self.worker_concurrency, 1)
        integer_at_least("worker_prefetch", self.worker_prefetch, 0)
        integer_at_least("max_attempts", self.max_attempts, 1)
        integer_at_least("max_messages_per_worker", self.max_messages_per_worker, 0)
        integer_at_least("max_worker_rss_bytes", self.max_worker_rss_bytes, 0)
        positive("worker_timeout", self.worker_timeout)
        non_negative("prefetch_window", self.prefetch_window)
        non_negative("retry_initial_backoff", self.retry_initial_backoff)
        non_negative("retry_max_backoff", self.retry_max_backoff)
        positive("heartbeat_interval", self.heartbeat_interval)
        positive("statistics_interval", self.statistics_interval)
        positive("dedup_window", self.dedup_window)
        integer_at_least("dedup_max_entries", self.dedup_max_entries, 1)
        if self.journal_sync not in ("full", "normal"):
            raise ValueError(f'journal_sync must be "full" or "normal", got {self.journal_sync!r}')
        if not isinstance(self.enable_auto_scaling, bool):
            raise ValueError(f"enable_auto_scaling must be a bool, got {self.enable_auto_scaling!r}")
        if not (
            isinstance(self.retry_backoff_factor, (int, float))
            and math.isfinite(self.retry_backoff_factor)
            and self.retry_backoff_factor >= 1.0
        ):
            raise ValueError(f"retry_backoff_factor must be a finite number >= 1, got {self.retry_backoff_factor!r}")
        if not (isinstance(self.retry_jitter, (int, float)) and 0.0 <= self.retry_jitter < 1.0):
            raise ValueError(f"retry_jitter must be within [0, 1), got {self.retry_jitter!r}")
        if self.min_workers > self.max_workers:
            raise ValueError(f"min_workers ({self.min_workers}) must not exceed max_workers ({self.max_workers})")
        if not self.min_workers <= self.default_worker_count <= self.max_workers:
            raise ValueError(
                f"default_worker_count ({self.default_worker_count}) must be within "
                f"min_workers..max_workers ({self.min_workers}..{self.max_workers})"
            )
        if self.queue_low_water_mark >= self.queue_high_water_mark:
            raise ValueError(
                f"queue_low_water_mark ({self.queue_low_water_mark}) must be below "
                f"queue_high_water_mark ({self.queue_high_water_mark})"
            )
        if self.retry_max_backoff < self.retry_initial_backoff:
            raise ValueError(
                f"retry_max_backoff ({self.retry_max_backoff}) must be at least "
                f"retry_initial_backoff ({self.retry_initial_backoff})"
            )
        if self.heartbeat_interval >= self.worker_timeout:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval}) must be shorter than "
                f"worker_timeout ({self.worker_timeout})"
            )

    @property
    def prefetch(self) -> int:
        """The per-worker prefetch: ``worker_prefetch``, or the adaptive one's floor."""
        return self.worker_prefetch or 2 * self.worker_concurrency
