"""The runtime's Redis pieces built by sluiceway.app.redis_shared: a reply sent through them by a real sender."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from sluiceway.app.context import Outgoing
from sluiceway.app.outbox import DurableOutbox
from sluiceway.app.redis_shared import open_sheets_level, outbox_store, sender_limits
from sluiceway.testing.redis_server import RedisServer
from sluiceway.testing.whatsapp_emulator import WhatsAppEmulator
from sluiceway.whatsapp import BatchSender, SenderConfig, WhatsAppCloudTransport
from sluiceway.whatsapp.messages import OutboundMessage


def test_a_reply_goes_through_the_redis_outbox_and_limits_and_the_sheets_level_serves_reads(
    shared_redis: RedisServer,
) -> None:
    async def scenario() -> None:
        namespace = uuid.uuid4().hex
        redis = Redis.from_url(shared_redis.url)
        config = SenderConfig.cloud_api(80)
        async with (
            WhatsAppEmulator(throughput=80) as api,
            WhatsAppCloudTransport(api.phone_number_id, api.access_token, base_url=api.base_url) as transport,
        ):
            limits = sender_limits(redis, config, namespace=namespace, phone_number_id=api.phone_number_id)
            store = outbox_store(redis, namespace=namespace, node="node-1")
            outbox = DurableOutbox()
            async with BatchSender(transport, config, journal=outbox, limits=limits) as sender:
                outbox.attach(sender)
                await outbox.open(store)
                outbox.put(Outgoing(OutboundMessage.of_text("15550001111", "hi"), "normal", "k1"), "wamid.in")
                await outbox.wait_committed(10)  # committed to Redis, then with the sender
                assert await sender.drain(10)
            await store.close()
            assert [a.message.to for a in api.accepted] == ["15550001111"]
            assert await store.outbox_unsent() == []  # sent: nothing left to send after a restart
            assert limits.granted >= 1

        cache, level = await open_sheets_level(redis, namespace=namespace)
        assert (await cache.get_or_fetch("1AbC", "Units!A1", lambda: [1])).value == [1]
        assert level.stats()["misses"] == 1
        await level.aclose()
        await redis.aclose()

    asyncio.run(scenario())


def test_sender_limits_need_the_number_they_share() -> None:
    with pytest.raises(ValueError, match="phone_number_id"):
        sender_limits(Redis(), SenderConfig(), namespace="bot", phone_number_id="")


def test_a_lone_reply_to_a_new_recipient_goes_out_while_the_node_holds_tokens(shared_redis: RedisServer) -> None:
    """Quiet traffic: the second reply's pair token is asked for while global tokens are held; nothing else
    wakes the sender, yet it is sent."""

    async def scenario() -> None:
        redis = Redis.from_url(shared_redis.url)
        config = SenderConfig.cloud_api(80)
        async with (
            WhatsAppEmulator(throughput=80) as api,
            WhatsAppCloudTransport(api.phone_number_id, api.access_token, base_url=api.base_url) as transport,
        ):
            limits = sender_limits(redis, config, namespace=uuid.uuid4().hex, phone_number_id=api.phone_number_id)
            async with BatchSender(transport, config, limits=limits) as sender:
                for recipient in ("15550001111", "15550002222"):
                    await sender.enqueue_message(recipient, "hi")
                    assert await sender.drain(10), f"the reply to {recipient} was not sent"
            assert len(api.accepted) == 2
        await redis.aclose()

    asyncio.run(scenario())
