"""What became of each accepted message: its states, its failure if it failed, and what shutdown left behind."""

from __future__ import annotations

import enum

import msgspec

from sluiceway.whatsapp.messages import OutboundMessage


class MessageState(enum.Enum):
    """Where a message is. The last three are final; every accepted message reaches one
    of them or is reported as left over at shutdown."""

    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    RETRYING = "retrying"
    CONFIRMED = "confirmed"
    DEAD_LETTERED = "dead_lettered"
    UNCONFIRMED = "unconfirmed"


FINAL_STATES = frozenset({MessageState.CONFIRMED, MessageState.DEAD_LETTERED, MessageState.UNCONFIRMED})
#: States reported per priority by ``BatchSender.queue_status()``.
LIVE_STATES = (MessageState.QUEUED, MessageState.IN_FLIGHT, MessageState.AWAITING_CONFIRMATION, MessageState.RETRYING)


class FailedSend(msgspec.Struct, frozen=True):
    """A message that will not be delivered: why (the provider's code and text, or ``expired``), after how many sends.

    ``failed_at`` is on the sender's clock; ``reported_at`` is the provider's Unix
    time when the failure came from a status webhook or ``confirm_delivery``.
    """

    message_id: str
    message: OutboundMessage
    priority: str
    attempts: int
    error_code: int | None
    error_message: str
    failed_at: float
    reported_at: float | None = None


class LeftOver(msgspec.Struct, frozen=True):
    """A message still unfinished when the sender closed, with the state it was in."""

    message_id: str
    message: OutboundMessage
    priority: str
    state: str
    attempts: int
