"""A circuit breaker over a sliding window of outcomes, driven by an injectable clock."""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable

from sluiceway.whatsapp.config import BreakerConfig


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateListener = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    """closed → open on a failure rate over a window → half-open trials → closed.

    * **closed**: every call is allowed; outcomes of the last ``window`` seconds are
      kept, and once at least ``minimum_calls`` are there and the failure share
      reaches ``failure_rate_threshold`` the breaker opens.
    * **open**: nothing is allowed for ``open_duration`` seconds, then the next
      ``allow()`` moves to half-open.
    * **half-open**: ``half_open_trials`` calls are allowed; if they all succeed the
      breaker closes with a clean window, the first failure reopens it.

    ``trip()`` opens it at once (an expired token needs no statistics). Outcomes that
    arrive while open (calls started before it opened) are ignored. Listeners get
    ``(old, new)`` on every state change.

    Example::

        breaker = CircuitBreaker(BreakerConfig(), clock=time.monotonic)
        if breaker.allow():
            ok = await send()
            breaker.record_success() if ok else breaker.record_failure()

    Warning: the success path is two method calls and a deque append, with no lock:
    the breaker belongs to one event loop, like the sender that owns it.
    """

    __slots__ = (
        "_clock",
        "_events",
        "_failures",
        "_listeners",
        "_open_until",
        "_state",
        "_trial_ok",
        "_trials",
        "config",
    )

    def __init__(self, config: BreakerConfig | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._events: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._open_until = 0.0
        self._trials = 0
        self._trial_ok = 0
        self._listeners: list[StateListener] = []

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(old, new)`` on every state change."""
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose time is up reads as half-open)."""
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._move(BreakerState.HALF_OPEN)
        return self._state

    @property
    def open_until(self) -> float:
        """Clock time at which an open breaker starts its trials."""
        return self._open_until

    def allow(self) -> bool:
        """Whether one call may go now; in half-open each ``True`` uses one trial."""
        state = self._state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            if self._clock() < self._open_until:
                return False
            self._move(BreakerState.HALF_OPEN)
        if self._trials < self.config.half_open_trials:
            self._trials += 1
            return True
        return False

    def record_success(self) -> None:
        """Count one successful call."""
        state = self._state
        if state is BreakerState.CLOSED:
            self._record(True)
        elif state is BreakerState.HALF_OPEN:
            self._trial_ok += 1
            if self._trial_ok >= self.config.half_open_trials:
                self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """Count one failed call; may open the breaker."""
        state = self._state
        if state is BreakerState.CLOSED:
            self._record(False)
            total = len(self._events)
            if total >= self.config.minimum_calls and self._failures >= self.config.failure_rate_threshold * total:
                self.trip()
        elif state is BreakerState.HALF_OPEN:
            self.trip()

    def release(self) -> None:
        """An allowed call that was never made: in half-open, its trial goes back."""
        if self._state is BreakerState.HALF_OPEN and self._trials > self._trial_ok:
            self._trials -= 1

    def trip(self) -> None:
        """Open now, for ``open_duration`` seconds, whatever the statistics say."""
        self._open_until = self._clock() + self.config.open_duration
        if self._state is not BreakerState.OPEN:
            self._move(BreakerState.OPEN)

    def _record(self, ok: bool) -> None:
        now = self._clock()
        events = self._events
        events.append((now, ok))
        if not ok:
            self._failures += 1
        horizon = now - self.config.window
        while events[0][0] < horizon:
            if not events.popleft()[1]:
                self._failures -= 1

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._trials = self._trial_ok = 0
        if new is BreakerState.CLOSED:
            self._events.clear()
            self._failures = 0
        for listener in self._listeners:
            listener(old, new)

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state.value}, window_calls={len(self._events)}, failures={self._failures})"
