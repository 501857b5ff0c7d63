"""Rate limits shared by every sender on one business number, enforced by Redis.

Several ``sluiceway run`` nodes send for one WhatsApp number; its throughput cap and the
per-recipient pair rate hold across all of them only if one place counts. That place is
one atomic Lua script (:data:`RESERVE_SCRIPT`) on Redis's own clock (``TIME``), so node
clocks never matter. It implements GCRA (the generic cell rate algorithm): each limit is
one key holding its *theoretical arrival time*, and a reservation of ``c`` tokens moves it
``c`` emission intervals on.

Round trips: a node reserves a small batch of global tokens (about 10 ms of the rate) and,
in the same call, a pair token for every recipient it is waiting on, so one round trip
serves several sends. The sender's admission stays synchronous: :class:`RedisRateLimits`
spends what it holds and refills in the background.

Why the rate is a little below the cap: a token is granted at Redis time ``g`` and spent
locally at most ``hold`` seconds after its request left (``hold`` covers the round trip).
The script therefore runs at ``(cap - batch + 1) / (1 + hold)`` per second, which keeps the
sends of any one second of *send time* within the cap; tokens not spent within ``hold``
are dropped, never banked. For the pair rate the same reasoning spaces one recipient's
tokens ``(window + hold) / limit`` apart.

If Redis cannot be reached nothing is granted: senders wait, a limit is never exceeded.
A 130429 (throughput) answer sets a shared *hold until* that stops every node for
``throttle_hold`` seconds; a 131056 (pair rate) pushes that recipient's key one full window
on, for every node.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sluiceway.whatsapp.config import RateLimits, RecipientLimit

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("sluiceway.whatsapp")

#: The reservation covers about this many seconds of the rate per round trip.
BATCH_SECONDS = 0.01
#: Never more than this many global tokens in one reservation.
MAX_BATCH = 16
#: Seconds after its request left within which a granted token must be spent (covers the round trip).
DEFAULT_HOLD = 0.025
#: Seconds every node pauses after a throughput error (130429), shared through Redis.
DEFAULT_THROTTLE_HOLD = 1.0
#: Retry delays (seconds) while Redis cannot be reached: doubled from the first to the last.
RETRY_FIRST, RETRY_LAST = 0.05, 2.0
#: The shortest wait reported while a reservation is in flight (seconds).
MIN_POLL = 0.001

_MICROS = 1_000_000

#: KEYS: [hold, global_1..global_m, pair_1..pair_p]
#: ARGV: [now_us or "" (then Redis TIME), want, m, T_1, tau_1, ..., T_m, tau_m,
#:        pair_T, pair_ttl_ms, throttle_us, penalty_us, p_penalized, penalized flags 0/1 per pair key...]
#: Returns: [granted, global_wait_us, now_us, wait_us per pair key (0 = granted)]
#: All times are integer microseconds: exact in Lua's doubles and in Redis's integer replies.
RESERVE_SCRIPT = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local want = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local base = 4 + 2 * m
local pair_t = tonumber(ARGV[base])
local pair_ttl = tonumber(ARGV[base + 1])
local throttle = tonumber(ARGV[base + 2])
local penalty = tonumber(ARGV[base + 3])
local hold = tonumber(redis.call('GET', KEYS[1]) or '0')
if throttle > 0 and now + throttle > hold then
  hold = now + throttle
  redis.call('SET', KEYS[1], string.format('%.0f', hold), 'PX', math.ceil(throttle / 1000) + 1)
end
local granted = 0
local wait = 0
if want > 0 then
  if now < hold then
    wait = hold - now
  else
    granted = want
    local tats = {}
    for i = 1, m do
      local t = tonumber(ARGV[2 + 2 * i])
      local tau = tonumber(ARGV[3 + 2 * i])
      local tat = tonumber(redis.call('GET', KEYS[1 + i]) or '0')
      if tat < now then tat = now end
      tats[i] = tat
      local c = 0
      if tat - now <= tau then c = math.floor((tau - (tat - now)) / t) + 1 end
      if c < granted then granted = c end
      if c == 0 and tat - now - tau > wait then wait = tat - now - tau end
    end
    if granted > 0 then
      for i = 1, m do
        local t = tonumber(ARGV[2 + 2 * i])
        local tat = tats[i] + granted * t
        redis.call('SET', KEYS[1 + i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
      end
    end
  end
end
local out = {granted, wait, now}
local pairs_at = m + 2
for j = pairs_at, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[j]) or '0')
  if tat < now then tat = now end
  local pw = 0
  if ARGV[base + 4 + j - pairs_at] == '1' then
    tat = tat + penalty
    redis.call('SET', KEYS[j], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + pair_ttl)
    pw = -1
  elseif tat > now then
    pw = tat - now
  else
    redis.call('SET', KEYS[j], string.format('%.0f', now + pair_t), 'PX', math.ceil(pair_t / 1000) + pair_ttl)
  end
  out[#out + 1] = pw
end
return out
"""


class GcraLimit:
    """One global limit as the script sees it: ``count`` per ``period`` seconds, as GCRA parameters in µs.

    ``emission`` is the interval between tokens at the safe rate, ``burst`` how far ahead of
    Redis's clock a reservation may run (enough for one batch of ``batch`` tokens).
    """

    __slots__ = ("burst", "count", "emission", "period", "rate")

    def __init__(self, count: int, period: float, *, batch: int, hold: float) -> None:
        if count < 1:
            raise ValueError(f"a limit needs at least 1 send per period, got {count}")
        if not 1 <= batch <= count:
            raise ValueError(f"a reservation batch must be in 1..{count}, got {batch}")
        self.count, self.period = count, period
        # GCRA grants at most floor((w + burst) / emission) + 1 tokens in any window w of Redis time, and a
        # token is spent within ``hold`` of its grant: so the sends of any ``period`` of send time stay within
        # ``count`` when (period + hold) * rate + batch - 1 < count. The emission interval is rounded up.
        #: Tokens per second the script grants at.
        self.rate = (count - batch + 1) / (period + hold)
        self.emission = math.floor(_MICROS / self.rate) + 1
        self.burst = (batch - 1) * self.emission


def reservation_batch(per_second: int) -> int:
    """Global tokens one reservation asks for: about :data:`BATCH_SECONDS` of the rate, 1 to :data:`MAX_BATCH`."""
    return max(1, min(MAX_BATCH, int(per_second * BATCH_SECONDS)))


class RedisRateLimits:
    """The number's global limits and the pair rate, shared through Redis.

    A :class:`~sluiceway.whatsapp.limits.RateLimitBackend` for ``BatchSender(..., limits=...)``.

    ``key`` names this number's limits, e.g. ``"{namespace}:limits:{phone_number_id}"``:
    every sender on the number must use the same key and the same limits. ``clock`` is
    the sender's clock (local hold times only; the limits run on Redis's clock).

    Example::

        redis = Redis.from_url("redis://localhost:6379/0")
        limits = RedisRateLimits(redis, RateLimits.cloud_api(80), RecipientLimit(), key="bot:limits:1234")
        async with BatchSender(transport, config, limits=limits) as sender: ...
    """

    def __init__(
        self,
        redis: Redis,
        rate_limit: RateLimits,
        per_recipient: RecipientLimit,
        *,
        key: str,
        hold: float = DEFAULT_HOLD,
        throttle_hold: float = DEFAULT_THROTTLE_HOLD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not key:
            raise ValueError("key must name this number's limits, got an empty string")
        if not 0 < hold < 1:
            raise ValueError(f"hold must be in (0, 1) seconds, got {hold!r}")
        self._redis = redis
        self._script = redis.register_script(RESERVE_SCRIPT)
        self._clock = clock
        self._key = key
        self.hold = hold
        windows = [(rate_limit.per_second, 1.0), (rate_limit.per_minute, 60.0), (rate_limit.per_hour, 3600.0)]
        counts = [count for count, _ in windows if count is not None]
        self._batch = min(reservation_batch(rate_limit.per_second), *counts)
        self._limits = [
            GcraLimit(count, period, batch=self._batch, hold=hold) for count, period in windows if count is not None
        ]
        self._pair_emission = round((per_recipient.window + hold) / per_recipient.limit * _MICROS)
        self._pair_window = per_recipient.window
        self._throttle_hold = throttle_hold
        self.ceiling = float(rate_limit.per_second)
        #: The rate the script grants at (sends per second), just under the ceiling.
        self.rate = self._limits[0].rate
        # What this node holds: tokens and the local time they lapse.
        self._tokens = 0
        self._tokens_until = -math.inf
        self._global_blocked_until = -math.inf  # Redis said wait (or it is down): do not ask before this
        self._permits: dict[str, float] = {}  # recipient -> local time its pair token lapses
        self._held: dict[str, float] = {}  # recipient -> local time Redis said to ask again
        self._wanted: set[str] = set()
        self._penalized: set[str] = set()
        self._throttled = False
        self._last_cut = -math.inf
        self._refill: asyncio.Task[None] | None = None
        self._poll = MIN_POLL
        self._retry = 0.0
        self._down = False
        #: Script calls made, and global tokens granted: round trips per send = round_trips / granted.
        self.round_trips = 0
        self.granted = 0
        #: Global tokens that lapsed unspent.
        self.lapsed = 0

    # --- the backend interface (synchronous: spends what is held, asks for more in the background) ---

    def global_wait(self, now: float) -> float:
        if self._tokens > 0:
            if now < self._tokens_until:
                return 0.0
            self.lapsed += self._tokens
            self._tokens = 0
        self._kick()
        return max(self._global_blocked_until - now, self._poll)

    def take_global(self, now: float) -> bool:
        if self._tokens <= 0 or now >= self._tokens_until:
            self._kick()
            return False
        self._tokens -= 1
        if self._tokens * 2 <= self._batch:
            self._kick()  # ask for the next batch before this one runs out
        return True

    def take_recipient(self, recipient: str, now: float) -> bool:
        until = self._permits.pop(recipient, None)
        if until is not None and now < until:
            return True
        held = self._held.get(recipient)
        if held is not None:
            if now < held:
                return False
            del self._held[recipient]
        self._wanted.add(recipient)
        self._kick()
        return False

    def recipient_wait(self, recipient: str, now: float) -> float:
        if recipient in self._permits:
            return 0.0
        return max(self._held.get(recipient, now) - now, self._poll)

    def on_sent(self, now: float) -> None:
        """Nothing to learn from a success: the shared rate is fixed just under the cap."""

    def on_throughput_error(self, now: float) -> bool:
        """Stop every node for ``throttle_hold`` seconds; whether this is a new stop (not within one)."""
        self._tokens = 0
        self._global_blocked_until = max(self._global_blocked_until, now + self._throttle_hold)
        if now - self._last_cut < self._throttle_hold:
            return False
        self._last_cut = now
        self._throttled = True
        self._kick()
        return True

    def on_pair_rate_error(self, recipient: str, now: float) -> None:
        """Hold ``recipient`` back one full window on every node."""
        self._permits.pop(recipient, None)
        self._held[recipient] = now + self._pair_window
        self._penalized.add(recipient)
        self._kick()

    async def aclose(self) -> None:
        """Wait for a reservation in flight (the sender calls this when it closes)."""
        if self._refill is not None:
            self._refill.cancel()
            await asyncio.gather(self._refill, return_exceptions=True)
            self._refill = None

    # --- the background refill ---

    def _kick(self) -> None:
        if self._refill is not None and not self._refill.done():
            return
        now = self._clock()
        need_global = self._tokens * 2 <= self._batch and now >= self._global_blocked_until
        if not (need_global or self._wanted or self._penalized or self._throttled):
            return
        if self._down and now < self._global_blocked_until:
            return
        self._refill = asyncio.get_running_loop().create_task(self._reserve(need_global))

    async def _reserve(self, need_global: bool) -> None:
        recipients = list(self._wanted)
        penalized = list(self._penalized)
        throttled = self._throttled
        self._wanted.clear()
        self._penalized.clear()
        self._throttled = False
        asked = self._clock()
        try:
            reply = await self.call(
                want=self._batch if need_global else 0,
                recipients=recipients + penalized,
                penalized=len(penalized),
                throttle=throttled,
            )
        except Exception as exc:  # no answer: nothing granted, every node waits
            self._wanted.update(recipients)
            self._penalized.update(penalized)
            self._throttled = self._throttled or throttled
            self._retry = min(RETRY_LAST, max(RETRY_FIRST, self._retry * 2))
            self._global_blocked_until = self._clock() + self._retry
            if not self._down:
                log.warning("redis rate limits unreachable (%s); sends wait until it answers", exc)
            self._down = True
            return
        if self._down:
            log.warning("redis rate limits reachable again")
        self._down, self._retry = False, 0.0
        now = self._clock()
        self._poll = max(MIN_POLL, now - asked)
        granted, wait_us = int(reply[0]), int(reply[1])
        lapse = asked + self.hold
        if granted:
            if now >= self._tokens_until:
                self.lapsed += self._tokens
                self._tokens = 0
            self._tokens += granted
            self._tokens_until = lapse
            self.granted += granted
        elif need_global:
            self._global_blocked_until = now + wait_us / _MICROS
        for recipient, pair_wait in zip(recipients, reply[3:], strict=False):
            pair_wait = int(pair_wait)
            if pair_wait == 0:
                self._permits[recipient] = lapse
            else:
                self._held[recipient] = now + pair_wait / _MICROS
        if self._wanted or self._penalized or self._throttled:
            self._refill = None
            self._kick()

    async def call(
        self, *, want: int, recipients: list[str], penalized: int = 0, throttle: bool = False, now: float | None = None
    ) -> list[Any]:
        """One run of the script: ``want`` global tokens and a pair token for each of ``recipients``
        (the last ``penalized`` of them are pushed a window on instead). ``now`` (seconds) replaces
        Redis's clock, for tests. Returns ``[granted, global_wait_us, now_us, pair_wait_us...]``."""
        keys = [f"{self._key}:hold", *(f"{self._key}:global:{limit.period:g}" for limit in self._limits)]
        keys += [f"{self._key}:pair:{r}" for r in recipients]
        args: list[Any] = ["" if now is None else round(now * _MICROS), want, len(self._limits)]
        for limit in self._limits:
            args += [limit.emission, limit.burst]
        pair_ttl_ms = 1000
        args += [
            self._pair_emission,
            pair_ttl_ms,
            round(self._throttle_hold * _MICROS) if throttle else 0,
            round(self._pair_window * _MICROS),
        ]
        unpenalized = len(recipients) - penalized
        args += ["0"] * unpenalized + ["1"] * penalized
        self.round_trips += 1
        reply: list[Any] = await self._script(keys=keys, args=args)
        return reply

    @property
    def limits(self) -> list[GcraLimit]:
        """The global limits the script enforces, per second first."""
        return list(self._limits)
