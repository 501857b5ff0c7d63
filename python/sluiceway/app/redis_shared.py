"""What the bot runtime shares through Redis besides the engine's queue, built in one place for ``redis_url``.

* in the supervisor: the sender's global rate limits (:func:`sender_limits`) and the reply
  outbox with the sender's dead letters (:func:`outbox_store`);
* in each worker: the Sheets cache's Redis level (:func:`open_sheets_level`), passed to the
  worker's ``SheetsCache`` as both its invalidation channel and its shared level.

Every key lives under ``namespace`` (the ``redis_namespace`` setting), so several bots can
share one Redis.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from sluiceway.app.redis_outbox import RedisOutboxStore
from sluiceway.sheets.cache import SheetsCache
from sluiceway.sheets.config import CacheConfig
from sluiceway.sheets.redis_level import RedisSheetsLevel
from sluiceway.whatsapp.config import SenderConfig
from sluiceway.whatsapp.redis_limits import RedisRateLimits

if TYPE_CHECKING:
    from redis.asyncio import Redis


def sender_limits(redis: Redis, config: SenderConfig, *, namespace: str, phone_number_id: str) -> RedisRateLimits:
    """The number's cap and pair rate shared by every node sending for ``phone_number_id``."""
    if not phone_number_id:
        raise ValueError("phone_number_id must name the WhatsApp number whose limits are shared")
    return RedisRateLimits(redis, config.rate_limit, config.per_recipient, key=f"{namespace}:limits:{phone_number_id}")


def outbox_store(
    redis: Redis,
    *,
    namespace: str,
    node: str | None = None,
    partitions: int = 1,
    partition_of: Callable[[str], int] | None = None,
    claim_timeout: float = 30.0,
) -> RedisOutboxStore:
    """This node's reply outbox (``node`` defaults to the host name: a restart finds what it left unsent).

    ``partitions`` and ``partition_of`` are the engine broker's (``RedisBroker.partitions`` and
    ``.partition_of``), and ``claim_timeout`` its lease time, so that a partition's holder adopts
    the replies a dead node left in it (:class:`~sluiceway.app.redis_outbox.OutboxLeases`).
    """
    return RedisOutboxStore(
        redis,
        namespace=namespace,
        node=node or socket.gethostname(),
        partitions=partitions,
        partition_of=partition_of,
        claim_timeout=claim_timeout,
    )


async def open_sheets_level(
    redis: Redis, *, namespace: str, config: CacheConfig | None = None
) -> tuple[SheetsCache, RedisSheetsLevel]:
    """A worker's Sheets cache on the shared Redis level, subscribed (close the level at worker teardown)."""
    config = config or CacheConfig()
    level = RedisSheetsLevel(redis, namespace=namespace, compression_threshold_bytes=config.compression_threshold_bytes)
    await level.start()
    return SheetsCache(config, invalidation=level, shared=level), level
