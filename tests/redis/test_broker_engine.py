"""Engines sharing one Redis queue (``MessageParallelizer(..., broker=RedisBroker(...))``), in one test process.

Each engine is a node with its own worker processes; the handler logs what it ran to a file, so
the order across nodes is read back from there.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from sluiceway.engine import MessageParallelizer, ParallelizerConfig
from sluiceway.engine.redis_broker import RedisBroker
from sluiceway.testing import wait_until
from sluiceway.testing.handlers import read_log
from sluiceway.testing.redis_server import RedisServer

SCRIPTED = "sluiceway.testing.handlers:scripted"


def _node(url: str, config: ParallelizerConfig, results: list[Any], claim_timeout: float = 2.0) -> MessageParallelizer:
    broker = RedisBroker(url, namespace="t", claim_timeout=claim_timeout, partitions=8)
    return MessageParallelizer(
        SCRIPTED, config, broker=broker, on_recovered=lambda payload, future: results.append((payload, future))
    )


def _per_key(log: Path) -> dict[str, list[int]]:
    order: dict[str, list[int]] = defaultdict(list)
    for tag, *_ in read_log(log):
        key, n = tag.split(":")
        order[key].append(int(n))
    return order


def test_two_nodes_run_every_message_once_in_per_key_order(
    redis_server: RedisServer, config: Callable[..., ParallelizerConfig], tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"
    keys, per_key = 12, 25

    async def scenario() -> None:
        results: list[Any] = []
        a, b = _node(redis_server.url, config(), results), _node(redis_server.url, config(), results)
        await a.start()
        await b.start()
        try:
            await wait_until(lambda: a.broker.held and b.broker.held, 30, "both nodes to hold partitions")
            for n in range(per_key):  # a sender's next message comes once its last one is accepted
                committed = []
                for k in range(keys):
                    node = a if (n + k) % 2 else b  # webhooks spread over both nodes
                    accepted = node.accept({"log": str(log), "tag": f"k{k}:{n}"}, ordering_key=f"k{k}")
                    committed.append(accepted.committed)
                assert all(await asyncio.gather(*committed))
            await wait_until(lambda: len(read_log(log)) >= keys * per_key, 60, "every message to run")
            await wait_until(lambda: a.broker.completed + b.broker.completed == keys * per_key, 30, "every ack")
        finally:
            await asyncio.gather(a.shutdown(), b.shutdown())
        assert len(results) == keys * per_key
        assert all(future.done() and future.exception() is None for _, future in results)
        assert a.broker.completed > 0 and b.broker.completed > 0, "both nodes held partitions"

    uvloop.run(scenario())
    order = _per_key(log)
    assert sorted(order) == sorted(f"k{k}" for k in range(keys))
    for key, ran in order.items():
        assert ran == list(range(per_key)), f"{key} ran out of order or twice: {ran}"
