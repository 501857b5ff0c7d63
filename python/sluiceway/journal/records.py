"""What the journal hands back: plain immutable records built from the core's tuples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

OutboxState = Literal["pending", "sending", "sent"]
_OUTBOX_STATES: tuple[OutboxState, ...] = ("pending", "sending", "sent")


class JournaledMessage(NamedTuple):
    """An accepted message not yet finished."""

    seq: int
    priority: int
    #: Wall clock at acceptance.
    enqueued_at: float
    ordering_key: str | None
    #: Times it was handed to a worker (it rises on hand-over, not on failure).
    attempt: int
    #: Handed to a worker and not finished: after a restart, a crash suspect.
    dispatched: bool
    #: Wall clock before which a retry must not run, or None.
    not_before: float | None
    #: The msgpack bytes the engine accepted.
    payload: bytes


class DeadLetter(NamedTuple):
    """A message the engine gave up on, kept until replayed or purged.

    Its fields follow `sluiceway.engine.DeadLetter`'s; ``attempts`` is the message's
    journaled attempt count (hand-overs to a worker) when it was dead-lettered.
    """

    id: int
    seq: int
    priority: int
    enqueued_at: float
    ordering_key: str | None
    payload: bytes
    attempts: int
    reason: str
    error: str
    traceback: str
    #: Wall clock (the journal's ``clock``) when it was dead-lettered.
    dead_at: float


class OutboxItem(NamedTuple):
    """A reply the handler produced, on its way to WhatsApp."""

    id: int
    recipient: str
    body: bytes
    inbound_wamid: str | None
    inbound_seq: int | None
    #: "sending" found after a restart means uncertain: it may have reached WhatsApp.
    state: OutboxState
    sent_wamid: str | None
    #: Times it went on the wire again while an earlier send's outcome was unknown.
    resends: int
    created_at: float

    @classmethod
    def from_core(cls, row: tuple[Any, ...]) -> OutboxItem:
        id, recipient, body, inbound_wamid, inbound_seq, state, sent_wamid, resends, created_at = row
        return cls(
            id, recipient, body, inbound_wamid, inbound_seq, _OUTBOX_STATES[state], sent_wamid, resends, created_at
        )


class SenderDeadLetter(NamedTuple):
    """A reply the sender gave up on."""

    id: int
    recipient: str
    body: bytes
    inbound_wamid: str | None
    inbound_seq: int | None
    attempts: int
    reason: str
    error: str
    failed_at: float


@dataclass(frozen=True)
class Recovery:
    """What a restart finds: every unfinished message, in seq order."""

    messages: list[JournaledMessage]
    #: One above the highest seq ever journaled: where new seqs must start.
    next_seq: int

    @property
    def suspects(self) -> list[JournaledMessage]:
        """The messages a worker held when the last run ended (one of them may have killed it)."""
        return [m for m in self.messages if m.dispatched]


@dataclass(frozen=True)
class JournalStats:
    """Sizes and row counts of one journal."""

    db_bytes: int
    wal_bytes: int
    #: Unfinished messages (queued, waiting for a retry, or dispatched).
    pending: int
    dispatched: int
    dead_letters: int
    dedup: int
    outbox: int
    #: Outbox replies in "sending": on the wire, outcome unknown.
    outbox_uncertain: int
    sender_dead_letters: int
    #: Total re-sends of replies whose earlier send's outcome was unknown.
    uncertain_resends: int
    next_seq: int
    #: Transactions committed since the journal was opened; each holds every operation
    #: that was queued when it began (group commit).
    transactions: int

    @property
    def file_bytes(self) -> int:
        """The database plus its write-ahead log."""
        return self.db_bytes + self.wal_bytes
