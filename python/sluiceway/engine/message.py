"""What a handler receives: the ``Message`` struct, and the ``Priority`` levels."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import msgspec


class Priority(enum.IntEnum):
    """Dispatch order: every waiting ``HIGH`` message goes before any ``NORMAL``, and so on."""

    HIGH = 0
    NORMAL = 1
    LOW = 2


class Message(msgspec.Struct, frozen=True):
    """One delivery of an enqueued payload to a handler.

    ``id`` is stable across re-deliveries; ``attempt`` counts deliveries from 1;
    ``enqueued_at`` is wall-clock seconds since the epoch (``time.time()``) when the
    supervisor accepted it; ``ordering_key`` is the key given to ``enqueue_message``.
    """

    id: str
    payload: Any
    priority: Priority
    attempt: int
    enqueued_at: float
    ordering_key: str | None = None


class MessageIds(Sequence[str]):
    """The ids of a batch from ``enqueue_many``: a read-only sequence, each id made when read.

    A batch's seqs are consecutive, so the batch is kept as a prefix, its first seq and its
    length rather than as one string per message.

    Example::

        ids = await engine.enqueue_many(payloads)
        ids[0], ids[-1], len(ids), list(ids)
    """

    __slots__ = ("_count", "_first", "_prefix")

    def __init__(self, engine_id: str, first: int, count: int) -> None:
        self._prefix = engine_id + "-"
        self._first = first
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self._prefix + str(self._first + i) for i in range(*index.indices(self._count))]
        if not -self._count <= index < self._count:
            raise IndexError(f"message id index {index} out of range for a batch of {self._count}")
        return self._prefix + str(self._first + index % self._count)

    def __iter__(self) -> Iterator[str]:
        prefix = self._prefix
        return (prefix + str(seq) for seq in range(self._first, self._first + self._count))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MessageIds):
            return list(self) == list(other)
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MessageIds({self[:3]}{'...' if self._count > 3 else ''}, {self._count} ids)"


@dataclass(frozen=True)
class Accepted:
    """What ``MessageParallelizer.accept`` hands back at once.

    ``committed`` resolves to True once the message is accepted (with a journal: committed
    to it, so it survives a crash), to False if its ``dedup_key`` was already accepted
    within ``dedup_window`` (nothing was accepted; ``id`` is then ""), and raises ``JournalError`` if the
    journal could not commit it (nothing was accepted). ``result`` is the handler's result,
    as ``submit`` returns it (it raises ``DuplicateMessage`` for a duplicate).

    Example::

        accepted = engine.accept(payload, dedup_key=wamid)
        if await accepted.committed:    # answer the webhook 200 only now
            ...
    """

    id: str
    committed: asyncio.Future[bool]
    result: asyncio.Future[Any]
