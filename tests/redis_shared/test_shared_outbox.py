"""The reply outbox and the sender's dead letters in Redis, behind the same interface as the journal's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from sluiceway.app.context import Outgoing
from sluiceway.app.dead_letters import redis_send_dead_letters
from sluiceway.app.outbox import DurableOutbox
from sluiceway.app.redis_outbox import RedisOutboxStore
from sluiceway.testing.redis_server import RedisServer
from sluiceway.whatsapp.messages import OutboundMessage


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


class FakeSender:
    """Takes replies like ``BatchSender.enqueue_nowait`` (one id per idempotency key)."""

    def __init__(self) -> None:
        self.taken: list[Outgoing] = []
        self.ids: dict[str, str] = {}

    def enqueue_nowait(
        self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None
    ) -> str:
        key = idempotency_key or str(len(self.taken))
        if key not in self.ids:
            self.ids[key] = f"m{len(self.ids)}"
            self.taken.append(Outgoing(message, priority, key))  # type: ignore[arg-type]
        return self.ids[key]


def _reply(n: int, to: str = "15550003333") -> Outgoing:
    return Outgoing(OutboundMessage.of_text(to, f"reply {n}"), "normal", f"key-{n}")


async def _outbox(redis: Redis, namespace: str) -> tuple[RedisOutboxStore, DurableOutbox, FakeSender]:
    store = RedisOutboxStore(redis, namespace=namespace, node="node-1")
    outbox, sender = DurableOutbox(), FakeSender()
    outbox.attach(sender)
    await outbox.open(store)  # resolves once the unsent replies are with the sender
    return store, outbox, sender


@settings(max_examples=25)
@given(st.lists(st.sampled_from(["queued", "sending", "sent", "failed"]), min_size=1, max_size=12))
def test_after_a_restart_unsent_replies_go_out_once_and_uncertain_ones_are_counted(
    loop: asyncio.AbstractEventLoop, shared_redis: RedisServer, fates: list[str]
) -> None:
    """Model: a reply only queued is sent after a restart; one on the wire is sent again and counted; one
    WhatsApp took, or one that failed (a sender dead letter), is not. Order is kept."""

    async def scenario() -> None:
        namespace = uuid.uuid4().hex
        redis = Redis.from_url(shared_redis.url)
        store, outbox, sender = await _outbox(redis, namespace)
        for n in range(len(fates)):
            outbox.put(_reply(n), f"wamid.in.{n}")
        await outbox.wait_committed(30)
        assert [r.idempotency_key for r in sender.taken] == [f"key-{n}" for n in range(len(fates))]
        for n, fate in enumerate(fates):
            message_id = sender.ids[f"key-{n}"]
            if fate in ("sending", "sent"):
                await outbox.sending([message_id])
            if fate == "sent":
                outbox.sent([message_id], f"wamid.out.{n}")
            if fate == "failed":
                outbox.failed(message_id, 131047, "outside the 24-hour window", 1)
        await store.close()  # everything above is in Redis; the process "dies"

        store, outbox, sender = await _outbox(redis, namespace)  # the node restarts under its name
        expected = [n for n, fate in enumerate(fates) if fate in ("queued", "sending")]
        assert [r.idempotency_key for r in sender.taken] == [f"key-{n}" for n in expected]
        assert outbox.uncertain_resends == fates.count("sending")
        letters = await outbox.dead_letters()
        assert [letter.inbound_wamid for letter in letters] == [
            f"wamid.in.{n}" for n, fate in enumerate(fates) if fate == "failed"
        ]
        assert all(letter.reason == "error 131047" and letter.attempts == 1 for letter in letters)
        await store.close()
        await redis.aclose()

    loop.run_until_complete(scenario())


def test_states_move_like_the_journal_and_a_status_finishes_a_sent_reply(
    loop: asyncio.AbstractEventLoop, shared_redis: RedisServer
) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(shared_redis.url)
        namespace = uuid.uuid4().hex
        store = RedisOutboxStore(redis, namespace=namespace, node="a")
        a, b = await store.outbox_add("1555", b"hi", "in-a"), await store.outbox_add("1555", b"yo")
        await store.outbox_sending(a)
        await store.outbox_sending(a)  # on the wire again while the first send's outcome is unknown
        assert await store.uncertain_resends() == 1
        await store.outbox_sent(a, "out-a")
        with pytest.raises(ResponseError, match="already sent"):
            await store.outbox_sending(a)
        with pytest.raises(ResponseError, match="no outbox reply"):
            await store.outbox_sent(10_000, "nope")
        assert [item.id for item in await store.outbox_unsent()] == [b]
        assert await store.outbox_status("out-a") and not await store.outbox_status("out-a")
        assert not await redis.exists(f"{namespace}:outbox:reply:{a}")  # finished: nothing left of it
        await redis.aclose()

    loop.run_until_complete(scenario())


def test_dlq_lists_replays_and_purges_the_sender_dead_letters_in_redis(
    loop: asyncio.AbstractEventLoop, shared_redis: RedisServer
) -> None:
    async def scenario() -> None:
        namespace = uuid.uuid4().hex
        redis = Redis.from_url(shared_redis.url)
        store = RedisOutboxStore(redis, namespace=namespace, node="a")
        body = msgspec.msgpack.encode(_reply(1))
        ids = [await store.outbox_add("1555", body, f"in-{n}") for n in range(3)]
        for id in ids:
            await store.outbox_fail(id, "error 131047", "outside the window", 2)
        # Any node (or a stopped one's operator) sees them.
        other = RedisOutboxStore(redis, namespace=namespace, node="b")
        listed = await redis_send_dead_letters(other, "list")
        assert [(d["kind"], d["id"], d["in_reply_to"], d["text"]) for d in listed] == [
            ("send", id, f"in-{n}", "reply 1") for n, id in enumerate(ids)
        ]
        assert await redis_send_dead_letters(other, "replay") == {"replayed_sends": 3}
        assert [item.id for item in await other.outbox_unsent()] == ids  # node b sends them
        await other.outbox_fail(ids[0], "rejected", "400", 1)
        assert await redis_send_dead_letters(store, "purge") == {"purged_sends": 1}
        assert await redis_send_dead_letters(store, "list") == []
        await redis.aclose()

    loop.run_until_complete(scenario())


def test_operations_queued_together_go_in_one_round_trip(
    loop: asyncio.AbstractEventLoop, shared_redis: RedisServer
) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(shared_redis.url)
        store = RedisOutboxStore(redis, namespace=uuid.uuid4().hex)
        ids = await asyncio.gather(*(store.outbox_add("1555", b"x") for _ in range(100)))
        assert list(ids) == sorted(ids)  # submission order
        assert store.operations == 100 and store.round_trips <= 2
        await redis.aclose()

    loop.run_until_complete(scenario())
