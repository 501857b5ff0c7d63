"""How many messages one worker may hold: its credit, fixed or sized to its own pace.

A worker that holds more runs longer between round trips to the supervisor (the
throughput side); a high-priority message that arrives meanwhile waits behind what it
holds (the latency side). A fixed count gets this wrong one way or the other: 128
messages are a fraction of a millisecond of a no-op handler's work, and seconds of a
slow one's. So by default a worker's limit follows its measured completion rate, to
hold about ``prefetch_window`` seconds of its own work, never less than two handlers'
worth per slot (``2 * worker_concurrency``) and never more than ``MAX_PREFETCH``.
"""

from __future__ import annotations

from sluiceway.engine.config import ParallelizerConfig

#: The most an adaptive limit grows to (a DISPATCH frame carries half of it at most).
MAX_PREFETCH = 1024
#: Seconds of completions each rate measurement spans (shorter ones are too noisy).
MEASURE_SECONDS = 0.02


class Prefetch:
    """One worker's prefetch limit, and the frame size its credit goes out in.

    Example::

        prefetch = Prefetch(config, clock())
        prefetch.completed(settled, clock())   # on every report
        credit = prefetch.limit - len(worker.held)
    """

    def __init__(self, config: ParallelizerConfig, now: float) -> None:
        self._adaptive = config.worker_prefetch == 0 and config.prefetch_window > 0
        self._floor = config.prefetch
        self._window = config.prefetch_window
        self._count = 0
        self._since = now
        self.limit = self._floor
        self.frame_size = _frame_size(self.limit)
        self.least_frame = _least_frame(self.limit)

    def completed(self, count: int, now: float) -> None:
        """Count ``count`` settled deliveries (done or failed) at ``now``; adapts the limit."""
        if not self._adaptive:
            return
        self._count += count
        elapsed = now - self._since
        if elapsed < MEASURE_SECONDS:
            return
        rate = self._count / elapsed
        self.limit = max(self._floor, min(MAX_PREFETCH, int(rate * self._window)))
        self.frame_size = _frame_size(self.limit)
        self.least_frame = _least_frame(self.limit)
        self._count = 0
        self._since = now


def _frame_size(limit: int) -> int:
    """Half the limit (rounded up): two frames in the pipe, so the worker never waits for a round trip."""
    return (limit + 1) // 2


def _least_frame(limit: int) -> int:
    """A quarter of the limit (at least 1): the smallest frame sent while the queue could fill a bigger one."""
    return max(1, limit // 4)
