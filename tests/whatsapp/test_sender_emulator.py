"""BatchSender against the WhatsApp emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sluiceway.testing import WhatsAppEmulator
from sluiceway.whatsapp import (
    BatchSender,
    BreakerState,
    OutboundMessage,
    RecipientLimit,
    SenderConfig,
    SendError,
    WhatsAppCloudTransport,
)

Stack = Callable[..., Any]
Config = Callable[..., SenderConfig]
Wait = Callable[..., Awaitable[None]]


def bodies(api: WhatsAppEmulator) -> list[str]:
    return [a.message.text.body for a in api.accepted if a.message.text is not None]


@pytest.mark.timeout(120)
def test_at_the_configured_cap_no_rate_limit_errors(fast_config: Config, whatsapp_stack: Stack) -> None:
    """Sending at exactly the emulator's throughput and pair rate draws no 130429 or 131056."""

    async def scenario() -> None:
        # Pair rate 2 per second: a token bucket at the provider and our sliding window
        # agree unless one send is delayed by over half a second relative to another.
        config = fast_config(per_recipient=RecipientLimit(2, 1.0))
        async with whatsapp_stack(config, pair_limit=2, pair_window=1.0) as (api, sender):
            ids = [await sender.enqueue_message(f"1555{i % 30:04d}", f"m{i}") for i in range(120)]
            assert await sender.drain(timeout=60)
            assert dict(api.answers) == {"ok": 120}
            assert sorted(bodies(api)) == sorted(f"m{i}" for i in range(120))
            assert {sender.state(i) for i in ids} == {"confirmed"}

    asyncio.run(scenario())


@pytest.mark.timeout(120)
def test_throughput_cut_adapts_and_loses_nothing(fast_config: Config, whatsapp_stack: Stack, wait_for: Wait) -> None:
    """After the provider's throughput drops, the sender cuts its rate, retries what bounced, and delivers all exactly
    once.
    """

    async def scenario() -> None:
        async with whatsapp_stack(fast_config()) as (api, sender):
            for i in range(100):
                await sender.enqueue_message(f"1666{i % 40:04d}", f"m{i}")
            await wait_for(lambda: len(api.accepted) >= 20)
            api.set_throughput(15)
            lowest = 40.0
            while not await sender.drain(timeout=0.05):
                lowest = min(lowest, sender.stats()["rate"])
            assert api.answers[130429] > 0
            assert lowest < 40.0
            assert sender.stats()["throttle_events"] == api.answers[130429]
            assert sorted(bodies(api)) == sorted(f"m{i}" for i in range(100))  # each exactly once
            assert sender.dead_letters() == []

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_transient_errors_retry_then_succeed(fast_config: Config, whatsapp_stack: Stack) -> None:
    """Two injected 500s are retried with backoff and the message still goes out once."""

    async def scenario() -> None:
        async with whatsapp_stack(fast_config()) as (api, sender):
            api.fail_next(2, status=500, code=131000)
            mid = await sender.enqueue_message("15550001", "hello")
            assert await sender.drain(timeout=30)
            assert sender.state(mid) == "confirmed"
            assert api.answers[131000] == 2 and bodies(api) == ["hello"]
            assert sender.stats()["retries"] == 2

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_exhausted_retries_and_permanent_errors_dead_letter(fast_config: Config, whatsapp_stack: Stack) -> None:
    """Transient failures beyond max_retries, and permanent codes at once, end in the dead-letter queue with the
    provider's code.
    """

    async def scenario() -> None:
        async with whatsapp_stack(fast_config(max_retries=2)) as (api, sender):
            api.invalid_recipients.add("15559999")
            bad = await sender.enqueue_message("15559999", "nobody home")
            assert await sender.drain(timeout=30)
            api.fail_next(3, status=503, code=131016)
            flaky = await sender.enqueue_message("15550002", "unlucky")
            assert await sender.drain(timeout=30)
            letters = {d.message_id: d for d in sender.dead_letters()}
            assert letters[bad].error_code == 131026 and letters[bad].attempts == 1
            assert letters[flaky].error_code == 131016 and letters[flaky].attempts == 3
            assert sender.queue_status()["normal"]["dead_lettered"] == 2
            assert api.answers[131026] == 1

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_send_written_but_never_answered_is_not_sent_again(
    fast_config: Config, whatsapp_stack: Stack, wait_for: Wait
) -> None:
    """A send the provider takes but answers after the timeout is uncertain: counted, unconfirmed, never re-sent."""

    async def scenario() -> None:
        # The emulator checks the pair rate after the hang: room for both sends to one recipient.
        async with whatsapp_stack(fast_config(), timeout=0.3, pair_limit=10) as (api, sender):
            api.hang_next(1, seconds=0.6)
            mid = await sender.enqueue_message("15550003", "maybe delivered")
            after = await sender.enqueue_message("15550003", "next in line")
            assert await sender.drain(timeout=30)
            await wait_for(lambda: len(api.accepted) == 2)  # the hung request is taken once it wakes
            assert (sender.state(mid), sender.state(after)) == ("unconfirmed", "confirmed")
            stats = sender.stats()
            assert (stats["uncertain_sends"], stats["retries"]) == (1, 0)
            assert sorted(bodies(api)) == ["maybe delivered", "next in line"]

    asyncio.run(scenario())


@pytest.mark.timeout(120)
def test_a_saturated_connection_pool_sends_nothing_twice(fast_config: Config, whatsapp_stack: Stack) -> None:
    """Sends queued for a busy connection longer than the answer timeout are still sent exactly once.

    One connection and a provider taking 0.1 s per send: the later of 40 concurrent sends
    wait seconds for the connection, far past the 0.5 s answer timeout, which starts only
    once a send is written. (When the wait counted against it, such sends timed out after
    the provider had taken them and were sent again.)
    """

    async def scenario() -> None:
        config = fast_config(per_recipient=RecipientLimit(100, 1.0))
        async with whatsapp_stack(
            config, timeout=0.5, max_connections=1, latency=0.1, throughput=1000, pair_limit=100, pair_window=1.0
        ) as (api, sender):
            ids = [await sender.enqueue_message(f"1777{i:04d}", f"m{i}") for i in range(40)]
            assert await sender.drain(timeout=60)
            assert sorted(bodies(api)) == sorted(f"m{i}" for i in range(40))  # each exactly once
            assert {sender.state(mid) for mid in ids} == {"confirmed"}
            stats = sender.stats()
            assert (stats["uncertain_sends"], stats["retries"], stats["sent"]) == (0, 0, 40)

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_expired_token_opens_breaker_alerts_and_holds_messages(
    fast_config: Config, whatsapp_stack: Stack, wait_for: Wait
) -> None:
    """Code 190 opens the breaker and raises an alert; messages wait queued and go out once the token works again."""

    async def scenario() -> None:
        alerts: list[tuple[str, SendError]] = []
        async with whatsapp_stack(fast_config(), on_alert=lambda kind, err: alerts.append((kind, err))) as (
            api,
            sender,
        ):
            api.expire_token()
            mid = await sender.enqueue_message("15550004", "after renewal")
            await wait_for(lambda: bool(alerts))
            assert alerts[0][0] == "auth" and alerts[0][1].code == 190
            assert sender.state(mid) == "queued"
            assert sender.dead_letters() == []
            api.restore_token()
            assert await sender.drain(timeout=30)
            assert sender.state(mid) == "confirmed"

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_outage_opens_breaker_then_recovers_without_losses(
    fast_config: Config, whatsapp_stack: Stack, wait_for: Wait
) -> None:
    """During an outage the breaker opens and messages wait; afterwards it closes and every message is delivered."""

    async def scenario() -> None:
        async with whatsapp_stack(fast_config(max_retries=10)) as (api, sender):
            changes: list[tuple[BreakerState, BreakerState]] = []
            sender.breaker.add_listener(lambda old, new: changes.append((old, new)))
            api.outage(1.0)
            for i in range(8):
                await sender.enqueue_message(f"1777{i:04d}", f"m{i}")
            await wait_for(lambda: (BreakerState.CLOSED, BreakerState.OPEN) in changes)
            assert await sender.drain(timeout=30)
            assert sorted(bodies(api)) == sorted(f"m{i}" for i in range(8))
            assert (BreakerState.HALF_OPEN, BreakerState.CLOSED) in changes
            assert sender.breaker.state is BreakerState.CLOSED

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_idempotency_key_makes_a_duplicate_a_no_op(fast_config: Config, whatsapp_stack: Stack) -> None:
    """Enqueueing twice with one idempotency key sends once and returns the same id."""

    async def scenario() -> None:
        async with whatsapp_stack(fast_config()) as (api, sender):
            first = await sender.enqueue_message("15550005", "paid, thanks", idempotency_key="inbound-wamid-1")
            second = await sender.enqueue_message("15550005", "paid, thanks", idempotency_key="inbound-wamid-1")
            assert first == second
            assert await sender.drain(timeout=30)
            assert bodies(api) == ["paid, thanks"]
            assert sender.stats()["duplicates"] == 1

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_coalescing_keeps_order_and_the_length_limit(fast_config: Config, whatsapp_stack: Stack) -> None:
    """Queued texts to one recipient are joined in order into messages of at most 4,096 characters."""

    async def scenario() -> None:
        texts = [f"{i}:" + "x" * 1500 for i in range(5)] + ["short a", "short b"]
        async with whatsapp_stack(fast_config(coalesce_texts=True)) as (api, sender):
            ids = [await sender.enqueue_message("15550006", t) for t in texts]
            await sender.enqueue_message("15550007", "other user")
            assert await sender.drain(timeout=30)
            sent = [b for a in api.accepted if a.message.to == "15550006" for b in [a.message.text.body]]  # type: ignore[union-attr]
            assert len(sent) < len(texts)
            assert all(len(b) <= 4096 for b in sent)
            assert "\n".join(sent).split("\n") == texts
            assert {sender.state(i) for i in ids} == {"confirmed"}
            assert sender.stats()["coalesced"] == len(texts) - len(sent)

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_status_webhooks_confirm_and_fail_messages(fast_config: Config, whatsapp_stack: Stack) -> None:
    """Delivered statuses confirm messages; a failed status (131026) dead-letters one, all mapped by wamid."""

    async def scenario() -> None:
        async with whatsapp_stack(fast_config(confirmation_timeout=20.0), webhooks=True) as (api, sender):
            api.invalid_recipients.add("15558888")
            good = [await sender.enqueue_message(f"1888{i:04d}", f"m{i}") for i in range(10)]
            bad = await sender.enqueue_message("15558888", "lost")
            assert await sender.drain(timeout=30)
            assert {sender.state(i) for i in good} == {"confirmed"}
            assert sender.state(bad) == "dead_lettered"
            assert sender.dead_letters()[0].error_code == 131026
            assert api.webhook_failures == 0

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_close_reports_what_is_left(
    fast_config: Config, whatsapp_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing drains what it can, then reports messages still held back (here by a long pair-rate window)."""

    async def scenario() -> None:
        config = fast_config(per_recipient=RecipientLimit(1, 60.0))
        async with whatsapp_stack(config, pair_limit=1, pair_window=60.0) as (_api, sender):
            ids = [await sender.enqueue_message("15550008", f"m{i}") for i in range(3)]
            left = await sender.close(timeout=0.5)
            assert sender.state(ids[0]) == "confirmed"
            assert [x.message_id for x in left] == ids[1:]
            assert {x.state for x in left} == {"queued"}
            with pytest.raises(RuntimeError, match="closed"):
                await sender.enqueue_message("15550008", "too late")

    with caplog.at_level(logging.INFO, logger="sluiceway.whatsapp"):
        asyncio.run(scenario())
    assert any("2 left unfinished" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(60)
def test_bad_input_is_rejected_at_once(fast_config: Config, whatsapp_stack: Stack) -> None:
    """Empty recipient, over-long text, unknown priority and over-long caption raise ValueError and queue nothing."""

    async def scenario() -> None:
        async with whatsapp_stack(fast_config()) as (_api, sender):
            with pytest.raises(ValueError, match="recipient"):
                await sender.enqueue_message("", "hi")
            with pytest.raises(ValueError, match="4096"):
                await sender.enqueue_message("1555", "x" * 4097)
            with pytest.raises(ValueError, match="priority"):
                await sender.enqueue_message("1555", "hi", priority="urgent")
            with pytest.raises(ValueError, match="caption"):
                await sender.enqueue_message("1555", "x" * 2000, media_url="https://x.test/a.jpg")
            assert sender.stats()["accepted"] == 0

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_access_token_never_leaks(fast_config: Config, caplog: pytest.LogCaptureFixture) -> None:
    """The token appears in no repr, exception or log line, whether the call is refused or cannot connect."""
    token = "EAAG-super-secret-token-1234567890"

    async def scenario() -> list[str]:
        seen: list[str] = []
        async with (
            WhatsAppEmulator(access_token=token) as api,
            WhatsAppCloudTransport(api.phone_number_id, token, base_url=api.base_url) as transport,
        ):
            seen.append(repr(transport))
            api.expire_token()
            sender = BatchSender(transport, fast_config())
            await sender.start()
            await sender.enqueue_message("15550009", "hi")
            while not api.answers[190]:
                await asyncio.sleep(0.01)
            seen.append(repr(sender))
            await sender.close(timeout=0.0)
            for port in (api.port, 1):
                other = WhatsAppCloudTransport(api.phone_number_id, token, base_url=f"http://127.0.0.1:{port}")
                try:
                    await other.send(OutboundMessage.of_text("15550010", "hi"))
                except SendError as exc:
                    seen += [str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__)]
                finally:
                    await other.aclose()
        return seen

    with caplog.at_level(logging.DEBUG):
        seen = asyncio.run(scenario())
    seen += [r.getMessage() for r in caplog.records]
    assert len(seen) > 6
    assert not [s for s in seen if token in s]
