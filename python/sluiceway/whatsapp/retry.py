"""Exponential backoff with jitter: a pure function of the attempt number, called only on failure."""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec


class SendRetryPolicy(msgspec.Struct, frozen=True):
    """Delay before retry ``attempt`` (1-based): ``initial × 2^(attempt-1)`` capped at ``cap``, minus up to ``jitter``
    of it.

    The success path never touches this: a send is a plain ``await``, and the policy
    is consulted only after a failure, so retries cost nothing until they happen (a
    decorator such as tenacity's wraps every call instead).

    Example::

        policy = SendRetryPolicy(max_retries=3, initial=1.0, cap=60.0, jitter=0.5)
        policy.delay(3)   # between 2.0 and 4.0 seconds
    """

    max_retries: int = 3
    initial: float = 1.0
    cap: float = 60.0
    jitter: float = 0.5

    def delay(self, attempt: int, random: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt``; ``ValueError`` if ``attempt < 1``."""
        if attempt < 1:
            raise ValueError(f"retry attempt numbers start at 1, got {attempt}")
        # min() before the power would overflow: 2.0 ** 1100 is inf, and inf * 0 is nan.
        base = min(self.cap, self.initial * 2.0 ** min(attempt - 1, 64))
        return base * (1.0 - self.jitter * random())

    def exhausted(self, attempts: int) -> bool:
        """Whether a message that has failed ``attempts`` times (first try included) gets no more retries."""
        return attempts > self.max_retries
