"""Priorities through Redis: what a node has read ahead runs HIGH before NORMAL before LOW.

A node reads its partitions' streams in accept order, up to its local queue's room
(``queue_high_water_mark`` messages outstanding); from there its local priority queue orders them.
So a HIGH message accepted behind a backlog of LOW ones overtakes every LOW one the node has read
but not yet handed to a worker, and a backlog longer than the room is read in accept order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluiceway.engine import MessageParallelizer, ParallelizerConfig, Priority
from sluiceway.engine.redis_broker import RedisBroker
from sluiceway.testing import wait_until
from sluiceway.testing.handlers import read_log
from sluiceway.testing.redis_server import RedisServer

SCRIPTED = "sluiceway.testing.handlers:scripted"


# Each example has its own namespace and files, so sharing the server and the tmp factory is safe.
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(levels=st.lists(st.sampled_from([Priority.HIGH, Priority.NORMAL, Priority.LOW]), min_size=5, max_size=40))
def test_a_read_ahead_backlog_runs_in_priority_order(
    redis_server: RedisServer,
    config: Callable[..., ParallelizerConfig],
    tmp_path_factory: object,
    levels: list[Priority],
) -> None:
    tmp = Path(tmp_path_factory.mktemp("priority"))  # type: ignore[attr-defined]
    log, gate = tmp / "ran.log", tmp / "open"
    namespace = f"priority-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        broker = RedisBroker(redis_server.url, namespace=namespace, claim_timeout=2.0, partitions=4)
        # One worker running one handler at a time, holding nothing ahead: the order it runs in is the node's.
        node = MessageParallelizer(
            SCRIPTED,
            config(default_worker_count=1, min_workers=1, max_workers=1, worker_concurrency=1, worker_prefetch=1),
            broker=broker,
        )
        await node.start()
        try:
            await wait_until(lambda: len(broker.held) == 4, 30, "the node to hold every partition")
            blocker = node.accept({"gate": str(gate), "log": str(log), "tag": "blocker"}, Priority.HIGH)
            assert await blocker.committed
            await wait_until(lambda: broker.outstanding == 1, 30, "the blocker to be read")
            backlog = [
                node.accept({"log": str(log), "tag": f"{int(level)}:{i}"}, level) for i, level in enumerate(levels)
            ]
            assert all(await asyncio.gather(*(accepted.committed for accepted in backlog)))
            await wait_until(lambda: broker.outstanding == 1 + len(levels), 30, "the node to read the whole backlog")
            gate.touch()
            await wait_until(lambda: broker.completed == 1 + len(levels), 60, "every message to run")
        finally:
            await node.shutdown()

    uvloop.run(scenario())
    tags = [fields[0] for fields in read_log(log)]
    assert tags[0] == "blocker"
    ran = [(int(tag.split(":")[0]), int(tag.split(":")[1])) for tag in tags[1:]]
    # The worker may already hold one message (its prefetch) when the gate opens: the rest runs by level.
    # (Within a level messages without an ordering key promise no order: they sit in several partitions.)
    held, rest = ran[:1], ran[1:]
    assert [level for level, _ in rest] == sorted(level for level, _ in rest), f"ran {ran}"
    assert sorted(held + rest) == sorted((int(level), i) for i, level in enumerate(levels))
