"""When a failed message is tried again: capped exponential backoff with jitter."""

from __future__ import annotations

import random
from collections.abc import Callable

from sluiceway.engine.config import ParallelizerConfig


class RetryPolicy:
    """Backoff before the retry that follows failed attempt ``attempt`` (counted from 1).

    ``delay(n) = min(retry_max_backoff, retry_initial_backoff * retry_backoff_factor ** (n - 1))``,
    scaled by a uniform factor in ``[1 - retry_jitter, 1 + retry_jitter]`` and capped again, so
    retries of messages that failed together spread out instead of arriving together.

    Example::

        policy = RetryPolicy(ParallelizerConfig(retry_initial_backoff=1.0, retry_jitter=0.0))
        policy.delay(1), policy.delay(2), policy.delay(3)   # 1.0, 2.0, 4.0
        policy.should_retry(4)                              # False with max_attempts=4
    """

    def __init__(self, config: ParallelizerConfig, uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.max_attempts = config.max_attempts
        self.initial = config.retry_initial_backoff
        self.factor = config.retry_backoff_factor
        self.cap = config.retry_max_backoff
        self.jitter = config.retry_jitter
        self._uniform = uniform

    def should_retry(self, attempt: int) -> bool:
        """Whether a message whose delivery number ``attempt`` failed gets another delivery."""
        return attempt < self.max_attempts

    def delay(self, attempt: int) -> float:
        """Seconds to wait before the delivery after failed delivery ``attempt``."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        try:
            base = min(self.cap, self.initial * self.factor ** (attempt - 1))
        except OverflowError:  # factor ** n beyond a float: far past any cap
            base = self.cap
        if self.jitter:
            base *= self._uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return min(self.cap, base)
