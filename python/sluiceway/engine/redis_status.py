"""What operators ask a Redis broker: is this Redis safe for messages, and how is the cluster doing.

``persistence_problems`` is the start-up check (AOF on, no eviction); ``cluster_status`` is the
``redis`` part of ``/status``: every live node (its heartbeat) and each partition's backlog,
pending count and lease holder, in one pipelined round trip.
"""

from __future__ import annotations

import json
from typing import Any

from redis.exceptions import RedisError

from sluiceway.engine import redis_scripts as scripts
from sluiceway.engine.errors import BrokerUnavailable
from sluiceway.engine.redis_broker import RedisBroker
from sluiceway.engine.redis_scripts import redacted_url


async def persistence_problems(broker: RedisBroker) -> list[str]:
    """What makes this Redis unsafe for accepted messages: AOF off, or an evicting memory policy."""
    try:
        persistence = await broker.redis.info("persistence")
        memory = await broker.redis.info("memory")
    except RedisError as error:
        raise BrokerUnavailable(f"Redis at {redacted_url(broker.url)} cannot be reached: {error}") from error
    problems = []
    if not int(persistence.get("aof_enabled", 0)):
        problems.append("appendonly is off (set `appendonly yes`: without it a Redis restart loses messages)")
    policy = memory.get("maxmemory_policy", "noeviction")
    if policy != "noeviction":
        problems.append(f"maxmemory-policy is {policy} (set `maxmemory-policy noeviction`: Redis would evict messages)")
    return problems


async def cluster_status(broker: RedisBroker) -> dict[str, Any]:
    """Every live node (its last heartbeat), and each partition's backlog, pending count and holder."""
    pipe = broker.redis.pipeline(transaction=False)
    pipe.hgetall(broker.key("nodes"))
    pipe.time()
    for partition in range(broker.partitions):
        pipe.xlen(broker.stream(partition))
        pipe.xpending(broker.stream(partition), scripts.GROUP)
        pipe.get(broker.key("lease", partition))
        pipe.pttl(broker.key("lease", partition))
    pipe.xlen(broker.key("dead"))
    results = await pipe.execute()
    nodes_raw, (seconds, micros) = results[0], results[1]
    now_ms = seconds * 1000 + micros // 1000
    nodes = []
    for raw in nodes_raw.values():
        seen, _, status = raw.decode().partition("|")
        nodes.append({**json.loads(status), "heartbeat_age": (now_ms - int(seen)) / 1000})
    partitions = []
    for partition in range(broker.partitions):
        length, pending, lease, ttl = results[2 + 4 * partition : 6 + 4 * partition]
        holder = lease.decode().rpartition(":")[0] if lease else None
        partitions.append(
            {
                "partition": partition,
                "backlog": length,
                "pending": pending["pending"],
                "holder": holder,
                "lease_seconds_left": ttl / 1000 if ttl > 0 else 0.0,
            }
        )
    return {"nodes": sorted(nodes, key=lambda n: n["node"]), "partitions": partitions, "dead_letters": results[-1]}
