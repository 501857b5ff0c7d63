"""Partitions handed over cleanly, and the broker's lease hooks (what the reply outbox hangs on).

* A graceful stop gives back what it read and never ran with its delivery counts as they were: with
  ``max_attempts=1`` the next holder runs those messages instead of dead-lettering them.
* A batch of acks waits for ``hooks.before_finish``: a message is never acked before what its
  result produced (its replies) is durable.
* ``hooks.taking`` runs before a taken partition's messages reach the engine; ``hooks.beat`` runs
  before any lease of a round is renewed or taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from sluiceway.engine import MessageParallelizer, ParallelizerConfig
from sluiceway.engine.redis_broker import RedisBroker
from sluiceway.engine.redis_dead_letters import RedisDeadLetters
from sluiceway.testing import wait_until
from sluiceway.testing.handlers import read_log
from sluiceway.testing.redis_server import RedisServer

SCRIPTED = "sluiceway.testing.handlers:scripted"


def _node(url: str, config: ParallelizerConfig, results: list[Any], namespace: str) -> MessageParallelizer:
    broker = RedisBroker(url, namespace=namespace, claim_timeout=2.0, partitions=4)
    return MessageParallelizer(
        SCRIPTED, config, broker=broker, on_recovered=lambda payload, future: results.append((payload, future))
    )


def test_a_graceful_stop_does_not_count_as_a_failed_delivery(
    redis_server: RedisServer, config: Callable[..., ParallelizerConfig], tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"
    count = 5

    async def scenario() -> None:
        results: list[Any] = []
        # One attempt allowed: a hand-over counted as a delivery would dead-letter the messages given back.
        first = _node(redis_server.url, config(max_attempts=1), results, "handover")
        await first.start()
        assert first.broker is not None
        await wait_until(lambda: len(first.broker.held) == 4, 30, "the first node to hold every partition")
        for n in range(count):  # one key, one second each: the first runs, the others wait their turn
            accepted = first.accept({"sleep": 1.0, "log": str(log), "tag": f"k:{n}"}, ordering_key="k")
            assert await accepted.committed
        await wait_until(lambda: first.broker.outstanding == count, 30, "the first node to read them all")
        # The drain gives up at once: the message running finishes, the ones waiting behind it are given back.
        await first.shutdown(drain=True, timeout=0.1)
        given_back = count - len(read_log(log))
        assert given_back >= count - 2
        second = _node(redis_server.url, config(max_attempts=1), results, "handover")
        await second.start()
        try:
            await wait_until(lambda: len(read_log(log)) == count, 60, "the second node to run the rest")
            async with RedisDeadLetters(redis_server.url, "handover") as dead:
                assert await dead.letters() == []
        finally:
            await second.shutdown()

    uvloop.run(scenario())
    runs = read_log(log)
    assert [tag for tag, *_ in runs] == [f"k:{n}" for n in range(count)]
    assert {attempt for _, _, attempt, _ in runs} == {"1"}, "a hand-over counted as an attempt (they count from 1)"


class Hooks:
    """Records the hook calls; ``before_finish`` waits for ``release`` (a reply commit in flight)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.release = asyncio.Event()

    async def beat(self) -> None:
        self.calls.append(("beat", None))

    async def holding(self, partitions: list[int]) -> None:
        self.calls.append(("holding", tuple(partitions)))

    async def taking(self, partition: int) -> None:
        self.calls.append(("taking", partition))

    async def releasable(self, partition: int) -> bool:
        self.calls.append(("releasable", partition))
        return True

    async def before_finish(self) -> None:
        self.calls.append(("before_finish", None))
        await self.release.wait()


def test_acks_wait_for_before_finish_and_a_partition_is_announced_before_it_is_read(
    redis_server: RedisServer, config: Callable[..., ParallelizerConfig]
) -> None:
    async def scenario() -> None:
        results: list[Any] = []
        node = _node(redis_server.url, config(), results, "hooks")
        hooks = Hooks()
        assert node.broker is not None
        node.broker.hooks = hooks
        broker = node.broker
        await node.start()
        try:
            await wait_until(lambda: len(broker.held) == 4, 30, "the node to hold every partition")
            taken = [p for name, p in hooks.calls if name == "taking"]
            assert sorted(taken) == [0, 1, 2, 3] and hooks.calls[0] == ("beat", None)
            accepted = node.accept({"result": 7}, ordering_key="k")
            assert await accepted.committed
            stream = broker.stream(broker.partition_of("k"))
            await wait_until(lambda: results and results[0][1].done(), 30, "the handler's result")
            await wait_until(lambda: ("before_finish", None) in hooks.calls, 30, "the ack batch to reach the hook")
            pending = await broker.redis.xpending(stream, "workers")
            assert pending["pending"] == 1, "acked before the hook said its results were durable"
            hooks.release.set()
            await wait_until(lambda: broker.completed == 1, 30, "the ack once the hook returned")
            assert (await broker.redis.xpending(stream, "workers"))["pending"] == 0
            await wait_until(lambda: any(name == "holding" for name, _ in hooks.calls), 30, "a lease round")
        finally:
            hooks.release.set()
            await node.shutdown()

    uvloop.run(scenario())
