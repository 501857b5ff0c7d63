"""The sender's rate limits: the business number's global limit, adaptive pacing, and the pair rate.

Built on the Rust core's limiters; every call passes the sender's clock as ``now``.
:class:`SendLimits` puts them and the circuit breaker behind the one question the
sender asks before each send. Where the limits live is one seam, :class:`RateLimitBackend`:
:class:`LocalRateLimits` (this process's Rust limiters, the default) or
:class:`~sluiceway.whatsapp.redis_limits.RedisRateLimits` (shared by every node on the number).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol

from sluiceway.core import KeyedLimiter, RateLimiter, TokenBucket, WindowLimiter
from sluiceway.whatsapp.breaker import CircuitBreaker
from sluiceway.whatsapp.config import RateLimits, RecipientLimit, SenderConfig

#: The pacing bucket holds this many seconds of the current rate, so sends leave as a
#: smooth stream rather than one burst per window; network jitter then cannot bunch
#: them into a window at the provider that our own window never saw.
PACING_BURST_SECONDS = 0.1
#: The adaptive rate never drops below this share of the configured rate.
MIN_RATE_FRACTION = 0.02
#: Throughput errors within this many seconds of a decrease belong to the same
#: overload (they were in flight already) and do not cut the rate again.
DECREASE_COOLDOWN = 1.0
#: Keys the per-recipient limiter keeps before evicting idle ones.
MAX_RECIPIENTS = 100_000


class GlobalLimit:
    """The business number's limit: exact sliding windows plus an adaptive pacing bucket.

    The windows (``per_second``, ``per_minute``, ``per_hour``) are the hard guarantee;
    the pacing bucket runs at the *current* rate, which drops multiplicatively on a
    throughput error and climbs back linearly, never above ``per_second``.

    Example::

        limit = GlobalLimit(RateLimits.cloud_api(), decrease=0.5, recovery=0.05)
        if limit.try_acquire(now):
            ...send...
            limit.on_success(now)
    """

    __slots__ = ("_bucket", "_last_cut", "_last_update", "_limiter", "ceiling", "decrease", "floor", "rate", "recovery")

    def __init__(self, limits: RateLimits, *, decrease: float, recovery: float, now: float = 0.0) -> None:
        self.ceiling = float(limits.per_second)
        self.floor = max(self.ceiling * MIN_RATE_FRACTION, 0.1)
        self.rate = self.ceiling
        self.decrease = decrease
        self.recovery = recovery * self.ceiling
        self._bucket = TokenBucket(self.ceiling, self._burst(self.ceiling), now=now)
        windows = [WindowLimiter(limits.per_second, 1.0)]
        if limits.per_minute is not None:
            windows.append(WindowLimiter(limits.per_minute, 60.0))
        if limits.per_hour is not None:
            windows.append(WindowLimiter(limits.per_hour, 3600.0))
        self._limiter = RateLimiter([self._bucket, *windows])
        self._last_cut = -1e18
        self._last_update = now

    @staticmethod
    def _burst(rate: float) -> float:
        return max(1.0, rate * PACING_BURST_SECONDS)

    def try_acquire(self, now: float) -> bool:
        """Take one send from every limit, or none if any is exhausted."""
        return self._limiter.try_acquire(1, now)

    def time_until(self, now: float) -> float:
        """Seconds until one send would be admitted."""
        return self._limiter.time_until(1, now)

    def on_throttled(self, now: float) -> bool:
        """A throughput error: cut the rate (once per cooldown); returns whether it was cut."""
        if now - self._last_cut < DECREASE_COOLDOWN:
            return False
        self._last_cut = now
        self._set(max(self.floor, self.rate * self.decrease), now)
        return True

    def on_success(self, now: float) -> None:
        """A send went through: recover the rate linearly with the time since the last change."""
        if self.rate < self.ceiling:
            self._set(min(self.ceiling, self.rate + self.recovery * (now - self._last_update)), now)
        else:
            self._last_update = now

    def _set(self, rate: float, now: float) -> None:
        self.rate = rate
        self._last_update = now
        self._bucket.set_rate(rate, now)


class RecipientLimits:
    """The pair rate: ``limit`` sends per ``window`` seconds to each recipient, plus penalties.

    A 131056 from the provider means our view of that recipient is off (another
    sender on the same number, a clock step): the recipient is held back for one
    full window on top of what the limiter says.
    """

    __slots__ = ("_held", "_keyed", "window")

    def __init__(self, limit: RecipientLimit) -> None:
        self._keyed = KeyedLimiter(limit.limit, limit.window, MAX_RECIPIENTS)
        self.window = limit.window
        self._held: dict[str, float] = {}

    def try_acquire(self, recipient: str, now: float) -> bool:
        if self._held:
            until = self._held.get(recipient)
            if until is not None:
                if now < until:
                    return False
                del self._held[recipient]
        return self._keyed.try_acquire(recipient, 1, now)

    def time_until(self, recipient: str, now: float) -> float:
        held = self._held.get(recipient, now) - now
        return max(held, self._keyed.time_until(recipient, 1, now))

    def penalize(self, recipient: str, now: float) -> None:
        """Hold ``recipient`` back for one full window (after a pair-rate error)."""
        self._held[recipient] = now + self.window


class RateLimitBackend(Protocol):
    """Where the global limit and the pair rate are kept; every method is synchronous and cheap.

    A backend that has to ask elsewhere (Redis) answers from what it holds and asks in the
    background; while it cannot ask, it grants nothing.
    """

    #: The configured global rate (sends per second).
    ceiling: float

    @property
    def rate(self) -> float:
        """The global rate now (sends per second)."""
        ...

    def global_wait(self, now: float) -> float:
        """Seconds until the global limit admits one send (0 = now)."""
        ...

    def take_global(self, now: float) -> bool:
        """Take one send from the global limit, or nothing if it is exhausted."""
        ...

    def take_recipient(self, recipient: str, now: float) -> bool:
        """Take one send from ``recipient``'s pair rate, or nothing if it is exhausted or held."""
        ...

    def recipient_wait(self, recipient: str, now: float) -> float:
        """Seconds until ``recipient``'s pair rate admits one send."""
        ...

    def on_sent(self, now: float) -> None:
        """The provider took a send."""
        ...

    def on_throughput_error(self, now: float) -> bool:
        """The provider said we send too fast (130429): slow down; whether this is a new slowdown."""
        ...

    def on_pair_rate_error(self, recipient: str, now: float) -> None:
        """The provider said we send too fast to ``recipient`` (131056): hold it back."""
        ...

    def upcoming(self, recipients: Iterable[str]) -> None:
        """The global limit stopped a round; ``recipients`` are next in line (a backend may ask ahead for them)."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds (the sender is closing)."""
        ...


class LocalRateLimits:
    """This process's limits (the Rust limiters): :class:`GlobalLimit` and :class:`RecipientLimits`.

    The methods are the limits' own, bound once: the round loop calls them for every
    message, and a wrapper would add a Python call each time.
    """

    __slots__ = (
        "_global",
        "ceiling",
        "global_wait",
        "on_pair_rate_error",
        "on_sent",
        "on_throughput_error",
        "recipient_wait",
        "take_global",
        "take_recipient",
    )

    def __init__(self, config: SenderConfig, *, now: float) -> None:
        self._global = GlobalLimit(
            config.rate_limit, decrease=config.throttle_decrease, recovery=config.throttle_recovery, now=now
        )
        recipients = RecipientLimits(config.per_recipient)
        self.ceiling = self._global.ceiling
        self.global_wait = self._global.time_until
        self.take_global = self._global.try_acquire
        self.take_recipient = recipients.try_acquire
        self.recipient_wait = recipients.time_until
        self.on_sent = self._global.on_success
        self.on_throughput_error = self._global.on_throttled
        self.on_pair_rate_error = recipients.penalize

    @property
    def rate(self) -> float:
        return self._global.rate

    def upcoming(self, recipients: Iterable[str]) -> None:
        """Nothing to ask ahead: the limits are here."""

    async def aclose(self) -> None:
        """Nothing to release."""


class Admission(enum.Enum):
    """The answer of :meth:`SendLimits.admit`."""

    #: Send now: one send was taken from every limit.
    GRANTED = "granted"
    #: A rate limit (global or this recipient's) says not yet.
    WAIT = "wait"
    #: The circuit breaker admits nothing now: stop forming the round.
    STOP = "stop"


# Plain names for the members: an enum attribute costs ~140 ns on Python 3.11, and admit runs for every send.
_GRANTED, _WAIT, _STOP = Admission.GRANTED, Admission.WAIT, Admission.STOP


class SendLimits:
    """Every limit one send must pass, asked in one place: the recipient's pair rate, the global
    limit (both kept by a :class:`RateLimitBackend`, this process's own by default) and the breaker.

    The answers of the provider feed back through ``on_sent(now)``, ``on_throughput_error(now)``
    and ``on_pair_rate_error(recipient, now)``. Also:

    * ``global_wait(now)``: seconds until the global limit admits one send;
    * ``recipient_wait(recipient, now)``: seconds until ``recipient``'s pair rate (and any
      penalty) admits one send;
    * ``on_sent(now)``: the provider took a send, so the adaptive rate recovers;
    * ``upcoming(recipients)``: the global limit stopped a round and ``recipients`` come next
      (a shared backend asks ahead for their pair tokens).

    Those are the backend's own methods, bound once: the round loop calls them for every
    message, and a wrapper would add a Python call each time.
    """

    __slots__ = (
        "_breaker",
        "_take_global",
        "_take_recipient",
        "backend",
        "global_wait",
        "on_pair_rate_error",
        "on_sent",
        "on_throughput_error",
        "recipient_wait",
        "upcoming",
    )

    def __init__(
        self, config: SenderConfig, breaker: CircuitBreaker, *, now: float, backend: RateLimitBackend | None = None
    ) -> None:
        self.backend = backend = LocalRateLimits(config, now=now) if backend is None else backend
        self._breaker = breaker
        self._take_global = backend.take_global
        self._take_recipient = backend.take_recipient
        self.global_wait = backend.global_wait
        self.recipient_wait = backend.recipient_wait
        self.on_sent = backend.on_sent
        self.on_throughput_error = backend.on_throughput_error
        self.on_pair_rate_error = backend.on_pair_rate_error
        self.upcoming = backend.upcoming

    def admit(self, recipient: str, now: float) -> Admission:
        """Ask for one send to ``recipient`` now; with ``GRANTED`` it is taken and must be sent or given back."""
        if self.global_wait(now) > 0 or not self._take_recipient(recipient, now):
            return _WAIT
        if not self._breaker.allow():
            return _STOP
        if not self._take_global(now):  # global_wait said 0; a rounding edge must not overspend
            self._breaker.release()
            return _WAIT
        return _GRANTED

    def give_back(self) -> None:
        """A granted send was never made (its chain stopped first): return the breaker's half-open trial."""
        self._breaker.release()

    @property
    def rate(self) -> float:
        """The global rate now (sends per second): adaptive locally, just under the ceiling on Redis."""
        return self.backend.rate

    @property
    def ceiling(self) -> float:
        """The configured global rate (sends per second), the most the adaptive rate climbs back to."""
        return self.backend.ceiling
