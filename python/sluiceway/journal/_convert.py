"""Turn the core's raw results into records; shared by the sync and async faces."""

from __future__ import annotations

from typing import Any

from sluiceway.journal.records import (
    DeadLetter,
    JournaledMessage,
    JournalStats,
    OutboxItem,
    Recovery,
    SenderDeadLetter,
)


def messages(rows: list[tuple[Any, ...]]) -> list[JournaledMessage]:
    return [JournaledMessage._make(row) for row in rows]


def dead_letters(rows: list[tuple[Any, ...]]) -> list[DeadLetter]:
    return [DeadLetter._make(row) for row in rows]


def outbox(rows: list[tuple[Any, ...]]) -> list[OutboxItem]:
    return [OutboxItem.from_core(row) for row in rows]


def sender_dead_letters(rows: list[tuple[Any, ...]]) -> list[SenderDeadLetter]:
    return [SenderDeadLetter._make(row) for row in rows]


def recovery(raw: tuple[int, list[tuple[Any, ...]]]) -> Recovery:
    next_seq, rows = raw
    return Recovery(messages(rows), next_seq)


def stats(raw: dict[str, int]) -> JournalStats:
    return JournalStats(**raw)
