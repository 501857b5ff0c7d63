"""The 24-hour customer-service window: when each user last wrote to each business number.

Meta lets a business send free-form messages (text, media, interactive, reactions...) to a user
only within 24 hours of that user's last message to the same number; outside it only an
approved template goes through, and a free-form send fails with 131047.

What survives a restart: each reply carries the time its recipient last wrote
(``Outgoing.window_opened_at``), committed to the journal's outbox with it, so a reply re-sent
after a crash is judged by the same time. This in-memory table adds what the supervisor saw
since it started (and the unfinished messages a restart recovers from the journal). A recipient
known to be outside the window gets no free-form message (the fallback template instead, or a
dead letter with the reason); one not known at all (a ``ctx.send`` to someone who has not written
since this start) is sent, and Meta decides: a 131047 then takes the same path. Treating the
unknown as closed would refuse messages to users who wrote an hour before a restart.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Final

#: Seconds a user's message keeps the window open.
WINDOW_SECONDS: Final = 24 * 3600.0
#: Users remembered; the one heard from least recently is forgotten first.
MAX_ENTRIES: Final = 1_000_000


class ConversationWindows:
    """Each ``(business number, user)``'s last inbound time (wall clock), at most ``max_entries`` of them.

    ``default_number`` stands in for a number given as "".

    Example::

        windows = ConversationWindows()
        windows.opened("106540352242922", "15551234567", at=time.time())
        windows.is_closed("106540352242922", "15551234567")   # False for the next 24 hours
    """

    def __init__(
        self,
        *,
        window: float = WINDOW_SECONDS,
        max_entries: int = MAX_ENTRIES,
        default_number: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window <= 0 or max_entries < 1:
            raise ValueError(f"need window > 0 and max_entries >= 1, got {window} and {max_entries}")
        self.window = window
        self.max_entries = max_entries
        #: The number meant by "" (a message or reply that names none).
        self.default_number = default_number
        self._clock = clock
        self._last: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()

    def opened(self, number: str, user: str, at: float) -> None:
        """``user`` wrote to ``number`` at ``at`` (Unix time); an older time than the one known changes nothing."""
        key = (number or self.default_number, user.removeprefix("+"))
        if at <= self._last.get(key, float("-inf")):
            return
        self._last[key] = at
        self._last.move_to_end(key)
        if len(self._last) > self.max_entries:
            self._last.popitem(last=False)

    def last(self, number: str, user: str) -> float:
        """When ``user`` last wrote to ``number``; 0.0 if not known."""
        return self._last.get((number or self.default_number, user.removeprefix("+")), 0.0)

    def is_closed(self, number: str, user: str, also: float = 0.0) -> bool:
        """Whether ``user`` is known to be outside ``number``'s window now (``also``: a time known elsewhere).

        False when nothing is known of ``user`` (see the module docstring).
        """
        last = max(self.last(number, user), also)
        return last > 0 and self._clock() - last > self.window

    def __len__(self) -> int:
        return len(self._last)
