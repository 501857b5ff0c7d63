"""Load shedding: refuse new message webhooks at once while accepted messages would wait too long.

Backpressure (``EngineSink``'s high-water mark) bounds how *many* messages are outstanding;
it does not bound how *long* they wait. A message waits in one of three places, and the
shedder watches each:

1. in front of the ingress, when the supervisor's event loop is saturated (its one core parses
   the inbound webhooks, the status webhooks and the sends: this is what binds first on a small
   machine with a fast bot). The requests then queue in the sockets and at the sender (Meta),
   where the node cannot count them. The signal is the **event loop's lag**: how late a timer
   set every 20 ms fires (``LoopLag``). A loop with spare time fires it within a millisecond or
   two; a saturated one only after a whole iteration over every ready socket.
2. in the engine, when the workers are what binds: the **expected delay** by Little's law,
   messages outstanding (accepted, not handled) / messages handled per second;
3. in the reply queue, when the number's throughput tier binds: ``backlog_delay`` (the sender's
   unsent replies / its rate).

::

    expected delay = outstanding / handling rate + backlog_delay

with the rate measured over the last ``window`` seconds, from the first completion in it (so
a burst after an idle spell is measured over the time it has been served, not over the idle
window). With no completion in the window the rate is unknown and the engine's part is left
out: a burst's first messages are not refused before any could finish, and a stalled engine
is already bounded by backpressure. These signals react before any message is late (the
latency of finished messages reports a backlog only once it has been waited out), cost one
call per handled message and one timer, and fall as the backlog drains, also while shedding.

Policy:

- the expected delay, with hysteresis so the answer does not flap: every new message is refused
  from when it exceeds ``max_delay`` (the engine's part counts only while at least
  ``min_outstanding`` messages are outstanding: a handful is never a backlog) until it falls
  below ``resume_below * max_delay``;
- the loop's lag, smoothed over a few timers (``LoopLag``), refuses a share of the new messages
  that grows from none at half ``max_lag`` to all at ``max_lag`` (again only while at least
  ``min_outstanding`` messages are outstanding), spread evenly (a refusal each
  time a whole message's worth of share has accrued), as ``toobusy`` does for Node servers. A
  refused message costs the loop a parse and a 503, a taken one its whole way through the node,
  so refusing a share frees the loop until its lag settles inside that band: the node keeps
  taking about what it can finish, near its peak, and answers the rest at once. A timer overdue
  by more than the smoothed lag counts as that much at once, so requests read late in one long
  iteration are refused without waiting for the next timer.

``max_delay`` is ``shed_after`` (1 s by default, half the issue's 2 s bound on the accepted
messages' p99, which also pays for the trip through the node); ``max_lag`` 5 ms, chosen over
7.5, 10 and 20 ms in alternating 10 s runs at 1, 2 and 4 × the node's capacity on the 2-core
benchmark machine: at 2 × the accepted messages' p99 was 0.35-0.38 s against 1.3-1.4 s (7.5 ms)
and 2-3.3 s (10 ms) with the same goodput, at 4 × 0.48 s against 7 s (10 ms), and just below
the capacity it refused 13 of 25,000 messages. On that machine the tenants and the WhatsApp
emulator share the node's cores: ``python -m bench e2e --only overload`` and
``bench/results/e2e.json`` have the figures.

``backlog_delay`` is sampled at most every ``window / 20`` seconds, so it may be a few
milliseconds' work (the runtime reads the sender's queue) without costing every webhook.

While shedding, the ingress answers message webhooks 503 at once (Meta re-delivers them later)
and still takes status webhooks. Nothing accepted is dropped: shedding only refuses new work.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Final

#: Seconds an accepted message may expect to wait before shedding starts, unless told otherwise.
DEFAULT_MAX_DELAY: Final = 1.0
#: Outstanding messages below which the node never sheds.
DEFAULT_MIN_OUTSTANDING: Final = 64
#: Seconds of completions the handling rate is measured over.
DEFAULT_WINDOW: Final = 5.0
#: Completions are counted in buckets of this share of the window (so the rate costs O(1) per call).
_BUCKETS_PER_WINDOW: Final = 20
#: Seconds the event loop's timers may fire late before shedding starts: a loop with spare time
#: is a millisecond or two late, a saturated one a whole iteration over hundreds of requests.
DEFAULT_MAX_LAG: Final = 0.005
#: Seconds between the lag monitor's timers.
DEFAULT_LAG_INTERVAL: Final = 0.02


class LoopLag:
    """How late the running event loop fires a timer set every ``interval`` seconds, smoothed.

    Example::

        lag = LoopLag()
        lag.start()            # in the loop to watch
        ...
        if lag() > 0.02: ...   # seconds, smoothed over the last few timers
        lag.stop()

    Each timer's lateness enters an exponentially weighted mean (weight ``smoothing``), so one
    slow callback does not read as saturation but a loop that stays busy does within a few timers.
    """

    def __init__(
        self,
        interval: float = DEFAULT_LAG_INTERVAL,
        smoothing: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        self.interval = interval
        self.smoothing = smoothing
        self._clock = clock
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        #: The smoothed lateness of the timers so far, in seconds.
        self.lag = 0.0

    def __call__(self) -> float:
        """The smoothed lag; a timer overdue by more than that counts as that much now."""
        overdue = self._clock() - self._due if self._timer is not None else 0.0
        return max(self.lag, overdue)

    def start(self) -> None:
        """Start measuring on the running loop."""
        if self._timer is None:
            self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def record(self, lateness: float) -> None:
        """Take one timer's lateness into the mean (the timer calls it; tests may too)."""
        self.lag += self.smoothing * (max(0.0, lateness) - self.lag)

    def _schedule(self) -> None:
        self._due = self._clock() + self.interval
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self.record(self._clock() - self._due)
        self._schedule()


class LoadShedder:
    """Decides, from the outstanding count and the recent handling rate, whether to refuse new messages.

    Example::

        shedder = LoadShedder(lambda: sink.stats.outstanding, backlog_delay=reply_queue_seconds, loop_lag=LoopLag())
        ...                       # call shedder.record_handled() as each message's handler finishes
        if shedder.overloaded():  # the ingress asks this before taking a message webhook
            ...                   # answer 503

    ``outstanding`` returns the messages accepted and not yet handled, ``loop_lag`` the supervisor
    loop's lag in seconds (a started :class:`LoopLag`); ``clock`` is monotonic seconds (injectable
    for tests).
    """

    def __init__(
        self,
        outstanding: Callable[[], int],
        *,
        backlog_delay: Callable[[], float] | None = None,
        loop_lag: Callable[[], float] | None = None,
        max_delay: float = DEFAULT_MAX_DELAY,
        max_lag: float = DEFAULT_MAX_LAG,
        resume_below: float = 0.5,
        min_outstanding: int = DEFAULT_MIN_OUTSTANDING,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not max_delay > 0:
            raise ValueError(f"max_delay must be positive, got {max_delay}")
        if not max_lag > 0:
            raise ValueError(f"max_lag must be positive, got {max_lag}")
        if not 0 < resume_below <= 1:
            raise ValueError(f"resume_below must be in (0, 1], got {resume_below}")
        if min_outstanding < 1:
            raise ValueError(f"min_outstanding must be at least 1, got {min_outstanding}")
        if not window > 0:
            raise ValueError(f"window must be positive, got {window}")
        self._outstanding = outstanding
        self._backlog_delay = backlog_delay
        self._backlog = 0.0
        self._backlog_sampled = -float("inf")
        self._loop_lag = loop_lag
        self.max_delay = max_delay
        self.max_lag = max_lag
        self.resume_below = resume_below
        self.min_outstanding = min_outstanding
        self.window = window
        self._clock = clock
        self._bucket_width = window / _BUCKETS_PER_WINDOW
        self._buckets: collections.deque[list[int]] = collections.deque()  # [bucket index, completions]
        self._in_window = 0
        #: True while new message webhooks are refused.
        self.shedding = False
        #: Times shedding for the expected delay started.
        self.episodes = 0
        #: Messages refused for the loop's lag.
        self.lag_refused = 0
        self._refusal_credit = 0.0

    def record_handled(self, n: int = 1) -> None:
        """``n`` accepted messages finished (handled or failed for good)."""
        index = int(self._clock() // self._bucket_width)
        buckets = self._buckets
        if buckets and buckets[-1][0] == index:
            buckets[-1][1] += n
        else:
            buckets.append([index, n])
        self._in_window += n

    def rate(self) -> float | None:
        """Messages handled per second over the window, from its first completion; ``None`` if none."""
        now = self._clock()
        width = self._bucket_width
        buckets = self._buckets
        while buckets and buckets[0][0] <= int(now // width) - _BUCKETS_PER_WINDOW:
            self._in_window -= buckets.popleft()[1]
        if not buckets:
            return None
        span = min(self.window, max(now - buckets[0][0] * width, width))
        return self._in_window / span

    def expected_delay(self) -> float | None:
        """Seconds a message accepted now can expect to wait for its reply to leave; ``None`` if unknown."""
        backlog = self._reply_queue_delay()
        outstanding = self._outstanding()
        if outstanding < self.min_outstanding:
            return backlog
        rate = self.rate()
        if rate is None:
            return backlog if backlog > 0 else None
        return outstanding / rate + backlog

    def _reply_queue_delay(self) -> float:
        if self._backlog_delay is None:
            return 0.0
        now = self._clock()
        if now - self._backlog_sampled >= self._bucket_width:
            self._backlog, self._backlog_sampled = self._backlog_delay(), now
        return self._backlog

    def overloaded(self) -> bool:
        """Whether to refuse this new message (see the module docstring for the policy)."""
        if self._delay_overloaded():
            return True
        share = self.lag_share()
        if share == 0.0:
            return False
        # Spread the refusals evenly: refuse whenever a whole message's worth of share has accrued.
        self._refusal_credit += share
        if self._refusal_credit >= 1.0:
            self._refusal_credit -= 1.0
            self.lag_refused += 1
            return True
        return False

    def lag_share(self) -> float:
        """The share of new messages refused for the loop's lag: 0 up to half ``max_lag``, all from it on.

        Also 0 while fewer than ``min_outstanding`` messages are outstanding: a loop busy with a
        handful of messages (a worker starting, a garbage collection) is not one falling behind.
        """
        if self._loop_lag is None or self._outstanding() < self.min_outstanding:
            return 0.0
        lag, floor = self._loop_lag(), self.max_lag / 2
        return min(1.0, max(0.0, (lag - floor) / floor))

    def _delay_overloaded(self) -> bool:
        delay = self.expected_delay()
        if delay is None:
            return self.shedding  # unknown: keep the current decision
        if self.shedding:
            self.shedding = delay >= self.resume_below * self.max_delay
        elif delay > self.max_delay:
            self.shedding = True
            self.episodes += 1
        return self.shedding
