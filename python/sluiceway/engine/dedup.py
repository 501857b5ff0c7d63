"""``DedupWindow``: the ``dedup_key`` values seen recently, for an engine without a journal.

The journal keeps the same record durably (``dedup`` table); this one has the same
semantics in memory: a key seen within ``window`` seconds is a duplicate, and at most
``max_entries`` keys are remembered, the oldest forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict


class DedupWindow:
    """Recently seen keys, oldest first.

    Example::

        seen = DedupWindow(window=60.0, max_entries=1000)
        seen.first_time("wamid.1", now=0.0)    # True
        seen.first_time("wamid.1", now=30.0)   # False: a duplicate
        seen.first_time("wamid.1", now=61.0)   # True: forgotten after the window
    """

    def __init__(self, window: float, max_entries: int) -> None:
        self._window = window
        self._max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: str, now: float) -> bool:
        """True (and remember ``key`` from ``now``) unless it was seen within the window."""
        seen = self._seen
        while seen:
            oldest, at = next(iter(seen.items()))
            if now - at < self._window:
                break
            del seen[oldest]
        if key in seen:
            return False
        seen[key] = now
        if len(seen) > self._max_entries:
            seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)
