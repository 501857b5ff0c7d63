"""A clock that moves only when told to, for testing time-dependent code without sleeping."""

from __future__ import annotations


class ManualClock:
    """Callable like ``time.monotonic``; returns ``now`` until ``advance`` or ``set`` moves it.

    Example::

        clock = ManualClock()
        cache = SheetsCache(clock=clock)
        clock.advance(3600.0)   # every entry with a one-hour TTL is now stale
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back (advance by {seconds})")
        self.now += seconds
        return self.now

    def set(self, now: float) -> None:
        """Jump to ``now``, which must not be earlier than the current time."""
        if now < self.now:
            raise ValueError(f"a monotonic clock cannot go back (from {self.now} to {now})")
        self.now = now
