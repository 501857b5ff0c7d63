"""The rate limiters against small pure-Python reference models.

Each state machine drives one limiter and its model with the same random
operations on a random non-decreasing clock (plus the odd step back, which
both must treat as the latest time seen) and checks results, state and the
limiter's guarantee over the whole history of admitted acquisitions.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sluiceway._core import KeyedLimiter, RateLimiter, TokenBucket, WindowLimiter

#: Time steps: exact multiples hit window boundaries, free floats hit everything else.
STEPS = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5]), st.floats(0.0, 4.0))
WINDOWS = st.sampled_from([0.5, 1.0, 2.5, 10.0])
START = 1000.0


# ---------------------------------------------------------------- reference models


class BucketModel:
    """A token bucket refilled lazily on every call, with the latest time seen as its clock."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.held, self.last = rate, burst, burst, now

    def refill(self, now: float) -> None:
        if now > self.last:
            self.held = min(self.held + (now - self.last) * self.rate, self.burst)
            self.last = now

    def admits(self, n: float, now: float) -> bool:
        self.refill(now)
        return self.held >= n

    def consume(self, n: float) -> None:
        self.held -= n


class WindowModel:
    """Every admitted instant kept forever; ``in_window`` recounts them from scratch."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.history: list[float] = []
        self.latest = -math.inf

    def clamp(self, now: float) -> float:
        self.latest = max(self.latest, now)
        return self.latest

    def in_window(self) -> list[float]:
        return [s for s in self.history if self.latest - s < self.window]

    def admits(self, n: int, now: float) -> bool:
        self.clamp(now)
        return len(self.in_window()) + n <= self.limit

    def consume(self, n: int) -> None:
        self.history.extend([self.latest] * n)

    def expected_wait(self, n: int) -> float:
        held = self.in_window()
        need = len(held) + n - self.limit
        return 0.0 if need <= 0 else held[need - 1] + self.window - self.latest


Model = BucketModel | WindowModel


def assert_window_guarantee(history: list[float], limit: int, window: float) -> None:
    """No half-open interval ``[t, t + window)`` holds more than ``limit`` of ``history``."""
    ordered = sorted(history)
    for i in range(len(ordered) - limit):
        assert ordered[i + limit] - ordered[i] >= window, (ordered[i : i + limit + 1], window)


# ---------------------------------------------------------------- TokenBucket


class TokenBucketMachine(RuleBasedStateMachine):
    @initialize(rate=st.sampled_from([0.5, 1.0, 3.0, 80.0]), burst=st.sampled_from([1.0, 2.5, 10.0]))
    def create(self, rate: float, burst: float) -> None:
        self.now = START
        self.bucket = TokenBucket(rate, burst, now=self.now)
        self.model = BucketModel(rate, burst, self.now)
        #: (time, n) admitted since the rate last changed.
        self.admitted: list[tuple[float, float]] = []

    @rule(dt=STEPS)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(n=st.sampled_from([0.5, 1.0, 2.0]), back=st.sampled_from([0.0, 0.0, 3.0]))
    def try_acquire(self, n: float, back: float) -> None:
        """Admits exactly when the model holds n tokens, a clock step back counting as the latest time."""
        if n > self.model.burst:
            with pytest.raises(ValueError, match="burst"):
                self.bucket.try_acquire(n, now=self.now - back)
            return
        expected = self.model.admits(n, self.now - back)
        assert self.bucket.try_acquire(n, now=self.now - back) is expected
        if expected:
            self.model.consume(n)
            self.admitted.append((self.model.last, n))

    @rule(n=st.sampled_from([0.5, 1.0, 2.0]))
    def wait_then_acquire(self, n: float) -> None:
        """time_until is 0.0 iff tokens are there, and acquiring after exactly that wait succeeds."""
        if n > self.model.burst:
            with pytest.raises(ValueError, match="burst"):
                self.bucket.time_until(n, now=self.now)
            return
        self.model.refill(self.now)
        wait = self.bucket.time_until(n, now=self.now)
        assert (wait == 0.0) is (self.model.held >= n)
        assert math.isclose(wait, max(0.0, (n - self.model.held) / self.model.rate), rel_tol=1e-9, abs_tol=1e-9)
        self.now += wait
        assert self.model.admits(n, self.now)
        assert self.bucket.try_acquire(n, now=self.now)
        self.model.consume(n)
        self.admitted.append((self.now, n))

    @rule(rate=st.sampled_from([0.25, 2.0, 50.0]))
    def set_rate(self, rate: float) -> None:
        """A new rate applies from now on; tokens accrued so far are kept."""
        self.model.refill(self.now)
        self.bucket.set_rate(rate, now=self.now)
        self.model.rate = rate
        assert self.bucket.rate == rate
        self.admitted.clear()

    @invariant()
    def never_more_than_burst_plus_rate_times_elapsed(self) -> None:
        """Over any interval [a, b] at one rate, at most burst + rate * (b - a) tokens were taken."""
        for i, (start, _) in enumerate(self.admitted):
            taken = 0.0
            for end, n in self.admitted[i:]:
                taken += n
                assert taken <= self.model.burst + self.model.rate * (end - start) + 1e-9

    @invariant()
    def tokens_match_the_model(self) -> None:
        self.model.refill(self.now)
        held = self.bucket.tokens(now=self.now)
        assert math.isclose(held, self.model.held, rel_tol=1e-9, abs_tol=1e-9)
        assert -1e-9 <= held <= self.model.burst


TestTokenBucket = TokenBucketMachine.TestCase


# ---------------------------------------------------------------- WindowLimiter


class WindowLimiterMachine(RuleBasedStateMachine):
    @initialize(limit=st.integers(1, 5), window=WINDOWS)
    def create(self, limit: int, window: float) -> None:
        self.now = START
        self.limiter = WindowLimiter(limit, window)
        self.model = WindowModel(limit, window)

    @rule(dt=STEPS)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(n=st.integers(1, 6), back=st.sampled_from([0.0, 0.0, 0.0, 5.0]))
    def try_acquire(self, n: int, back: float) -> None:
        """Admits exactly when fewer than limit - n + 1 acquisitions are under window old."""
        if n > self.limiter.limit:
            with pytest.raises(ValueError, match="limit"):
                self.limiter.try_acquire(n, now=self.now - back)
            return
        expected = self.model.admits(n, self.now - back)
        assert self.limiter.try_acquire(n, now=self.now - back) is expected
        if expected:
            self.model.consume(n)

    @rule(n=st.integers(1, 5))
    def wait_then_acquire(self, n: int) -> None:
        """time_until is the exact wait: nothing fits halfway there, n fit right after it."""
        if n > self.limiter.limit:
            return
        self.model.clamp(self.now)
        wait = self.limiter.time_until(n, now=self.now)
        assert math.isclose(wait, self.model.expected_wait(n), rel_tol=1e-9, abs_tol=1e-9)
        if wait > 1e-6:
            assert self.limiter.time_until(n, now=self.now + wait / 2) > 0.0
        self.now += wait
        assert self.model.admits(n, self.now)
        assert self.limiter.try_acquire(n, now=self.now)
        self.model.consume(n)

    @rule(limit=st.integers(1, 5))
    def set_limit(self, limit: int) -> None:
        """A new limit applies at once; past acquisitions keep counting."""
        self.limiter.set_limit(limit)
        self.model.limit = limit

    @invariant()
    def tokens_match_the_model(self) -> None:
        self.model.clamp(self.now)
        assert self.limiter.tokens(now=self.now) == max(0, self.model.limit - len(self.model.in_window()))

    @invariant()
    def never_more_than_limit_in_any_window(self) -> None:
        # set_limit may lower the limit; the guarantee holds for the largest limit used.
        assert_window_guarantee(self.model.history, 5, self.model.window)


class FixedLimitWindowMachine(WindowLimiterMachine):
    """Without set_limit the guarantee holds for the limiter's own limit, exactly."""

    @precondition(lambda self: False)
    @rule(limit=st.integers(1, 5))
    def set_limit(self, limit: int) -> None:
        raise AssertionError("disabled")

    @invariant()
    def never_more_than_limit_in_any_window(self) -> None:
        assert_window_guarantee(self.model.history, self.model.limit, self.model.window)


TestWindowLimiter = WindowLimiterMachine.TestCase
TestWindowLimiterFixedLimit = FixedLimitWindowMachine.TestCase


# ---------------------------------------------------------------- RateLimiter


class RateLimiterMachine(RuleBasedStateMachine):
    @initialize(
        rate=st.sampled_from([0.5, 2.0, 10.0]),
        burst=st.sampled_from([1.0, 3.0, 6.0]),
        windows=st.lists(st.tuples(st.integers(1, 5), WINDOWS), min_size=1, max_size=2),
    )
    def create(self, rate: float, burst: float, windows: list[tuple[int, float]]) -> None:
        self.now = START
        bucket = TokenBucket(rate, burst, now=self.now)
        limiters: list[TokenBucket | WindowLimiter] = [bucket, *(WindowLimiter(lim, w) for lim, w in windows)]
        self.limiter = RateLimiter(limiters)
        self.members = limiters
        self.models: list[Model] = [BucketModel(rate, burst, self.now), *(WindowModel(lim, w) for lim, w in windows)]

    @rule(dt=STEPS)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(n=st.integers(1, 3))
    def try_acquire(self, n: int) -> None:
        """Admits only when every member admits, then takes n from each; a refusal takes nothing anywhere."""
        if any(
            (isinstance(m, BucketModel) and n > m.burst) or (isinstance(m, WindowModel) and n > m.limit)
            for m in self.models
        ):
            with pytest.raises(ValueError, match="could never be admitted"):
                self.limiter.try_acquire(n, now=self.now)
            return
        expected = all(m.admits(n, self.now) for m in self.models)
        assert self.limiter.try_acquire(n, now=self.now) is expected
        if expected:
            for m in self.models:
                m.consume(n)

    @rule(n=st.integers(1, 3))
    def wait_then_acquire(self, n: int) -> None:
        """Waiting the composite's time_until makes every member admit n."""
        try:
            wait = self.limiter.time_until(n, now=self.now)
        except ValueError:
            return
        self.now += wait
        assert all(m.admits(n, self.now) for m in self.models)
        assert self.limiter.try_acquire(n, now=self.now)
        for m in self.models:
            m.consume(n)

    @invariant()
    def every_member_matches_its_model(self) -> None:
        for member, model in zip(self.members, self.models, strict=False):
            if isinstance(model, BucketModel):
                model.refill(self.now)
                assert math.isclose(member.tokens(now=self.now), model.held, rel_tol=1e-9, abs_tol=1e-9)
            else:
                model.clamp(self.now)
                assert member.tokens(now=self.now) == model.limit - len(model.in_window())
                assert_window_guarantee(model.history, model.limit, model.window)


TestRateLimiter = RateLimiterMachine.TestCase


# ---------------------------------------------------------------- KeyedLimiter


class KeyedModel:
    """Per-key histories, keys ordered by latest admission, the oldest forgotten when full."""

    def __init__(self, limit: int, window: float, max_keys: int) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self.held: OrderedDict[str, WindowModel] = OrderedDict()
        self.history: dict[str, list[float]] = {}
        self.relaxed: set[str] = set()
        self.idle_evictions = self.active_evictions = 0
        self.latest = -math.inf

    def try_acquire(self, key: str, n: int, now: float) -> bool:
        self.latest = max(self.latest, now)
        if key not in self.held:
            if len(self.held) >= self.max_keys:
                gone, model = self.held.popitem(last=False)
                model.clamp(self.latest)
                if model.in_window():
                    self.active_evictions += 1
                    self.relaxed.add(gone)
                else:
                    self.idle_evictions += 1
            self.held[key] = WindowModel(self.limit, self.window)
        model = self.held[key]
        if not model.admits(n, self.latest):
            return False
        model.consume(n)
        self.held.move_to_end(key)
        self.history.setdefault(key, []).extend([self.latest] * n)
        return True

    def purge_idle(self, now: float) -> int:
        self.latest = max(self.latest, now)
        idle = [k for k, m in self.held.items() if m.clamp(self.latest) and not m.in_window()]
        for k in idle:
            del self.held[k]
        self.idle_evictions += len(idle)
        return len(idle)


class KeyedLimiterMachine(RuleBasedStateMachine):
    @initialize(limit=st.integers(1, 4), window=WINDOWS, max_keys=st.integers(1, 4))
    def create(self, limit: int, window: float, max_keys: int) -> None:
        self.now = START
        self.limiter = KeyedLimiter(limit, window, max_keys=max_keys)
        self.model = KeyedModel(limit, window, max_keys)

    @rule(dt=STEPS)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(key=st.sampled_from("abcdef"), n=st.integers(1, 4), back=st.sampled_from([0.0, 0.0, 0.0, 5.0]))
    def try_acquire(self, key: str, n: int, back: float) -> None:
        """Each key admits exactly as its own window model; a full map forgets the oldest key."""
        if n > self.model.limit:
            with pytest.raises(ValueError, match="limit"):
                self.limiter.try_acquire(key, n, now=self.now - back)
            return
        assert self.limiter.try_acquire(key, n, now=self.now - back) is self.model.try_acquire(key, n, self.now - back)

    @rule(key=st.sampled_from("abcdef"), n=st.integers(1, 4))
    def time_until(self, key: str, n: int) -> None:
        """time_until matches the key's model, 0.0 for a key not held."""
        if n > self.model.limit:
            return
        model = self.model.held.get(key)
        self.model.latest = max(self.model.latest, self.now)
        expected = 0.0
        if model is not None:
            model.clamp(self.model.latest)
            expected = model.expected_wait(n)
        assert math.isclose(self.limiter.time_until(key, n, now=self.now), expected, rel_tol=1e-9, abs_tol=1e-9)

    @rule()
    def purge_idle(self) -> None:
        """purge_idle forgets exactly the keys with empty windows."""
        assert self.limiter.purge_idle(now=self.now) == self.model.purge_idle(self.now)

    @invariant()
    def memory_is_bounded_and_counted(self) -> None:
        assert len(self.limiter) == len(self.model.held) <= self.model.max_keys
        stats = self.limiter.stats()
        assert stats["keys"] == len(self.limiter)
        assert stats["idle_evictions"] == self.model.idle_evictions
        assert stats["active_evictions"] == self.model.active_evictions

    @invariant()
    def keys_never_actively_evicted_keep_the_exact_guarantee(self) -> None:
        for key, history in self.model.history.items():
            if key not in self.model.relaxed:
                assert_window_guarantee(history, self.model.limit, self.model.window)


TestKeyedLimiter = KeyedLimiterMachine.TestCase


# ---------------------------------------------------------------- examples and errors


def test_window_is_half_open() -> None:
    """An acquisition at s stops counting at exactly s + window."""
    w = WindowLimiter(1, 2.0)
    assert w.try_acquire(now=10.0)
    assert not w.try_acquire(now=11.999)
    assert w.try_acquire(now=12.0)


def test_bucket_starts_full_and_time_until_is_zero_when_available() -> None:
    """A new bucket holds burst tokens and reports no wait for them."""
    b = TokenBucket(1.0, 3.0, now=0.0)
    assert b.tokens(now=0.0) == 3.0
    assert b.time_until(3.0, now=0.0) == 0.0


def test_per_builds_exact_windows_of_a_second_a_minute_and_an_hour() -> None:
    """RateLimiter.per makes one WindowLimiter per limit given, in that order."""
    limiter = RateLimiter.per(second=5, hour=100)
    members = limiter.limiters
    assert [(m.limit, m.window) for m in members if isinstance(m, WindowLimiter)] == [(5, 1.0), (100, 3600.0)]
    assert all(limiter.try_acquire(now=0.0) for _ in range(5))
    assert not limiter.try_acquire(now=0.5)
    assert limiter.time_until(now=0.5) == 0.5


def test_composite_shares_state_with_its_members() -> None:
    """A member used directly counts against the composite too."""
    window = WindowLimiter(2, 1.0)
    limiter = RateLimiter([window])
    assert window.try_acquire(2, now=0.0)
    assert not limiter.try_acquire(now=0.0)


def test_keyed_reports_evictions() -> None:
    """An eviction of a key whose window still counts is reported as active."""
    k = KeyedLimiter(1, 10.0, max_keys=1)
    assert k.try_acquire("a", now=0.0)
    assert k.try_acquire("b", now=1.0)
    assert k.stats() == {"keys": 1, "max_keys": 1, "idle_evictions": 0, "active_evictions": 1}


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: TokenBucket(0.0, 1.0), "rate"),
        (lambda: TokenBucket(-1.0, 1.0), "rate"),
        (lambda: TokenBucket(float("nan"), 1.0), "rate"),
        (lambda: TokenBucket(1.0, 0.0), "burst"),
        (lambda: TokenBucket(1.0, float("inf")), "burst"),
        (lambda: TokenBucket(1.0, 1.0).try_acquire(0.0), "n"),
        (lambda: TokenBucket(1.0, 1.0).try_acquire(2.0), "burst"),
        (lambda: TokenBucket(1.0, 1.0).time_until(1.5), "burst"),
        (lambda: TokenBucket(1.0, 1.0).set_rate(0.0), "rate"),
        (lambda: TokenBucket(1.0, 1.0).try_acquire(now=float("nan")), "now"),
        (lambda: WindowLimiter(0, 1.0), "limit"),
        (lambda: WindowLimiter(1, 0.0), "window"),
        (lambda: WindowLimiter(1, -2.0), "window"),
        (lambda: WindowLimiter(2, 1.0).try_acquire(0), "n"),
        (lambda: WindowLimiter(2, 1.0).try_acquire(3), "limit"),
        (lambda: WindowLimiter(2, 1.0).time_until(3), "limit"),
        (lambda: WindowLimiter(2, 1.0).set_limit(0), "limit"),
        (lambda: RateLimiter([]), "limiters"),
        (lambda: RateLimiter.per(), "second, minute, hour"),
        (lambda: RateLimiter.per(minute=0), "minute"),
        (lambda: RateLimiter([WindowLimiter(1, 1.0)]).try_acquire(0), "n"),
        (lambda: RateLimiter([WindowLimiter(1, 1.0)]).try_acquire(2), "limit"),
        (lambda: KeyedLimiter(0, 1.0), "limit"),
        (lambda: KeyedLimiter(1, 0.0), "window"),
        (lambda: KeyedLimiter(1, 1.0, max_keys=0), "max_keys"),
        (lambda: KeyedLimiter(1, 1.0).try_acquire("k", 0), "n"),
        (lambda: KeyedLimiter(1, 1.0).time_until("k", 2), "limit"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make: object, argument: str) -> None:
    """Each bad argument raises ValueError whose message names it."""
    with pytest.raises(ValueError, match=argument):
        make()  # type: ignore[operator]


def test_duplicate_member_is_refused() -> None:
    """Composing one limiter twice is a ValueError, not a deadlock."""
    w = WindowLimiter(1, 1.0)
    with pytest.raises(ValueError, match="appears twice"):
        RateLimiter([w, WindowLimiter(2, 1.0), w])


def test_non_limiter_member_is_a_type_error() -> None:
    """Only TokenBucket and WindowLimiter can be composed."""
    with pytest.raises(TypeError, match=r"limiters\[1\]"):
        RateLimiter([WindowLimiter(1, 1.0), "nope"])  # type: ignore[list-item]


def test_composites_sharing_members_admit_exactly_under_threads() -> None:
    """Threads acquiring through composites that share members in opposite orders never deadlock or overshoot."""
    import threading

    first, second = WindowLimiter(3000, 60.0), TokenBucket(1e-9, 2500.0, now=0.0)
    composites = [RateLimiter([first, second]), RateLimiter([second, first])]
    admitted = [0] * 4

    def worker(slot: int) -> None:
        limiter = composites[slot % 2]
        for _ in range(1000):
            admitted[slot] += limiter.try_acquire(now=0.0)

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert sum(admitted) == 2500
    assert first.tokens(now=0.0) == 500


def test_reprs_show_the_configuration() -> None:
    """Each limiter's repr is the constructor call that configures it."""
    assert repr(TokenBucket(80, 10)) == "TokenBucket(rate=80.0, burst=10.0)"
    assert repr(WindowLimiter(5, 2)) == "WindowLimiter(limit=5, window=2.0)"
    assert repr(KeyedLimiter(1, 6, max_keys=10)) == "KeyedLimiter(limit=1, window=6.0, max_keys=10)"
    assert repr(RateLimiter.per(second=3)) == "RateLimiter([WindowLimiter(limit=3, window=1.0)])"
