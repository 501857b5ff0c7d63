"""Send attempts: each recipient's chain sent in order, and what a failure means for the message and the limits.

Failures are classified by ``error.code`` (:mod:`sluiceway.whatsapp.errors`): a permanent
error fails the message, a transient one is retried after backoff (and counts against
the breaker), an auth error opens the breaker and the message waits, and a throughput or
pair-rate refusal slows the global rate or the recipient and the message is retried.

A send that may have reached the API (written, then a timeout or a broken connection before
the answer) is never retried: under overload the API may be slow to answer sends it has
taken, and retrying those delivered the same reply twice. It finishes as unconfirmed and
is counted in the sender's ``uncertain_sends``; a lost reply is the lesser harm, and it is
visible. (Re-sending after a grace period without a status would need the status webhooks
to name our id, and still duplicates when they are late; the journal's outbox, behind
:class:`~sluiceway.whatsapp.ledger.SendLedger`, is where such sends can be reconciled.)
Failures before anything was written are safe to retry and are, as transient ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sluiceway.histogram import LatencyHistogram
from sluiceway.whatsapp.breaker import CircuitBreaker
from sluiceway.whatsapp.cloud_api import Transport
from sluiceway.whatsapp.errors import ErrorCategory, SendError
from sluiceway.whatsapp.ledger import SendLedger
from sluiceway.whatsapp.limits import SendLimits
from sluiceway.whatsapp.outcomes import MessageState
from sluiceway.whatsapp.records import SendRecord
from sluiceway.whatsapp.retry import SendRetryPolicy
from sluiceway.whatsapp.rounds import Chain, RoundScheduler

log = logging.getLogger("sluiceway.whatsapp")

#: A message in one of these needs no more sending.
_SETTLED = frozenset(
    {MessageState.AWAITING_CONFIRMATION, MessageState.CONFIRMED, MessageState.DEAD_LETTERED, MessageState.UNCONFIRMED}
)
#: Backoff after a throughput refusal grows with the refusals, up to this many doublings' worth.
_MAX_THROTTLE_STEP = 8


class SendAttempts:
    """Runs rounds of chains through the transport and applies each answer to the ledger, limits and scheduler.

    ``on_alert("auth", error)`` is called when the provider refuses our access token.
    """

    __slots__ = (
        "_breaker",
        "_clock",
        "_ledger",
        "_limits",
        "_on_alert",
        "_retry",
        "_scheduler",
        "_transport",
        "latency",
        "pair_rate_holds",
        "retries",
        "throttle_events",
    )

    def __init__(
        self,
        transport: Transport,
        *,
        scheduler: RoundScheduler,
        limits: SendLimits,
        breaker: CircuitBreaker,
        ledger: SendLedger,
        retry: SendRetryPolicy,
        clock: Callable[[], float],
        on_alert: Callable[[str, SendError], None] | None,
    ) -> None:
        self._transport = transport
        self._scheduler = scheduler
        self._limits = limits
        self._breaker = breaker
        self._ledger = ledger
        self._retry = retry
        self._clock = clock
        self._on_alert = on_alert
        #: Seconds per accepted send, request to answer.
        self.latency = LatencyHistogram()
        #: Transient failures that will be retried.
        self.retries = 0
        #: Throughput and pair-rate refusals.
        self.throttle_events = 0
        #: Pair-rate refusals (131056): each holds its recipient back a window.
        self.pair_rate_holds = 0

    async def run_round(self, chains: list[Chain]) -> None:
        """Send every chain of a round, the chains concurrently, each in order."""
        await asyncio.gather(*(self._run_chain(recipient, chain) for recipient, chain in chains))

    async def _run_chain(self, recipient: str, chain: list[SendRecord]) -> None:
        done = attempted = 0
        try:
            for m in chain:
                attempted += 1
                go_on = await self._send(m)
                if m.state in _SETTLED:
                    done += 1
                if not go_on:
                    break
        finally:
            for _ in chain[attempted:]:
                self._limits.give_back()  # admitted but never sent
            unsent = chain[done:]
            if unsent:
                for m in chain[attempted:]:
                    m.set_state(MessageState.QUEUED)
                self._scheduler.put_back(recipient, unsent)
            self._scheduler.release(recipient, self._clock())

    async def _send(self, m: SendRecord) -> bool:
        """One attempt; ``True`` if the recipient's chain may go on."""
        await self._ledger.record_sending(m)
        start = self._clock()
        m.sends += 1
        try:
            result = await self._transport.send(m.send_as)
        except SendError as exc:
            return self._on_error(m, exc)
        except Exception as exc:  # a broken transport must not lose the message
            return self._on_error(m, SendError(f"transport raised {type(exc).__name__}: {exc}"))
        now = self._clock()
        self.latency.record(max(0.0, now - start))
        self._breaker.record_success()
        self._limits.on_sent(now)
        self._ledger.record_sent(m, result.message_id, now)
        return True

    def _on_error(self, m: SendRecord, exc: SendError) -> bool:
        now = self._clock()
        m.error_code, m.error_text = exc.code, exc.message
        category = exc.category
        if category is ErrorCategory.PERMANENT:
            self._breaker.record_success()  # the provider answered: it is healthy
            self._ledger.record_failed(m, exc.code, exc.message)
            return True
        if category is ErrorCategory.TRANSIENT:
            self._breaker.record_failure()
            if exc.uncertain:
                log.warning("send %s may have reached the API (%s); it is not sent again", m.id, exc)
                self._ledger.record_uncertain(m, exc.message)
                return True
            m.attempts += 1
            if self._retry.exhausted(m.attempts):
                self._ledger.record_failed(m, exc.code, exc.message)
                return True
            self.retries += 1
            self._scheduler.hold(m.recipient, now + self._retry.delay(m.attempts))
            m.set_state(MessageState.RETRYING)
            return False
        if category is ErrorCategory.AUTH:
            self._breaker.trip()
            log.error("whatsapp access was refused (%s); breaker opened, messages wait", exc)
            if self._on_alert is not None:
                self._on_alert("auth", exc)
            m.set_state(MessageState.QUEUED)
            return False
        # THROUGHPUT or PAIR_RATE: our pace, not the provider's health.
        self._breaker.record_success()
        self.throttle_events += 1
        m.throttles += 1
        if category is ErrorCategory.THROUGHPUT:
            if self._limits.on_throughput_error(now):
                log.warning("whatsapp throughput limit hit (code %s); rate cut to %.1f/s", exc.code, self._limits.rate)
            self._scheduler.hold(m.recipient, now + self._retry.delay(min(m.throttles, _MAX_THROTTLE_STEP)))
        else:
            self.pair_rate_holds += 1
            self._limits.on_pair_rate_error(m.recipient, now)
        m.set_state(MessageState.RETRYING)
        return False
