"""``@bot.on_error``: it answers a message whose handler failed for good, once, and never takes a worker down."""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading

import pytest

from sluiceway import Bot, Context, InboundMessage
from sluiceway.app.context import Outgoing
from sluiceway.app.on_error import HandlerFailed, carried_replies, carry
from sluiceway.testing import BotTester
from sluiceway.whatsapp.messages import OutboundMessage

from .conftest import Stack

SORRY = "Sorry, something went wrong"


def flaky_bot(failures: int) -> tuple[Bot, list[str]]:
    """A bot whose handler fails its first ``failures`` calls; ``calls`` records handler and on_error calls."""
    bot = Bot()
    calls: list[str] = []

    @bot.on_message
    async def handle(msg: InboundMessage, ctx: Context) -> None:
        calls.append(f"handle#{ctx.attempt}")
        await ctx.reply("half an answer")  # queued, then lost with the failure
        if len([c for c in calls if c.startswith("handle")]) <= failures:
            raise KeyError("unit")
        await ctx.reply("the answer")

    @bot.on_error
    async def on_error(msg: InboundMessage, ctx: Context, error: Exception) -> None:
        calls.append(f"on_error#{ctx.attempt}:{type(error).__name__}")
        await ctx.reply(SORRY)

    return bot, calls


def test_on_error_answers_the_last_failure_once_and_the_message_is_still_a_dead_letter() -> None:
    bot, calls = flaky_bot(failures=10)

    async def scenario() -> None:
        async with BotTester(bot, max_attempts=3) as tester:
            reply = await tester.send("is 4B free?")
            assert reply.texts == [SORRY]  # not the failed attempts' half answers, and once, not per retry
            assert [o.idempotency_key for o in reply.sent] == [f"{reply.inbound.id}#on_error#0"]
            assert reply.sent[0].message.context is not None  # it quotes the tenant's message like any reply
            assert [letter.error for letter in tester.dead_letters] == ["KeyError: 'unit'"]

    asyncio.run(scenario())
    assert calls == ["handle#1", "handle#2", "handle#3", "on_error#3:KeyError"]


def test_a_handler_that_recovers_on_a_retry_never_meets_on_error() -> None:
    bot, calls = flaky_bot(failures=2)

    async def scenario() -> None:
        async with BotTester(bot, max_attempts=3) as tester:
            reply = await tester.send("is 4B free?")
            assert (reply.ok, reply.texts) == (True, ["half an answer", "the answer"])

    asyncio.run(scenario())
    assert not any(c.startswith("on_error") for c in calls)


def test_an_on_error_that_raises_is_logged_and_sends_nothing(caplog: pytest.LogCaptureFixture) -> None:
    bot = Bot()

    @bot.on_message
    async def handle(msg: InboundMessage, ctx: Context) -> None:
        raise ValueError("handler broke")

    @bot.on_error
    async def on_error(msg: InboundMessage, ctx: Context, error: Exception) -> None:
        await ctx.reply(SORRY)
        raise RuntimeError("on_error broke too")

    async def scenario() -> None:
        async with BotTester(bot, max_attempts=1) as tester:
            reply = await tester.send("hi")
            assert (reply.sent, [d.error for d in tester.dead_letters]) == ([], ["ValueError: handler broke"])

    with caplog.at_level(logging.ERROR, logger="sluiceway.app"):
        asyncio.run(scenario())
    [record] = caplog.records
    assert record.getMessage().startswith("on_error raised for message wamid.test-000001 from 15550000001")
    assert record.exc_info is not None and "on_error broke too" in str(record.exc_info[1])


def _reply(text: str) -> Outgoing:
    return Outgoing(OutboundMessage.of_text("1555", text), "normal", "wamid.x#on_error#0")


def test_replies_ride_on_a_picklable_exception_to_the_supervisor() -> None:
    error = KeyError("unit")
    carried = carry(error, [_reply(SORRY)])
    assert carried is error  # the handler's own exception: the dead letter keeps its type and traceback
    arrived = pickle.loads(pickle.dumps(carried))  # as the engine sends it
    assert (type(arrived), carried_replies(arrived)) == (KeyError, [_reply(SORRY)])
    assert carried_replies(ValueError("no replies on this one")) == []


def test_an_unpicklable_exception_is_replaced_by_one_naming_it() -> None:
    class HoldsALock(Exception):
        def __init__(self) -> None:
            super().__init__("locked")
            self.lock = threading.Lock()

    carried = carry(HoldsALock(), [_reply(SORRY)])
    arrived = pickle.loads(pickle.dumps(carried))
    assert isinstance(arrived, HandlerFailed) and str(arrived).endswith("HoldsALock: locked")
    assert carried_replies(arrived) == [_reply(SORRY)]


# --- through the runtime, its worker processes and the WhatsApp emulator -------------------------------


def test_on_error_answers_through_the_runtime_once_and_the_dead_letter_stays(stack: type[Stack]) -> None:
    async def scenario() -> None:
        fast_retries = {"max_attempts": 3, "retry_initial_backoff": 0.01, "retry_max_backoff": 0.02}
        async with stack(bot="sample_bots:routed_bot", **fast_retries) as s:
            assert s.runtime is not None and s.runtime.engine is not None
            assert await s.say("15551110001", "wamid.boom", "boom") == 200
            assert await s.say("15551110002", "wamid.bad-on-error", "raise-in-on-error") == 200
            assert await s.reply("15551110001", "wamid.after", "still there?") == "text: still there?"
            await s.until(lambda: bool(s.replies_to("wamid.boom")))
            await s.until(lambda: len(s.runtime.engine.dead_letters()) == 2)  # type: ignore[union-attr]
            await s.runtime.sink.wait_idle(timeout=30)
            assert s.replies_to("wamid.boom") == [f"{SORRY} (ValueError, attempt 3)"]
            assert s.replies_to("wamid.bad-on-error") == []
            letters = {d.payload["id"]: d for d in s.runtime.engine.dead_letters()}
            assert letters["wamid.boom"].error == "ValueError: cannot handle 'boom'"
            assert "Traceback" in letters["wamid.boom"].traceback
            assert letters["wamid.bad-on-error"].attempts == 3
            # The worker that ran the raising on_error still answers.
            assert await s.reply("15551110002", "wamid.later", "hello") == "text: hello"

    asyncio.run(scenario())


def test_routes_through_the_runtime(stack: type[Stack]) -> None:
    async def scenario() -> None:
        async with stack(bot="sample_bots:routed_bot") as s:
            image = {"id": s.whatsapp.add_media(b"\xff\xd8jpeg", "image/jpeg"), "mime_type": "image/jpeg"}
            photo, status = await s.whatsapp.post_inbound("15551110003", kind="image", content=image | {"caption": "x"})
            assert status == 200
            tap = {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}
            tapped, status = await s.whatsapp.post_inbound("15551110003", kind="interactive", content=tap)
            assert status == 200
            where = {"latitude": 51.5, "longitude": -0.12}
            located, status = await s.whatsapp.post_inbound("15551110003", kind="location", content=where)
            assert status == 200
            for wamid in (photo, tapped, located):
                await s.until(lambda wamid=wamid: bool(s.replies_to(wamid)))  # type: ignore[misc]
            assert s.replies_to(photo) == [f"photo {image['id']}: x"]
            assert s.replies_to(tapped) == ["you tapped yes"]
            assert s.replies_to(located) == ["location: "]

    asyncio.run(scenario())
