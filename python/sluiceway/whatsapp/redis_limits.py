"""Rate limits shared by every sender on one business number, enforced by Redis.

Several ``sluiceway run`` nodes send for one WhatsApp number; its throughput cap and the
per-recipient pair rate hold across all of them only if one place counts. That place is
one atomic Lua script (:data:`RESERVE_SCRIPT`) on Redis's own clock (``TIME``), so node
clocks never matter. It is GCRA (the generic cell rate algorithm): each limit is one key
holding its *theoretical arrival time* (TAT), moved one emission interval on per token.

**The per-second cap is scheduled, not policed.** A reservation gets up to ``batch`` tokens,
each with its own *slot* on Redis's clock, one emission interval (just over ``1 / cap``) after
the previous token of any node, at most :data:`HORIZON_BATCHES` batches ahead: fewer than
``cap`` slots fall in any second of Redis's clock, as the single-node limiter keeps fewer than
``cap`` sends in any second of its own clock. A node spends a token no earlier than its slot
and no later than ``hold`` seconds after it (both measured conservatively on the local clock
around the round trip); a token not spent in time lapses, it is never banked. Where the sends
arrive, a second may therefore hold up to ``cap * (1 + hold)`` of them when some leave late and
the next on time (2.5% over with the default 25 ms), and the rate never exceeds the cap. The
emulator's limit, a bucket holding one second's worth (the Cloud API states its limit as a rate
too), takes such a burst; a stricter limit would answer the excess 130429, which stops every
node for ``throttle_hold``. Spacing the slots ``(1 + hold) / cap`` apart instead would keep
every second of arrivals within the cap, at the cost of 2.5% of the number's throughput for ever.

**Minute and hour limits are policed** (they rarely bind; the Cloud API has none): GCRA
with half the window's count as burst and a rate that keeps any window plus the horizon
and the hold within the count.

**The pair rate** spaces one recipient's tokens ``(window + pair_hold) / limit`` apart; a pair
token lapses ``pair_hold`` (the horizon plus the hold) after its request. A node asks for
the pair tokens of the recipients next in line, as many as the global tokens it holds, in
the same call as its global tokens, so one round trip serves several sends. A pair token that
lapses unspent (the node was slower than ``pair_hold``) is handed back with the recipient's next
request: if no token was granted for that recipient since, the key goes back to where the grant
found it, so the recipient waits for no window that no send used.

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
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sluiceway.whatsapp.config import RateLimits, RecipientLimit

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("sluiceway.whatsapp")

#: A reservation covers about this many seconds of the rate: two rounds of the cloud_api preset. A
#: round spends at most what one reservation brought, so one round's worth capped a lone node below
#: the rate (with 0.02 s and at most 16 tokens: 790 of 1,000 mps).
BATCH_SECONDS = 0.04
#: Never more than this many global tokens in one reservation (a node's share of the horizon).
MAX_BATCH = 64
#: Slots are handed out at most this many batches ahead of Redis's clock: room for several nodes to
#: each get a whole batch per call (a send may wait up to that long for its slot at full load).
HORIZON_BATCHES = 6
#: Seconds after its slot within which a token must be spent (the round trip comes out of it).
DEFAULT_HOLD = 0.025
#: Seconds every node pauses after a throughput error (130429), shared through Redis.
DEFAULT_THROTTLE_HOLD = 1.0
#: Retry delays (seconds) while Redis cannot be reached: doubled from the first to the last.
RETRY_FIRST, RETRY_LAST = 0.05, 2.0
#: Expired pair holds kept before they are swept.
MAX_HELD = 10_000
#: Seconds between two warnings that round trips are too slow for ``hold``.
SLOW_WARNING_INTERVAL = 60.0
#: The shortest wait reported while a reservation is in flight (seconds).
MIN_POLL = 0.001

_MICROS = 1_000_000

#: KEYS: [hold, per_second, policed_1..policed_m, pair_1..pair_p]
#: ARGV: [now_us or "" (Redis TIME), want, emission, horizon, m, T_1, tau_1, ..., T_m, tau_m,
#:        pair_T, pair_ttl_ms, throttle_us, penalty_us, a flag per pair key: "0" ask, "1" penalize,
#:        "r<tat_us>" ask, handing back an unspent token that set the key to tat_us]
#: Returns: [granted, global_wait_us, now_us, first_slot_us, emission_us, pair wait_us per pair key (0 = granted)]
#: All times are integer microseconds: exact in Lua's doubles and in Redis's integer replies
#: (stored with %.0f: Lua would print a big number in %.14g and lose digits).
RESERVE_SCRIPT = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local want = tonumber(ARGV[2])
local emission = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local m = tonumber(ARGV[5])
local base = 6 + 2 * m
local pair_t = tonumber(ARGV[base])
local pair_ttl = tonumber(ARGV[base + 1])
local throttle = tonumber(ARGV[base + 2])
local penalty = tonumber(ARGV[base + 3])
local function put(key, value, ttl_ms)
  redis.call('SET', key, string.format('%.0f', value), 'PX', math.max(1, math.ceil(ttl_ms)))
end
local hold = tonumber(redis.call('GET', KEYS[1]) or '0')
if throttle > 0 and now + throttle > hold then
  hold = now + throttle
  put(KEYS[1], hold, throttle / 1000 + 1)
end
local granted, wait, first = 0, 0, 0
if want > 0 then
  if now < hold then
    wait = hold - now
  else
    local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
    if tat < now then tat = now end
    granted = want
    if tat - now > horizon then
      granted, wait = 0, tat - now - horizon
    else
      granted = math.min(want, math.floor((horizon - (tat - now)) / emission) + 1)
    end
    local tats = {}
    for i = 1, m do
      local t = tonumber(ARGV[4 + 2 * i])
      local tau = tonumber(ARGV[5 + 2 * i])
      local p = tonumber(redis.call('GET', KEYS[2 + i]) or '0')
      if p < now then p = now end
      tats[i] = p
      local c = 0
      if p - now <= tau then c = math.floor((tau - (p - now)) / t) + 1 end
      if c < granted then granted = c end
      if c == 0 and p - now - tau > wait then wait = p - now - tau end
    end
    if granted > 0 then
      first = tat - now
      put(KEYS[2], tat + granted * emission, (tat - now + granted * emission) / 1000 + 1000)
      for i = 1, m do
        local p = tats[i] + granted * tonumber(ARGV[4 + 2 * i])
        put(KEYS[2 + i], p, (p - now) / 1000 + 1000)
      end
    end
  end
end
local out = {granted, wait, now, first, emission}
local pairs_at = m + 3
for j = pairs_at, #KEYS do
  local flag = ARGV[base + 4 + j - pairs_at]
  local tat = tonumber(redis.call('GET', KEYS[j]) or '0')
  -- The caller never spent the token that set the key to this value, and none was granted since:
  -- undo that grant (its TAT minus one emission is where it found the key, at most its grant time).
  if string.sub(flag, 1, 1) == 'r' and tat == tonumber(string.sub(flag, 2)) then tat = tat - pair_t end
  if tat < now then tat = now end
  local pw = 0
  if flag == '1' then
    tat = tat + penalty
    put(KEYS[j], tat, (tat - now) / 1000 + pair_ttl)
    pw = -1
  elseif tat > now then
    pw = tat - now
  else
    put(KEYS[j], now + pair_t, pair_t / 1000 + pair_ttl)
  end
  out[#out + 1] = pw
end
return out
"""


def reservation_batch(per_second: int) -> int:
    """Global tokens one reservation asks for: about :data:`BATCH_SECONDS` of the rate, 1 to :data:`MAX_BATCH`."""
    return max(1, min(MAX_BATCH, int(per_second * BATCH_SECONDS)))


def scheduled_emission(per_second: int) -> int:
    """The interval (µs) between per-second slots: fewer than ``per_second`` slots in any second of Redis's clock."""
    return _MICROS // per_second + 1


class PolicedLimit:
    """A minute or hour limit as GCRA parameters (µs): ``count`` per ``period`` seconds.

    A token may be spent up to ``slack`` seconds after its grant (the horizon and the hold),
    so any ``period + slack`` seconds of grants must stay within ``count``: with a burst of
    ``b`` tokens that holds when fewer than ``count - b + 1`` emission intervals fit in it.
    """

    __slots__ = ("burst", "count", "emission", "period")

    def __init__(self, count: int, period: float, *, slack: float) -> None:
        self.count, self.period = count, period
        allowance = max(1, count // 2)
        self.emission = math.ceil((period + slack) * _MICROS) // (count - allowance + 1) + 1
        self.burst = (allowance - 1) * self.emission


class RedisRateLimits:
    """The number's global limits and the pair rate, shared through Redis.

    A :class:`~sluiceway.whatsapp.limits.RateLimitBackend` for ``BatchSender(..., limits=...)``.
    ``key`` names this number's limits, e.g. ``"{namespace}:limits:{phone_number_id}"``:
    every sender on the number must use the same key and the same limits. ``clock`` is
    the sender's clock (slots and holds only; the limits run on Redis's clock).

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
        self._script = redis.register_script(RESERVE_SCRIPT)
        self._clock = clock
        self._key = key
        self.hold = hold
        self.batch = reservation_batch(rate_limit.per_second)
        #: Microseconds between two slots of the per-second cap, on every node together.
        self.emission = scheduled_emission(rate_limit.per_second)
        self._horizon = HORIZON_BATCHES * self.batch * self.emission
        slack = self._horizon / _MICROS + hold
        windows = [(rate_limit.per_minute, 60.0), (rate_limit.per_hour, 3600.0)]
        #: The minute and hour limits, policed.
        self.policed = [PolicedLimit(count, period, slack=slack) for count, period in windows if count is not None]
        #: Seconds a pair token may wait for its send: asked ahead, it is spent with a slot within the horizon.
        self.pair_hold = self._horizon / _MICROS + hold
        self._pair_emission = round((per_recipient.window + self.pair_hold) / per_recipient.limit * _MICROS)
        self._pair_window = per_recipient.window
        self._throttle_hold = throttle_hold
        self.ceiling = float(rate_limit.per_second)
        #: The rate the slots run at (sends per second), just under the ceiling.
        self.rate = _MICROS / self.emission
        # The tokens this node holds, in slot order: (local time it may be spent, local time it lapses).
        self._tokens: deque[tuple[float, float]] = deque()
        self._global_blocked_until = -math.inf  # Redis said wait (or it is down): do not ask before this
        # recipient -> (local time its pair token lapses, the value the grant set its key to, µs)
        self._permits: dict[str, tuple[float, int]] = {}
        # recipient -> (key value of a pair token that lapsed unspent, local time handing it back stops mattering)
        self._unspent: dict[str, tuple[int, float]] = {}
        self._held: dict[str, float] = {}  # recipient -> local time Redis said to ask again
        self._wanted: set[str] = set()
        self._asking: set[str] = set()  # pair tokens in the reservation in flight
        #: At most this many pair tokens asked for at once: about what one batch of global tokens can spend.
        self._pair_budget = max(4, 2 * self.batch)
        self._penalized: set[str] = set()
        self._throttled = False
        self._last_cut = -math.inf
        self._refill: asyncio.Task[None] | None = None
        self._kicked = False  # a reservation is to start once the current round is formed
        self._poll = MIN_POLL
        self._retry = 0.0
        self._down = False
        self._slow_warned = -math.inf
        #: Script calls made, and global tokens granted: round trips per send = round_trips / granted.
        self.round_trips = 0
        self.granted = 0
        #: Global tokens that lapsed unspent.
        self.lapsed = 0

    # --- the backend interface (synchronous: spends what is held, asks for more in the background) ---

    def global_wait(self, now: float) -> float:
        tokens = self._tokens
        while tokens and tokens[0][1] <= now:
            tokens.popleft()
            self.lapsed += 1
        if not tokens:
            self._kick()
            return max(self._global_blocked_until - now, self._poll)
        if len(self._wanted) + len(self._asking) >= self._pair_budget:
            return self._poll  # enough pair tokens asked for: the round waits for their answer
        return max(0.0, tokens[0][0] - now)

    def take_global(self, now: float) -> bool:
        tokens = self._tokens
        while tokens and tokens[0][1] <= now:
            tokens.popleft()
            self.lapsed += 1
        if not tokens or tokens[0][0] > now:
            self._kick()
            return False
        tokens.popleft()
        if len(tokens) * 2 <= self.batch:
            self._kick()  # ask for the next batch before this one runs out
        return True

    def take_recipient(self, recipient: str, now: float) -> bool:
        permit = self._permits.pop(recipient, None)
        if permit is not None:
            if now < permit[0]:
                return True
            self._lapsed(recipient, permit, now)
        held = self._held.get(recipient)
        if held is not None:
            if now < held:
                return False
            del self._held[recipient]
        if recipient not in self._asking and len(self._wanted) + len(self._asking) < self._pair_budget:
            self._wanted.add(recipient)
            self._kick()
        return False

    def upcoming(self, recipients: Iterable[str]) -> None:
        """Ask ahead for the pair tokens of the recipients next in line: as many as the global tokens held
        and being topped up. The call waits for a few of them (or for a global top-up) unless nothing is held."""
        now = self._clock()
        permits = self._permits
        for lapsed in [recipient for recipient, (until, _) in permits.items() if until <= now]:
            self._lapsed(lapsed, permits.pop(lapsed), now)
        if len(self._held) > MAX_HELD:  # recipients that never came back: forget their expired holds
            self._held = {recipient: until for recipient, until in self._held.items() if until > now}
        if len(self._unspent) > MAX_HELD:
            self._unspent = {recipient: u for recipient, u in self._unspent.items() if u[1] > now}
        short = len(self._tokens) * 2 <= self.batch
        wanted = min(len(self._tokens) + (self.batch if short else 0), self._pair_budget)
        room = wanted - len(permits) - len(self._wanted) - len(self._asking)
        if room > 0:
            for recipient in recipients:
                if recipient in permits or recipient in self._held or recipient in self._asking:
                    continue
                self._wanted.add(recipient)
                room -= 1
                if room == 0:
                    break
        if short or not permits or len(self._wanted) * 2 >= self.batch:
            self._kick()

    def _lapsed(self, recipient: str, permit: tuple[float, int], now: float) -> None:
        """``recipient``'s pair token lapsed unspent: hand it back with its next request. Past the token's
        own window that no longer matters (the key has moved on or expired)."""
        self._unspent[recipient] = (permit[1], now + self._pair_emission / _MICROS)

    def recipient_wait(self, recipient: str, now: float) -> float:
        """Seconds Redis said ``recipient`` must wait; 0 while its pair token is asked for (it keeps its place)."""
        held = self._held.get(recipient)
        return 0.0 if held is None else max(0.0, held - now)

    def on_sent(self, now: float) -> None:
        """Nothing to learn from a success: the shared rate is fixed just under the cap."""

    def on_throughput_error(self, now: float) -> bool:
        """Stop every node for ``throttle_hold`` seconds; whether this is a new stop (not within one)."""
        self._tokens.clear()
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
        """Stop a reservation in flight (the sender calls this when it closes)."""
        if self._refill is not None:
            self._refill.cancel()
            await asyncio.gather(self._refill, return_exceptions=True)
            self._refill = None

    # --- the background reservation ---

    def _kick(self) -> None:
        """Ask Redis soon: after the round being formed now, so one call carries all its recipients."""
        if self._kicked or (self._refill is not None and not self._refill.done()):
            return
        self._kicked = True
        asyncio.get_running_loop().call_soon(self._start_reservation)

    def _start_reservation(self) -> None:
        self._kicked = False
        now = self._clock()
        blocked = now < self._global_blocked_until
        if self._down and blocked:
            return
        short = len(self._tokens) * 2 <= self.batch
        if not (short and not blocked) and not (self._wanted or self._penalized or self._throttled):
            return
        # A call that goes anyway tops the tokens up to a batch.
        need_global = not blocked and len(self._tokens) < self.batch
        self._refill = asyncio.get_running_loop().create_task(self._reserve(need_global))

    async def _reserve(self, need_global: bool) -> None:
        recipients = list(self._wanted)
        penalized = list(self._penalized)
        unspent = {r: self._unspent.pop(r)[0] for r in recipients if r in self._unspent}
        throttled = self._throttled
        self._asking = set(recipients)
        self._wanted.clear()
        self._penalized.clear()
        self._throttled = False
        asked = self._clock()
        try:
            reply = await self.call(
                want=self.batch if need_global else 0,
                recipients=recipients + penalized,
                penalized=len(penalized),
                throttle=throttled,
                unspent=unspent,
            )
        except Exception as exc:  # no answer: nothing granted, every node waits
            self._asking = set()
            lapses = self._clock() + self._pair_emission / _MICROS
            self._unspent.update({r: (tat, lapses) for r, tat in unspent.items()})
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
        self._asking = set()
        now = self._clock()
        self._poll = max(MIN_POLL, now - asked)
        if now - asked >= self.hold and now - self._slow_warned >= SLOW_WARNING_INTERVAL:
            self._slow_warned = now
            log.warning(
                "a redis rate-limit round trip took %.0f ms, more than hold=%.0f ms: its tokens lapse unspent "
                "(sends slow down, limits still hold); raise hold or bring Redis closer",
                (now - asked) * 1000,
                self.hold * 1000,
            )
        granted, wait_us, first_us, emission_us = int(reply[0]), int(reply[1]), int(reply[3]), int(reply[4])
        if granted:
            # Redis read its clock between ``asked`` and ``now``: a slot has surely come by ``now`` + its
            # offset, and surely not lapsed before ``asked`` + its offset + ``hold``.
            for i in range(granted):
                offset = (first_us + i * emission_us) / _MICROS
                self._tokens.append((now + offset, asked + offset + self.hold))
            self.granted += granted
        elif need_global:
            self._global_blocked_until = now + wait_us / _MICROS
        lapse = asked + self.pair_hold
        granted_tat = int(reply[2]) + self._pair_emission  # what the script set a granted key to
        for recipient, pair_wait in zip(recipients, reply[5:], strict=False):
            pair_wait = int(pair_wait)
            if pair_wait == 0:
                self._permits[recipient] = (lapse, granted_tat)
            else:
                self._held[recipient] = now + pair_wait / _MICROS
        if self._wanted or self._penalized or self._throttled:
            self._refill = None
            self._kick()

    async def call(
        self,
        *,
        want: int,
        recipients: list[str],
        penalized: int = 0,
        throttle: bool = False,
        unspent: Mapping[str, int] | None = None,
        now: float | None = None,
    ) -> list[Any]:
        """One run of the script: ``want`` global tokens and a pair token for each of ``recipients``
        (the last ``penalized`` of them are pushed a window on instead; ``unspent`` hands back, per
        recipient, a pair token never spent, by the value its grant set the key to). ``now`` (seconds) replaces
        Redis's clock, for tests. Returns ``[granted, global_wait_us, now_us, first_slot_us, emission_us,
        pair_wait_us...]``, the first slot as an offset from ``now_us``."""
        keys = [f"{self._key}:hold", f"{self._key}:per-second"]
        keys += [f"{self._key}:per-{limit.period:g}s" for limit in self.policed]
        keys += [f"{self._key}:pair:{r}" for r in recipients]
        args: list[Any] = ["" if now is None else round(now * _MICROS), want, self.emission, self._horizon]
        args.append(len(self.policed))
        for limit in self.policed:
            args += [limit.emission, limit.burst]
        pair_ttl_ms = 1000
        throttle_us = round(self._throttle_hold * _MICROS) if throttle else 0
        args += [self._pair_emission, pair_ttl_ms, throttle_us, round(self._pair_window * _MICROS)]
        unspent = unspent or {}
        asked = recipients[: len(recipients) - penalized]
        args += [f"r{unspent[r]}" if r in unspent else "0" for r in asked] + ["1"] * penalized
        self.round_trips += 1
        reply: list[Any] = await self._script(keys=keys, args=args)
        return reply
