"""The circuit breaker against a pure-Python model, on a manual clock."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sluiceway.testing import ManualClock
from sluiceway.whatsapp import BreakerConfig, BreakerState, CircuitBreaker

CONFIG = BreakerConfig(failure_rate_threshold=0.5, window=10.0, minimum_calls=4, open_duration=5.0, half_open_trials=2)


class BreakerModel:
    """The breaker's specification, written as plainly as possible: outcomes kept as a list."""

    def __init__(self, config: BreakerConfig) -> None:
        self.c = config
        self.state = "closed"
        self.outcomes: list[tuple[float, bool]] = []
        self.open_until = 0.0
        self.trials = 0
        self.trial_ok = 0

    def refresh(self, now: float) -> None:
        if self.state == "open" and now >= self.open_until:
            self.state, self.trials, self.trial_ok = "half_open", 0, 0

    def allow(self, now: float) -> bool:
        self.refresh(now)
        if self.state == "closed":
            return True
        if self.state == "half_open" and self.trials < self.c.half_open_trials:
            self.trials += 1
            return True
        return False

    def release(self) -> None:
        if self.state == "half_open" and self.trials > self.trial_ok:
            self.trials -= 1

    def trip(self, now: float) -> None:
        self.state, self.open_until = "open", now + self.c.open_duration

    def record(self, ok: bool, now: float) -> None:
        if self.state == "closed":
            self.outcomes = [(t, o) for t, o in self.outcomes if t >= now - self.c.window] + [(now, ok)]
            failures = sum(not o for _, o in self.outcomes)
            if (
                not ok
                and len(self.outcomes) >= self.c.minimum_calls
                and failures >= self.c.failure_rate_threshold * len(self.outcomes)
            ):
                self.trip(now)
        elif self.state == "half_open":
            if not ok:
                self.trip(now)
            else:
                self.trial_ok += 1
                if self.trial_ok >= self.c.half_open_trials:
                    self.state, self.outcomes = "closed", []


class BreakerMachine(RuleBasedStateMachine):
    """Random calls, outcomes, trips and clock moves; the breaker must always agree with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(100.0)
        self.breaker = CircuitBreaker(CONFIG, clock=self.clock)
        self.model = BreakerModel(CONFIG)
        self.changes: list[tuple[BreakerState, BreakerState]] = []
        self.breaker.add_listener(lambda old, new: self.changes.append((old, new)))

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 2.5, 5.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def allow(self) -> None:
        assert self.breaker.allow() == self.model.allow(self.clock())

    @rule(ok=st.booleans())
    def record(self, ok: bool) -> None:
        (self.breaker.record_success if ok else self.breaker.record_failure)()
        self.model.record(ok, self.clock())

    @rule()
    def release(self) -> None:
        self.breaker.release()
        self.model.release()

    @rule()
    def trip(self) -> None:
        self.breaker.trip()
        self.model.trip(self.clock())

    @invariant()
    def same_state(self) -> None:
        self.model.refresh(self.clock())
        assert self.breaker.state.value == self.model.state

    @invariant()
    def changes_are_real_transitions(self) -> None:
        assert all(old != new for old, new in self.changes)


TestBreakerMachine = BreakerMachine.TestCase


def test_opens_on_failure_rate_and_recovers_through_half_open() -> None:
    """Enough failures open it, it refuses calls while open, and successful trials close it again."""
    clock = ManualClock()
    breaker = CircuitBreaker(CONFIG, clock=clock)
    for ok in (True, True, False, False):
        assert breaker.allow()
        (breaker.record_success if ok else breaker.record_failure)()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.advance(CONFIG.open_duration)
    assert breaker.allow() and breaker.allow() and not breaker.allow()  # two trials only
    breaker.record_success()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_failures_outside_the_window_do_not_count() -> None:
    """Old failures slide out of the window and no longer push the breaker open."""
    clock = ManualClock()
    breaker = CircuitBreaker(CONFIG, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(CONFIG.window + 1)
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_breaker_config_rejects_bad_values() -> None:
    """Each invalid breaker setting raises ValueError naming the field."""
    with pytest.raises(ValueError, match="failure_rate_threshold"):
        BreakerConfig(failure_rate_threshold=0.0)
    with pytest.raises(ValueError, match="half_open_trials"):
        BreakerConfig(half_open_trials=0)
    with pytest.raises(ValueError, match="open_duration"):
        BreakerConfig(open_duration=-1.0)
