"""Rounds with a backend that asks elsewhere for pair tokens: a recipient waiting on an answer keeps its place."""

from __future__ import annotations

import math
from collections.abc import Iterable

from sluiceway.whatsapp import CircuitBreaker, OutboundMessage, SenderConfig
from sluiceway.whatsapp.limits import SendLimits
from sluiceway.whatsapp.records import SendRecord
from sluiceway.whatsapp.rounds import KEPT_RETRY, RoundScheduler


class AskingBackend:
    """Grants the global limit freely; a recipient's pair token is granted once it has been asked for."""

    ceiling = rate = 100.0

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.answered: set[str] = set()

    def global_wait(self, now: float) -> float:
        return 0.0

    def take_global(self, now: float) -> bool:
        return True

    def take_recipient(self, recipient: str, now: float) -> bool:
        if recipient in self.answered:
            self.answered.discard(recipient)
            return True
        self.asked.append(recipient)
        return False

    def recipient_wait(self, recipient: str, now: float) -> float:
        return 0.0  # no known wait: the answer is on its way

    def upcoming(self, recipients: Iterable[str]) -> None: ...

    def on_sent(self, now: float) -> None: ...

    def on_throughput_error(self, now: float) -> bool:
        return False

    def on_pair_rate_error(self, recipient: str, now: float) -> None: ...

    async def aclose(self) -> None: ...


def test_recipients_waiting_for_a_pair_token_keep_their_place_and_the_round_looks_again_soon() -> None:
    config = SenderConfig()
    backend = AskingBackend()
    expired: list[SendRecord] = []
    limits = SendLimits(config, CircuitBreaker(config.breaker), now=0.0, backend=backend)
    scheduler = RoundScheduler(config, limits, expired.append)
    for n, recipient in enumerate(("a", "b", "c")):
        scheduler.add(SendRecord(f"m{n}", OutboundMessage.of_text(recipient, "hi"), 1, math.inf))
    backend.answered.add("b")
    chains, retry = scheduler.take_round(0.0, 10, 3)
    assert [recipient for recipient, _ in chains] == ["b"] and backend.asked == ["a", "c"]
    assert retry == KEPT_RETRY  # nothing else would wake the sender for "a" and "c"
    backend.answered.update(("a", "c"))
    chains, retry = scheduler.take_round(0.001, 10, 3)
    assert [recipient for recipient, _ in chains] == ["a", "c"] and retry is None  # in their first order
    assert not expired
