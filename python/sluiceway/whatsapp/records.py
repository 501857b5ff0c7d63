"""The sender's record of one accepted message, shared by its scheduler, attempts and ledger; the priority levels."""

from __future__ import annotations

from sluiceway.whatsapp.messages import OutboundMessage
from sluiceway.whatsapp.outcomes import MessageState

#: Priority names, served in this order.
PRIORITIES = ("high", "normal", "low")
#: A priority name's level: its index in ``PRIORITIES`` (0 is served first).
LEVELS = {name: level for level, name in enumerate(PRIORITIES)}
HIGH = LEVELS["high"]


class SendRecord:
    """One accepted message and its bookkeeping (mutable; private to the sender's parts).

    ``riders`` are the plain texts coalesced into this one's request (``send_as``): they
    share its fate, so every state change goes through :meth:`set_state`.
    """

    __slots__ = (
        "attempts",
        "deadline",
        "error_code",
        "error_text",
        "id",
        "level",
        "message",
        "recipient",
        "riders",
        "send_as",
        "sends",
        "state",
        "throttles",
        "wamid",
    )

    def __init__(self, mid: str, message: OutboundMessage, level: int, deadline: float) -> None:
        self.id = mid
        self.message = message
        self.send_as = message  # the coalesced text when riders joined it
        self.recipient = message.to
        self.level = level
        self.deadline = deadline
        self.state = MessageState.QUEUED
        self.attempts = 0  # transient failures so far
        self.throttles = 0  # throughput / pair-rate refusals so far
        self.sends = 0  # requests made
        self.riders: list[SendRecord] = []
        self.wamid: str | None = None
        self.error_code: int | None = None
        self.error_text = ""

    def set_state(self, state: MessageState) -> None:
        """Move this message and its riders to ``state``."""
        self.state = state
        for rider in self.riders:
            rider.state = state
