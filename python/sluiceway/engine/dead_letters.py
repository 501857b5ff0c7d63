"""Messages that used up their attempts, kept with the error that ended them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from sluiceway.engine.message import Priority


class DeadLetter(msgspec.Struct, frozen=True):
    """A message that failed ``attempts`` times; ``error`` and ``traceback`` are from the last try.

    ``reason`` is the last failure's kind: ``"error"`` (the handler raised), ``"timeout"``
    (it ran past ``worker_timeout``), ``"crashed"`` (its worker died while running it alone)
    or ``"unencodable result"``.
    """

    id: str
    payload: Any
    priority: Priority
    attempts: int
    enqueued_at: float
    dead_at: float
    reason: str
    error: str
    traceback: str
    ordering_key: str | None = None


class DeadLetterQueue:
    """An in-memory, insertion-ordered store of dead letters.

    Warning:
        Without a journal it lives in the supervisor's memory and is lost with the process;
        with one (``MessageParallelizer(journal=path)``) the journal keeps every dead letter
        and this mirrors it.
    """

    def __init__(self) -> None:
        self._letters: list[DeadLetter] = []

    def add(self, letter: DeadLetter) -> None:
        self._letters.append(letter)

    def snapshot(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        return list(self._letters)

    def take_all(self) -> list[DeadLetter]:
        """Remove and return every dead letter (for replay)."""
        letters, self._letters = self._letters, []
        return letters

    def remove(self, ids: set[str] | None) -> list[DeadLetter]:
        """Remove and return the dead letters with ``ids`` (None: all of them)."""
        if ids is None:
            return self.take_all()
        removed = [letter for letter in self._letters if letter.id in ids]
        self._letters = [letter for letter in self._letters if letter.id not in ids]
        return removed

    def __len__(self) -> int:
        return len(self._letters)

    def __iter__(self) -> Iterator[DeadLetter]:
        return iter(list(self._letters))
