"""Round scheduling: per-recipient queues, served by priority, taken in rounds the limits admit.

Each recipient has its own FIFO of pending messages, and the *recipients* (not the
messages) wait in one ready queue per priority. A round walks the ready queues high →
low and, for each recipient, takes up to ``max_batch_size_per_recipient`` messages that
:class:`~sluiceway.whatsapp.limits.SendLimits` admits, as one chain to be sent in order.
A recipient the pair rate holds back is parked on a timer and never blocks anyone else;
a recipient whose chain is out is busy until :meth:`RoundScheduler.release`.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable

import msgspec

from sluiceway.whatsapp.config import SenderConfig
from sluiceway.whatsapp.limits import Admission, SendLimits
from sluiceway.whatsapp.messages import MAX_TEXT_LENGTH, Text
from sluiceway.whatsapp.outcomes import MessageState
from sluiceway.whatsapp.records import PRIORITIES, SendRecord

#: A recipient's part in the scheduler: in a ready queue, parked on a timer, or with a chain out.
_READY, _WAITING, _BUSY = 0, 1, 2

#: Seconds until a round looks again at recipients that kept their place (their pair token is being asked for).
KEPT_RETRY = 0.001

#: One recipient's messages of a round, to be sent in this order.
Chain = tuple[str, list[SendRecord]]

# Plain names for enum members the round loop checks per message (an enum attribute costs ~140 ns on 3.11).
_GRANTED, _STOP, _IN_FLIGHT = Admission.GRANTED, Admission.STOP, MessageState.IN_FLIGHT


class RoundScheduler:
    """Holds every message not yet taken for a send and forms dispatch rounds from them.

    ``expire`` is called for a message found past its deadline when its turn comes
    (the sender records it as failed). Not thread-safe: it belongs to the sender's loop.
    """

    __slots__ = (
        "_closed",
        "_coalesce",
        "_expire",
        "_hold",
        "_limits",
        "_pending",
        "_per_recipient",
        "_ready",
        "_separator",
        "_seq",
        "_state",
        "_timers",
        "coalesced",
    )

    def __init__(self, config: SenderConfig, limits: SendLimits, expire: Callable[[SendRecord], None]) -> None:
        self._limits = limits
        self._expire = expire
        self._per_recipient = config.max_batch_size_per_recipient
        self._coalesce = config.coalesce_texts
        self._separator = config.coalesce_separator
        self._pending: dict[str, deque[SendRecord]] = {}
        self._state: dict[str, int] = {}
        self._ready: list[deque[str]] = [deque() for _ in PRIORITIES]
        self._timers: list[tuple[float, int, str]] = []
        self._hold: dict[str, float] = {}
        self._seq = itertools.count()
        self._closed = False
        #: Messages sent as part of an earlier message's request so far.
        self.coalesced = 0

    def add(self, m: SendRecord) -> None:
        """Queue ``m`` behind its recipient's other messages; an idle recipient becomes ready at ``m``'s priority."""
        recipient = m.recipient
        pending = self._pending.get(recipient)
        if pending is None:
            pending = self._pending[recipient] = deque()
        pending.append(m)
        if recipient not in self._state:
            self._state[recipient] = _READY
            self._ready[m.level].append(recipient)

    def has_ready(self, level: int) -> bool:
        """Whether a recipient waits in the ready queue of ``level``."""
        return bool(self._ready[level])

    def release_due(self, now: float) -> None:
        """Make every parked recipient whose timer is due ready again."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            recipient = heapq.heappop(timers)[2]
            pending = self._pending.get(recipient)
            if self._state.get(recipient) == _WAITING and pending:
                self._state[recipient] = _READY
                self._ready[pending[0].level].append(recipient)

    def next_due(self, now: float) -> float | None:
        """Seconds until the next parked recipient is due, ``None`` if none is parked."""
        return self._timers[0][0] - now if self._timers else None

    def take_round(self, now: float, slots: int, levels: int) -> tuple[list[Chain], float | None]:
        """Up to ``slots`` admitted messages from the first ``levels`` priorities as per-recipient chains,
        and, when the global limit stopped the round, how long until it admits again (or, when recipients
        kept their place waiting for a pair token, how soon to look again)."""
        per_recipient = self._per_recipient
        limits = self._limits
        chains: list[Chain] = []
        retry: float | None = None
        for level in range(levels):
            ready = self._ready[level]
            # Recipients refused with no wait (a shared backend is asking for their pair token) keep their place.
            kept: list[str] = []
            while ready and slots > 0:
                global_wait = limits.global_wait(now)
                if global_wait > 0:
                    ready.extendleft(reversed(kept))
                    limits.upcoming(ready)
                    return chains, global_wait
                recipient = ready.popleft()
                pending = self._pending[recipient]
                chain: list[SendRecord] = []
                stop = False
                while pending and slots > 0 and len(chain) < per_recipient:
                    m = pending[0]
                    if m.deadline <= now:
                        pending.popleft()
                        self._expire(m)
                        continue
                    admission = limits.admit(recipient, now)
                    if admission is not _GRANTED:
                        stop = admission is _STOP
                        break
                    pending.popleft()
                    if self._coalesce and pending:
                        self._coalesce_behind(m, pending)
                    m.set_state(_IN_FLIGHT)
                    chain.append(m)
                    slots -= 1
                if chain:
                    self._state[recipient] = _BUSY
                    chains.append((recipient, chain))
                elif not pending:
                    del self._state[recipient], self._pending[recipient]
                elif stop or limits.global_wait(now) > 0:
                    ready.appendleft(recipient)
                else:
                    wait = limits.recipient_wait(recipient, now)
                    if wait > 0:
                        self._park(recipient, now + wait)
                    else:
                        kept.append(recipient)
                if stop:
                    ready.extendleft(reversed(kept))
                    return chains, None
            if kept:
                ready.extendleft(reversed(kept))
                retry = KEPT_RETRY  # no timer will wake them: look again shortly
        return chains, retry

    def _coalesce_behind(self, m: SendRecord, pending: deque[SendRecord]) -> None:
        """Join the plain texts queued right behind ``m`` into it, within the 4,096-character limit."""
        first = m.send_as
        if first.type != "text" or first.context is not None or first.text is None:
            return
        body = first.text.body
        sep = self._separator
        joined: list[SendRecord] = []
        while pending:
            nxt = pending[0].message
            if (
                pending[0].riders
                or nxt.type != "text"
                or nxt.context is not None
                or nxt.text is None
                or nxt.text.preview_url != first.text.preview_url
                or len(body) + len(sep) + len(nxt.text.body) > MAX_TEXT_LENGTH
            ):
                break
            body = f"{body}{sep}{nxt.text.body}"
            joined.append(pending.popleft())
        if joined:
            m.riders.extend(joined)
            m.send_as = msgspec.structs.replace(first, text=Text(body, first.text.preview_url))
            self.coalesced += len(joined)

    def hold(self, recipient: str, until: float) -> None:
        """Keep ``recipient`` from its next round until ``until`` at least (a retry's backoff)."""
        self._hold[recipient] = max(until, self._hold.get(recipient, until))

    def put_back(self, recipient: str, unsent: list[SendRecord]) -> None:
        """Return the unfinished tail of ``recipient``'s chain to the front of its queue, in order."""
        pending = self._pending.setdefault(recipient, deque())
        pending.extendleft(reversed(unsent))

    def release(self, recipient: str, now: float) -> None:
        """``recipient``'s chain is over: queue it again, park it, or forget it (nothing after :meth:`close`)."""
        if self._closed:
            return
        pending = self._pending.get(recipient)
        if not pending:
            self._state.pop(recipient, None)
            self._pending.pop(recipient, None)
            return
        due = max(self._hold.pop(recipient, now), now + self._limits.recipient_wait(recipient, now))
        if due > now:
            self._park(recipient, due)
        else:
            self._state[recipient] = _READY
            self._ready[pending[0].level].append(recipient)

    def close(self) -> None:
        """Stop scheduling: chains that end from now on leave their recipients as they are."""
        self._closed = True

    def _park(self, recipient: str, due: float) -> None:
        self._state[recipient] = _WAITING
        heapq.heappush(self._timers, (due, next(self._seq), recipient))
