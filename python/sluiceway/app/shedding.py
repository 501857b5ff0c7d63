"""Load shedding: refuse new message webhooks at once while accepted messages would wait too long.

Backpressure (``EngineSink``'s high-water mark) bounds how *many* messages are outstanding;
it does not bound how *long* they wait: at 2-4x the node's capacity the engine stays full (or
the sender's queue grows, when the number's throughput tier is what binds), every accepted
message waits the whole queue out, and replies arrive late for everyone. The shedder bounds
the wait instead. Its signal is the delay a message accepted now can expect before its reply
leaves, by Little's law, in two parts::

    expected delay = messages outstanding (accepted, not handled) / messages handled per second
                   + the reply queue's delay (``backlog_delay``: the sender's unsent / its rate)

with the rate measured over the last ``window`` seconds, from the first completion in it (so
a burst after an idle spell is measured over the time it has been served, not over the idle
window). With no completion in the window the rate is unknown, and the decision stays as it
was: a burst's first messages are not refused before any could finish, and a stalled engine
is already bounded by backpressure. It is chosen over the alternatives
because it reacts before any message is late (the latency of finished messages reports a
backlog only once it has been waited out), it needs nothing from the engine but the count it
already keeps and one call per handled message, and it falls as the backlog drains, also
while shedding (event-loop lag measures the supervisor, not the workers; the sender's backlog
is only the reply half).

Policy, with hysteresis so the answer does not flap:

- start shedding when the expected delay exceeds ``max_delay``; the engine's part counts
  only while at least ``min_outstanding`` messages are outstanding (a handful is never a
  backlog, and its rate over a handful says little);
- stop when the expected delay falls below ``resume_below * max_delay``.

``backlog_delay`` is sampled at most every ``window / 20`` seconds, so it may be a few
milliseconds' work (the runtime reads the sender's queue) without costing every webhook.

While shedding, the ingress answers message webhooks 503 at once (Meta re-delivers them later)
and still takes status webhooks. Nothing accepted is dropped: shedding only refuses new work.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Final

#: Seconds an accepted message may expect to wait before shedding starts, unless told otherwise.
DEFAULT_MAX_DELAY: Final = 10.0
#: Outstanding messages below which the node never sheds.
DEFAULT_MIN_OUTSTANDING: Final = 64
#: Seconds of completions the handling rate is measured over.
DEFAULT_WINDOW: Final = 5.0
#: Completions are counted in buckets of this share of the window (so the rate costs O(1) per call).
_BUCKETS_PER_WINDOW: Final = 20


class LoadShedder:
    """Decides, from the outstanding count and the recent handling rate, whether to refuse new messages.

    Example::

        shedder = LoadShedder(lambda: sink.stats.outstanding, backlog_delay=reply_queue_seconds, max_delay=10.0)
        ...                       # call shedder.record_handled() as each message's handler finishes
        if shedder.overloaded():  # the ingress asks this before taking a message webhook
            ...                   # answer 503

    ``outstanding`` returns the messages accepted and not yet handled; ``clock`` is monotonic
    seconds (injectable for tests).
    """

    def __init__(
        self,
        outstanding: Callable[[], int],
        *,
        backlog_delay: Callable[[], float] | None = None,
        max_delay: float = DEFAULT_MAX_DELAY,
        resume_below: float = 0.5,
        min_outstanding: int = DEFAULT_MIN_OUTSTANDING,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not max_delay > 0:
            raise ValueError(f"max_delay must be positive, got {max_delay}")
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
        self.max_delay = max_delay
        self.resume_below = resume_below
        self.min_outstanding = min_outstanding
        self.window = window
        self._clock = clock
        self._bucket_width = window / _BUCKETS_PER_WINDOW
        self._buckets: collections.deque[list[int]] = collections.deque()  # [bucket index, completions]
        self._in_window = 0
        #: True while new message webhooks are refused.
        self.shedding = False
        #: Times shedding started.
        self.episodes = 0

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
        """Whether to refuse new messages now (see the module docstring for the policy)."""
        delay = self.expected_delay()
        if delay is None:
            return self.shedding  # unknown: keep the current decision
        if self.shedding:
            self.shedding = delay >= self.resume_below * self.max_delay
        elif delay > self.max_delay:
            self.shedding = True
            self.episodes += 1
        return self.shedding
