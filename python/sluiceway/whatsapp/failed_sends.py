"""The sender's failed sends (its dead letters): messages that will not be delivered, kept for inspection."""

from __future__ import annotations

from sluiceway.whatsapp.outcomes import FailedSend
from sluiceway.whatsapp.records import PRIORITIES, SendRecord


class FailedSendLog:
    """Every failed send so far, oldest first, and how many there were per priority.

    In memory, like the rest of the sender's state; a durable store of failures would
    replace this class behind the same two calls (``add`` and ``all``).
    """

    __slots__ = ("_by_level", "_entries")

    def __init__(self) -> None:
        self._entries: list[FailedSend] = []
        self._by_level = [0] * len(PRIORITIES)

    def add(
        self, part: SendRecord, sends: int, code: int | None, text: str, failed_at: float, reported_at: float | None
    ) -> None:
        """Keep ``part`` as failed after ``sends`` requests, with the provider's ``code`` and ``text``."""
        priority = PRIORITIES[part.level]
        self._entries.append(FailedSend(part.id, part.message, priority, sends, code, text, failed_at, reported_at))
        self._by_level[part.level] += 1

    def all(self) -> list[FailedSend]:
        """A copy of every failed send, oldest first."""
        return list(self._entries)

    def count(self, level: int) -> int:
        """Failed sends of priority level ``level`` so far."""
        return self._by_level[level]
