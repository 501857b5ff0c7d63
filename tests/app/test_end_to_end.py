"""The bot runtime end to end: real HTTP, real worker processes, the WhatsApp and Sheets emulators."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

import msgspec

from sluiceway.testing.webhooks import status_update, text_messages

from .conftest import Stack


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_reply_quotes_the_message_and_is_confirmed(stack: type[Stack]) -> None:
    """A tenant's question gets one reply, quoting it, and the delivery status confirms the send."""

    async def scenario() -> None:
        async with stack() as s:
            assert await s.reply("15550001111", "wamid.rent", "rent for unit 12?") == (
                "Rent for 12 (Harbor View, studio) is $1,225/month."
            )
            assert s.runtime is not None and s.runtime.sender is not None
            sender = s.runtime.sender
            await s.until(lambda: sender.stats()["confirmed"] == 1)

    run(scenario)


def test_redelivered_webhook_is_answered_once(stack: type[Stack]) -> None:
    """Meta delivering the same message three times produces one reply."""

    async def scenario() -> None:
        async with stack() as s:
            for _ in range(3):
                assert await s.say("15550001111", "wamid.again", "is 4B available?") == 200
            await s.until(lambda: bool(s.replies_to("wamid.again")))
            assert s.runtime is not None and s.runtime.sink is not None
            await s.runtime.sink.wait_idle(60)
            assert len(s.replies_to("wamid.again")) == 1
            assert s.runtime.ingress is not None and s.runtime.ingress.stats.duplicates == 2

    run(scenario)


def test_replies_keep_each_tenants_order(stack: type[Stack]) -> None:
    """Ten tenants each sending ten messages at once get their replies in the order they wrote."""

    async def scenario() -> None:
        async with stack(workers=2) as s:
            tenants = [f"1555000{t:04d}" for t in range(10)]
            for i in range(10):
                await asyncio.gather(*(s.say(t, f"wamid.{t}.{i}", f"is {i + 1}A available?") for t in tenants))
            await s.until(lambda: len(s.whatsapp.accepted) == 100)
            for tenant in tenants:
                quoted = [
                    a.message.context.message_id
                    for a in s.whatsapp.accepted
                    if a.message.to == tenant and a.message.context is not None
                ]
                assert quoted == [f"wamid.{tenant}.{i}" for i in range(10)]

    run(scenario)


def test_one_webhook_with_many_messages(stack: type[Stack]) -> None:
    """A webhook batching messages of several tenants answers each of them once."""

    async def scenario() -> None:
        async with stack() as s:
            batch = [(f"1555100{i:04d}", f"wamid.batch.{i}", "hi") for i in range(20)]
            assert await s.post(text_messages(batch)) == 200
            await s.until(lambda: all(s.replies_to(w) for _, w, _ in batch))
            assert all(len(s.replies_to(w)) == 1 for _, w, _ in batch)

    run(scenario)


def test_booking_then_availability(stack: type[Stack]) -> None:
    """A booked viewing is written to the sheet and no longer offered in the next availability answer."""

    async def scenario() -> None:
        async with stack(workers=2) as s:
            before = await s.reply("15550002222", "wamid.b0", "is 3D available?")
            assert "Sat 5 Dec 14:00" in before
            booked = await s.reply("15550002222", "wamid.b1", "can I view 3D on 2026-12-05 at 2pm")
            assert booked.startswith("Booked: viewing of 3D")
            rows = s.sheets.values(SPREADSHEET, "Viewings")
            assert ["3D", "2026-12-05", "14:00", "booked", "15550002222"] in [list(map(str, r)) for r in rows]
            # Another tenant, probably served by the other worker, sees the slot gone.
            after = await s.reply("15550003333", "wamid.b2", "is 3D available?")
            assert "Sat 5 Dec 14:00" not in after and "Sat 5 Dec 10:00" in after

    from .conftest import SPREADSHEET

    run(scenario)


def test_maintenance_request_is_appended_and_urgent(stack: type[Stack]) -> None:
    """A leak report appends one ticket row and is answered as urgent."""

    async def scenario() -> None:
        async with stack() as s:
            before = len(s.sheets.values(SPREADSHEET, "Maintenance"))
            answer = await s.reply("15550004444", "wamid.leak", "my sink is leaking in 4B")
            assert "URGENT" in answer
            rows = s.sheets.values(SPREADSHEET, "Maintenance")
            assert len(rows) == before + 1
            assert [str(v) for v in rows[-1][1:5]] == ["4B", "15550004444", "my sink is leaking in 4B", "high"]

    from .conftest import SPREADSHEET

    run(scenario)


def test_status_webhooks_reach_the_sender(stack: type[Stack]) -> None:
    """A status webhook for an unknown message is taken (200) and does not disturb the bot."""

    async def scenario() -> None:
        async with stack() as s:
            assert await s.post(status_update("wamid.unknown", "1555", "delivered")) == 200
            assert await s.reply("15550005555", "wamid.s", "hi")

    run(scenario)


def test_emulator_faults_lose_nothing(stack: type[Stack]) -> None:
    """5xx answers, an outage and Sheets 503s delay replies but every message is answered exactly once."""

    async def scenario() -> None:
        async with stack(workers=2) as s:
            s.whatsapp.fail_next(5, 500)
            s.sheets.fail_next(3, 503)
            s.whatsapp.outage(1.0)
            wamids = [f"wamid.fault.{i}" for i in range(40)]
            for i, wamid in enumerate(wamids):
                assert await s.say(f"1555200{i % 8:04d}", wamid, f"rent for unit {i % 12 + 1}") == 200
            await s.until(lambda: all(s.replies_to(w) for w in wamids))
            assert s.runtime is not None and s.runtime.sender is not None
            await s.runtime.sender.drain(60)
            assert all(len(s.replies_to(w)) == 1 for w in wamids)
            assert s.whatsapp.answers[2] >= 1 or s.whatsapp.answers[131000] >= 1

    run(scenario)


def test_worker_sigkill_loses_nothing(stack: type[Stack]) -> None:
    """SIGKILLing a worker mid-run re-delivers its messages: every message still gets exactly one reply."""

    async def scenario() -> None:
        async with stack(workers=2) as s:
            assert s.runtime is not None and s.runtime.engine is not None
            engine = s.runtime.engine
            wamids = [f"wamid.kill.{i}" for i in range(200)]
            # Delivered as Meta does: a burst into a runtime that lost a worker may be shed (503) and re-delivered.
            posts = [s.deliver(f"1555300{i % 20:04d}", w, "any 2 bed under 2k?") for i, w in enumerate(wamids)]
            first = asyncio.gather(*posts[:100])
            await first
            victim = engine.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            await asyncio.gather(*posts[100:])
            await s.until(lambda: all(s.replies_to(w) for w in wamids))
            await s.until(lambda: victim not in engine.worker_pids() and len(engine.worker_pids()) == 2)
            assert s.runtime.sink is not None
            await s.runtime.sink.wait_idle(60)
            assert all(len(s.replies_to(w)) == 1 for w in wamids)

    run(scenario)


def test_graceful_stop_answers_everything_accepted(stack: type[Stack]) -> None:
    """stop() right after a burst still answers every accepted message, then refuses new ones."""

    async def scenario() -> None:
        async with stack(workers=2) as s:
            wamids = [f"wamid.stop.{i}" for i in range(60)]
            statuses = await asyncio.gather(*(s.say(f"1555400{i % 6:04d}", w, "hi") for i, w in enumerate(wamids)))
            assert statuses == [200] * 60
            assert s.runtime is not None
            summary = await s.runtime.stop()
            assert all(len(s.replies_to(w)) == 1 for w in wamids)
            assert (summary.received, summary.handled, summary.replies, summary.left_queued) == (60, 60, 60, 0)
            assert "shutdown ◆ 60 received" in summary.line()

    run(scenario)


def test_failed_handler_is_dead_lettered_and_replayable(stack: type[Stack]) -> None:
    """A handler failing on every attempt gets no reply; the admin endpoint lists, replays and purges it."""

    async def scenario() -> None:
        async with stack(bot="sample_bots:failing_bot", max_attempts=2) as s:
            assert await s.say("15550006666", "wamid.boom", "boom") == 200
            assert await s.reply("15550006666", "wamid.ok", "fine") == "echo: fine"
            assert s.runtime is not None and s.runtime.sink is not None and s.runtime.engine is not None
            sink, engine = s.runtime.sink, s.runtime.engine
            await s.until(lambda: len(engine.dead_letters()) == 1)
            assert s.session is not None
            async with s.session.get(s.runtime.admin_url + "/dead-letters") as response:
                letters = msgspec.json.decode(await response.read())
            assert [(letter["kind"], letter["id"]) for letter in letters] == [("message", "wamid.boom")]
            assert "RuntimeError" in letters[0]["error"] or "failed" in letters[0]["error"]
            async with s.session.post(s.runtime.admin_url + "/dead-letters/replay") as response:
                assert msgspec.json.decode(await response.read()) == {"replayed": 1, "replayed_sends": 0}
            await s.until(lambda: len(engine.dead_letters()) == 1 and sink.stats.failed == 2)
            async with s.session.post(s.runtime.admin_url + "/dead-letters/purge") as response:
                assert msgspec.json.decode(await response.read()) == {"purged": 1, "purged_sends": 0}
            assert engine.dead_letters() == [] and s.replies_to("wamid.boom") == []

    run(scenario)
