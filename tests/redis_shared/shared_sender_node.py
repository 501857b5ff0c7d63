"""One sender node for the cluster tests: a BatchSender on Redis rate limits, sending until a deadline.

Run as ``python shared_sender_node.py CONFIG_JSON``; prints its limits' counters and the moment each
send was handed to the transport (``sent_at``) as JSON on exit. The deadlines and those moments are
``time.monotonic`` values, which every process on one Linux machine shares.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from redis.asyncio import Redis

from sluiceway.whatsapp import BatchSender, SenderConfig, WhatsAppCloudTransport
from sluiceway.whatsapp.cloud_api import SendResult
from sluiceway.whatsapp.config import RecipientLimit
from sluiceway.whatsapp.messages import OutboundMessage
from sluiceway.whatsapp.redis_limits import RedisRateLimits

#: When each send was handed to the transport: what the limits promise is about these moments.
SENT_AT: list[float] = []


class TimedTransport(WhatsAppCloudTransport):
    async def send(self, message: OutboundMessage) -> SendResult:
        SENT_AT.append(time.monotonic())
        return await super().send(message)


async def main(config: dict[str, object]) -> None:
    cap = int(str(config["cap"]))
    sender_config = SenderConfig.cloud_api(cap, per_recipient=RecipientLimit(limit=1, window=6.0), max_retries=0)
    redis = Redis.from_url(str(config["redis_url"]))
    limits = RedisRateLimits(redis, sender_config.rate_limit, sender_config.per_recipient, key=str(config["key"]))
    async with TimedTransport(
        str(config["phone_number_id"]), str(config["token"]), base_url=str(config["base_url"])
    ) as transport:
        sender = BatchSender(transport, sender_config, limits=limits)
        while time.monotonic() < float(str(config["start_at"])):
            await asyncio.sleep(0.005)
        await sender.start()
        for i in range(int(str(config["messages"]))):
            sender.enqueue_nowait(OutboundMessage.of_text(f"{config['prefix']}{i}", "hello"))
        await asyncio.sleep(max(0.0, float(str(config["stop_at"])) - time.monotonic()))
        await sender.close(timeout=0.0)
    await redis.aclose()
    counters = {"round_trips": limits.round_trips, "granted": limits.granted, "lapsed": limits.lapsed}
    print(json.dumps({**counters, "sent_at": SENT_AT}))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
