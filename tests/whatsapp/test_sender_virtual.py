"""BatchSender on virtual time with a scripted transport: accounting, limits, scheduling."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sluiceway.errors import SluicewayError
from sluiceway.testing import ManualClock, ScriptedTransport
from sluiceway.whatsapp import (
    BatchSender,
    BreakerConfig,
    OutboundMessage,
    RateLimits,
    RecipientLimit,
    SenderClosed,
    SenderConfig,
    SendError,
)

VirtualTime = tuple[ManualClock, Callable[[float], Awaitable[None]]]

#: Answers the scripted provider can give, by name.
FAULTS: dict[str, Callable[[], SendError]] = {
    "500": lambda: SendError("Something went wrong", code=131000, http_status=500),
    "timeout": lambda: SendError("request failed: TimeoutError"),
    "throughput": lambda: SendError("(#130429) Rate limit hit", code=130429, http_status=400),
    "pair": lambda: SendError("(#131056) pair rate limit hit", code=131056, http_status=400),
    "auth": lambda: SendError("Error validating access token", code=190, http_status=401),
    "undeliverable": lambda: SendError("Message undeliverable", code=131026, http_status=400),
    "invalid": lambda: SendError("(#100) Invalid parameter", code=100, http_status=400),
}
#: Codes only the scripted *send* answers with (a failed status webhook uses 131026), so a
#: message dead-lettered with one was refused outright and never reached the provider.
REFUSED_CODES = {100, 131000, 190, None}

answers = st.one_of(st.just("ok"), st.sampled_from(sorted(FAULTS)))
sends = st.tuples(
    st.integers(0, 4),  # recipient
    st.sampled_from(["high", "normal", "low"]),
    st.one_of(st.none(), st.sampled_from(["k0", "k1", "k2"])),  # idempotency key
    st.sampled_from([0.0, 0.0, 0.3, 2.0]),  # virtual seconds to wait after enqueueing
)


def config(**overrides: object) -> SenderConfig:
    fields: dict[str, object] = {
        "base_batch_size": 4,
        "priority_batch_size": 2,
        "max_batch_size_per_recipient": 3,
        "min_delay_between_batches": 0.1,
        "max_concurrent_batches": 2,
        "rate_limit": RateLimits(per_second=5, per_minute=60, per_hour=None),
        "per_recipient": RecipientLimit(2, 1.0),
        "max_retries": 2,
        "initial_backoff": 0.1,
        "max_backoff": 1.0,
        "breaker": BreakerConfig(
            failure_rate_threshold=0.5, window=5.0, minimum_calls=3, open_duration=2.0, half_open_trials=1
        ),
        "message_ttl": 600.0,
    }
    fields.update(overrides)
    return SenderConfig(**fields)  # type: ignore[arg-type]


def max_in_window(times: list[float], window: float) -> int:
    """The most events in any half-open interval [t, t + window)."""
    times = sorted(times)
    best = j = 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + window - 1e-9:
            j += 1
        best = max(best, j - i)
    return best


@settings(max_examples=60)
# Found by this property: a recipient parked by the pair rate while forming a round, with
# no other timer pending, left the dispatcher waiting for nothing.
@example(
    schedule=[(0, "high", None, 0.3), (0, "high", None, 0.3), (0, "high", None, 0.0)],
    script=[],
    coalesce=False,
    confirm=None,
)
@given(
    schedule=st.lists(sends, min_size=1, max_size=25),
    script=st.lists(answers, max_size=30),
    coalesce=st.booleans(),
    confirm=st.sampled_from([None, "statuses", "timeout"]),
)
def test_every_accepted_message_is_accounted_for_exactly_once(
    schedule: list[tuple[int, str, str | None, float]], script: list[str], coalesce: bool, confirm: str | None
) -> None:
    """For any schedule of sends and provider faults, each accepted message ends in exactly one final state,
    each confirmed text reached the provider exactly once, and no limit was ever exceeded."""
    clock = ManualClock(1000.0)

    async def sleep(seconds: float) -> None:
        for _ in range(40):
            await asyncio.sleep(0)
        clock.advance(seconds)
        await asyncio.sleep(0)

    answers_left = iter(script)
    served: Counter[str] = Counter()

    def answer(message: OutboundMessage) -> SendError | None:
        name = next(answers_left, "ok")
        served[name] += 1
        return None if name == "ok" else FAULTS[name]()

    transport = ScriptedTransport(answer, clock=clock)
    cfg = config(coalesce_texts=coalesce, confirmation_timeout=None if confirm is None else 30.0)

    async def run() -> tuple[BatchSender, dict[str, str], bool]:
        sender = BatchSender(transport, cfg, clock=clock, sleep=sleep)
        await sender.start()
        texts: dict[str, str] = {}
        seen_status: set[str] = set()

        async def feed_statuses() -> None:
            # Deliver a status for every other accepted send; the rest time out as unconfirmed.
            while True:
                for n, call in enumerate(transport.calls):
                    if call.wamid is not None and call.wamid not in seen_status:
                        seen_status.add(call.wamid)
                        if n % 2 == 0:
                            sender.handle_status(
                                {
                                    "id": call.wamid,
                                    "status": "delivered",
                                    "timestamp": "1",
                                    "recipient_id": call.message.to,
                                }
                            )
                        elif n % 3 == 0:
                            sender.handle_status(
                                {
                                    "id": call.wamid,
                                    "status": "failed",
                                    "timestamp": "1",
                                    "recipient_id": call.message.to,
                                    "errors": [{"code": 131026, "title": "Message undeliverable"}],
                                }
                            )
                await asyncio.sleep(0)

        feeder = asyncio.create_task(feed_statuses()) if confirm == "statuses" else None
        for n, (recipient, priority, key, wait) in enumerate(schedule):
            text = f"t{n}"
            mid = await sender.enqueue_message(f"1555000{recipient}", text, priority=priority, idempotency_key=key)
            texts.setdefault(mid, text)
            if wait:
                await sleep(wait)
        drained = await sender.drain(timeout=20)
        if feeder is not None:
            feeder.cancel()
        await sender.close(timeout=0)
        return sender, texts, drained

    sender, texts, drained = asyncio.run(run())
    assert drained
    states = {mid: sender.state(mid) for mid in texts}
    assert set(states.values()) <= {"confirmed", "dead_lettered", "unconfirmed"}
    stats = sender.stats()
    assert stats["accepted"] == len(texts) == stats["confirmed"] + stats["failed"] + stats["unconfirmed"]
    # The monitor's throttle figures count each refusal the provider gave once.
    assert stats["pair_rate_holds"] == served["pair"]
    assert stats["throttle_events"] == served["pair"] + served["throughput"]
    dead = Counter(d.message_id for d in sender.dead_letters())
    assert set(dead) == {m for m, s in states.items() if s == "dead_lettered"} and set(dead.values()) <= {1}
    # Every text the provider accepted belongs to exactly one message that is not dead for a send error.
    accepted_texts = Counter(
        part
        for call in transport.calls
        if call.wamid is not None
        for part in call.message.text.body.split("\n")  # type: ignore[union-attr]
    )
    assert set(accepted_texts.values()) <= {1}
    refused = {d.message_id for d in sender.dead_letters() if d.error_code in REFUSED_CODES}
    for mid, text in texts.items():
        if states[mid] in ("confirmed", "unconfirmed"):
            assert accepted_texts[text] == 1, (mid, text)
        if mid in refused:
            assert accepted_texts[text] == 0, (mid, text)
    # No limit was ever exceeded, as the provider saw the calls.
    by_recipient: dict[str, list[float]] = defaultdict(list)
    for call in transport.calls:
        by_recipient[call.message.to].append(call.at)
    assert all(max_in_window(times, 1.0) <= 2 for times in by_recipient.values())
    assert max_in_window([c.at for c in transport.calls], 1.0) <= 5
    assert max_in_window([c.at for c in transport.calls], 60.0) <= 60


def run_virtual(
    virtual_time: VirtualTime, cfg: SenderConfig, body: Callable[[BatchSender, ScriptedTransport], Awaitable[None]]
) -> ScriptedTransport:
    clock, sleep = virtual_time
    transport = ScriptedTransport(clock=clock)

    async def main() -> None:
        async with BatchSender(transport, cfg, clock=clock, sleep=sleep) as sender:
            await body(sender, transport)

    asyncio.run(main())
    return transport


def test_a_recipient_held_by_the_pair_rate_blocks_nobody_else(virtual_time: VirtualTime) -> None:
    """While one recipient waits out its pair-rate window, a later message to another goes out first."""

    async def body(sender: BatchSender, transport: ScriptedTransport) -> None:
        for i in range(4):
            await sender.enqueue_message("1555000A", f"a{i}")
        await sender.enqueue_message("1555000B", "b0")
        assert await sender.drain(timeout=30)

    transport = run_virtual(virtual_time, config(per_recipient=RecipientLimit(1, 10.0)), body)
    order = [c.message.text.body for c in transport.calls]  # type: ignore[union-attr]
    assert order.index("b0") < order.index("a1")
    assert order.index("a0") < order.index("a1") < order.index("a2") < order.index("a3")


def test_high_priority_goes_first(virtual_time: VirtualTime) -> None:
    """Queued high-priority messages are sent before normal and low ones queued earlier."""

    async def body(sender: BatchSender, transport: ScriptedTransport) -> None:
        for i in range(6):
            await sender.enqueue_message(f"1555100{i}", f"low{i}", priority="low")
            await sender.enqueue_message(f"1555200{i}", f"normal{i}")
        for i in range(2):
            await sender.enqueue_message(f"1555300{i}", f"high{i}", priority="high")
        assert await sender.drain(timeout=30)

    transport = run_virtual(virtual_time, config(), body)
    order = [c.message.text.body[:-1] for c in transport.calls]  # type: ignore[union-attr]
    assert order == ["high"] * 2 + ["normal"] * 6 + ["low"] * 6


def test_messages_past_their_ttl_are_dead_lettered_as_expired(virtual_time: VirtualTime) -> None:
    """A message still held back when message_ttl passes is dead-lettered with the reason 'expired'."""

    async def body(sender: BatchSender, transport: ScriptedTransport) -> None:
        first = await sender.enqueue_message("1555000C", "c0")
        late = await sender.enqueue_message("1555000C", "c1")
        assert await sender.drain(timeout=30)
        assert sender.state(first) == "confirmed" and sender.state(late) == "dead_lettered"
        assert "expired" in sender.dead_letters()[0].error_message

    run_virtual(virtual_time, config(per_recipient=RecipientLimit(1, 100.0), message_ttl=50.0), body)


def test_unconfirmed_after_confirmation_timeout(virtual_time: VirtualTime) -> None:
    """A sent message that gets no status within confirmation_timeout ends as unconfirmed, not resent."""

    async def body(sender: BatchSender, transport: ScriptedTransport) -> None:
        mid = await sender.enqueue_message("1555000D", "d0")
        assert await sender.drain(timeout=30)
        assert sender.state(mid) == "unconfirmed" and len(transport.calls) == 1
        with pytest.raises(ValueError, match="unknown message id"):
            sender.confirm_delivery("nope", True)

    run_virtual(virtual_time, config(confirmation_timeout=5.0), body)


def test_confirm_delivery_by_our_id(virtual_time: VirtualTime) -> None:
    """confirm_delivery settles a message awaiting confirmation, success or failure, and then reports it final."""

    async def body(sender: BatchSender, transport: ScriptedTransport) -> None:
        ok = await sender.enqueue_message("1555000E", "e0")
        bad = await sender.enqueue_message("1555000F", "f0")
        while len(transport.calls) < 2:
            await asyncio.sleep(0)
        while sender.state(bad) != "awaiting_confirmation":
            await asyncio.sleep(0)
        assert sender.confirm_delivery(ok, True)
        assert sender.confirm_delivery(bad, False, timestamp=1750857384.0, error="phone off")
        assert not sender.confirm_delivery(ok, True)
        letter = sender.dead_letters()[0]
        assert sender.state(ok) == "confirmed"
        assert (letter.message_id, letter.error_message, letter.reported_at) == (bad, "phone off", 1750857384.0)

    run_virtual(virtual_time, config(confirmation_timeout=1000.0), body)


def test_idempotency_window_expires(virtual_time: VirtualTime) -> None:
    """The same idempotency key after the window has passed is a new message."""
    clock, _sleep = virtual_time

    async def body(sender: BatchSender, transport: ScriptedTransport) -> None:
        first = await sender.enqueue_message("1555000G", "g", idempotency_key="k")
        assert await sender.enqueue_message("1555000G", "g", idempotency_key="k") == first
        clock.advance(61.0)
        assert await sender.enqueue_message("1555000G", "g", idempotency_key="k") != first
        assert await sender.drain(timeout=30)

    transport = run_virtual(virtual_time, config(idempotency_window=60.0), body)
    assert len(transport.calls) == 2


def test_config_validation_names_the_field() -> None:
    """Invalid settings raise ValueError naming the offending field."""
    with pytest.raises(ValueError, match="base_batch_size"):
        SenderConfig(base_batch_size=0)
    with pytest.raises(ValueError, match="priority_batch_size"):
        SenderConfig(base_batch_size=2, priority_batch_size=3)
    with pytest.raises(ValueError, match="rate_limit.per_second"):
        RateLimits(per_second=0)
    with pytest.raises(ValueError, match="per_recipient.window"):
        RecipientLimit(1, 0.0)
    with pytest.raises(ValueError, match="jitter"):
        SenderConfig(jitter=2.0)
    with pytest.raises(ValueError, match="max_backoff"):
        SenderConfig(initial_backoff=5.0, max_backoff=1.0)


def test_a_closed_sender_refuses_with_sender_closed(virtual_time: VirtualTime) -> None:
    """After close, enqueueing and starting raise SenderClosed: a SluicewayError, and a RuntimeError as before."""
    clock, sleep = virtual_time

    async def main() -> None:
        sender = BatchSender(ScriptedTransport(clock=clock), config(), clock=clock, sleep=sleep)
        await sender.start()
        await sender.close()
        with pytest.raises(SenderClosed, match="closed") as refused:
            sender.enqueue_nowait(OutboundMessage.of_text("1555000H", "too late"))
        assert isinstance(refused.value, SluicewayError) and isinstance(refused.value, RuntimeError)
        with pytest.raises(SenderClosed):
            await sender.start()
        assert sender.stats()["accepted"] == 0

    asyncio.run(main())
