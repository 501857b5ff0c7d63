"""Remembers recently accepted message ids so that a re-delivered webhook is processed once."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RecentIds:
    """A bounded, time-windowed set of ids with a two-step claim: ``claim`` then ``commit`` or ``release``.

    Meta re-delivers a webhook when our answer is slow or not 200, and may deliver the same
    message twice anyway. The ingress claims a ``wamid`` before handing the message to the
    engine: a second claim of the same id, while the first is pending or after it was
    committed (within ``window`` seconds), fails. If the engine refuses the message
    (backpressure), ``release`` forgets the claim so that Meta's re-delivery is accepted.

    Example::

        seen = RecentIds(window=3600.0)
        if seen.claim(wamid):
            try:
                await engine.enqueue(...)
            except BaseException:
                seen.release(wamid)
                raise
            seen.commit(wamid)

    Warning: ids older than ``window`` seconds, or beyond ``max_entries``, are forgotten
    (oldest first): memory stays bounded, and a re-delivery after that is processed again.
    """

    def __init__(
        self, window: float, max_entries: int = 1_000_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        if max_entries <= 0:
            raise ValueError(f"max_entries must be positive, got {max_entries}")
        self._window = window
        self._max_entries = max_entries
        self._clock = clock
        # Insertion order is commit-time order (the clock is monotonic), so expiry pops from the front.
        self._committed: OrderedDict[str, float] = OrderedDict()
        self._pending: set[str] = set()

    def _expire(self) -> None:
        horizon = self._clock() - self._window
        committed = self._committed
        while committed:
            oldest, at = next(iter(committed.items()))
            if at > horizon and len(committed) <= self._max_entries:
                break
            del committed[oldest]

    def claim(self, message_id: str) -> bool:
        """True if ``message_id`` is new (and is now pending); False if pending or seen in the window."""
        self._expire()
        if message_id in self._pending or message_id in self._committed:
            return False
        self._pending.add(message_id)
        return True

    def commit(self, message_id: str) -> None:
        """The claimed message was accepted: remember it for ``window`` seconds."""
        self._pending.discard(message_id)
        self._committed[message_id] = self._clock()
        self._expire()

    def release(self, message_id: str) -> None:
        """The claimed message was not accepted: forget the claim."""
        self._pending.discard(message_id)

    def __len__(self) -> int:
        """Ids remembered (committed, in the window) plus pending claims."""
        self._expire()
        return len(self._committed) + len(self._pending)
