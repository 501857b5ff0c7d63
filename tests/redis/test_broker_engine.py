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

import msgspec
import uvloop

from sluiceway.engine import BrokerUnavailable, MessageParallelizer, ParallelizerConfig
from sluiceway.engine.redis_broker import RedisBroker
from sluiceway.engine.redis_dead_letters import RedisDeadLetters
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


def test_poison_goes_to_the_dead_letter_stream_and_replay_runs_it_again(
    redis_server: RedisServer, config: Callable[..., ParallelizerConfig], tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"

    async def scenario() -> None:
        results: list[Any] = []
        node = _node(redis_server.url, config(max_attempts=3), results)
        await node.start()
        try:
            await wait_until(lambda: node.broker.held, 30, "the node to hold partitions")
            poison = node.accept({"log": str(log), "tag": "poison:0", "fail": "bad data"}, ordering_key="p")
            after = node.accept({"log": str(log), "tag": "good:0"}, ordering_key="p")  # same key: waits its turn
            assert await poison.committed and await after.committed
            async with RedisDeadLetters(redis_server.url, "t") as dead:
                await wait_until(lambda: node.broker.completed == 2, 30, "the poison dead-lettered and the next run")
                letters = await dead.letters()
                assert [(letter.ordering_key, letter.payload["tag"]) for letter in letters] == [("p", "poison:0")]
                assert "bad data" in letters[0].error
                assert await dead.replay() == 1
                await wait_until(lambda: node.broker.completed == 3, 30, "the replayed letter to die again")
                assert len(await dead.letters()) == 1
                assert await dead.purge() == 1
                assert await dead.letters() == []
        finally:
            await node.shutdown()

    uvloop.run(scenario())
    tags = [fields[0] for fields in read_log(log)]
    assert tags == ["poison:0"] * 3 + ["good:0"] + ["poison:0"] * 3, "3 attempts, then the key's next message"


def test_finished_entries_leave_redis_so_memory_stays_bounded(
    redis_server: RedisServer, config: Callable[..., ParallelizerConfig]
) -> None:
    count = 3000

    async def scenario() -> None:
        results: list[Any] = []
        node = _node(redis_server.url, config(), results)
        await node.start()
        try:
            broker = node.broker
            assert broker is not None
            await wait_until(lambda: broker.held, 30, "the node to hold partitions")
            for start in range(0, count, 500):
                batch = [node.accept({}, ordering_key=f"k{n % 50}").committed for n in range(start, start + 500)]
                assert all(await asyncio.gather(*batch))
            await wait_until(lambda: broker.completed == count, 60, "every message acked")
            lengths = [await broker.redis.xlen(broker.stream(p)) for p in range(broker.partitions)]
            pending = [(await broker.redis.xpending(broker.stream(p), "workers"))["pending"] for p in range(8)]
            assert sum(lengths) == 0 and sum(pending) == 0, (lengths, pending)
            used = sum([await broker.redis.memory_usage(broker.stream(p)) or 0 for p in range(broker.partitions)])
            assert used < 64 * 1024 * broker.partitions, f"{used} bytes for empty streams"
        finally:
            await node.shutdown()

    uvloop.run(scenario())


def test_a_redis_restart_loses_nothing_accepted(
    redis_server: RedisServer, config: Callable[..., ParallelizerConfig], tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"
    keys = 10

    async def scenario() -> None:
        results: list[Any] = []
        node = _node(redis_server.url, config(), results, claim_timeout=5.0)
        await node.start()
        committed: list[str] = []
        refused = 0
        try:
            await wait_until(lambda: node.broker.held, 30, "the node to hold partitions")
            for n in range(60):
                if n == 20:
                    redis_server.kill()  # SIGKILL: what Redis acknowledged is in its append-only file
                if n == 40:
                    redis_server.start()
                for k in range(keys):
                    tag = f"k{k}:{n}"
                    try:
                        if await node.accept({"log": str(log), "tag": tag}, ordering_key=f"k{k}").committed:
                            committed.append(tag)
                    except BrokerUnavailable:
                        refused += 1  # the ingress answers 503: Meta delivers it again later
            await wait_until(lambda: {f[0] for f in read_log(log)} >= set(committed), 60, "every accepted message")
        finally:
            await node.shutdown()
        assert refused == 20 * keys, "every accept while Redis was down failed at once"
        assert len(committed) == 40 * keys

    uvloop.run(scenario())
    for key, ran in _per_key(log).items():
        last = -1
        for n in ran:  # at-least-once: only the message in flight when Redis went away may run again
            assert n == last or n > last, f"{key} ran out of order: {ran}"
            last = n


def test_entries_a_stalled_node_read_after_losing_its_lease_are_run_by_the_holder(
    redis_server: RedisServer, config: Callable[..., ParallelizerConfig], tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"

    async def scenario() -> None:
        results: list[Any] = []
        node = _node(redis_server.url, config(), results, claim_timeout=1.0)
        await node.start()
        try:
            broker = node.broker
            assert broker is not None
            await wait_until(lambda: len(broker.held) == broker.partitions, 30, "the node to hold every partition")
            entry = msgspec.msgpack.encode((1, 0.0, "k", msgspec.msgpack.encode({"log": str(log), "tag": "k:0"})))
            # A node whose lease lapsed while it stalled, reading late: the entry is pending under it
            # (added and read in one transaction, so that the holder's own reads cannot get it first).
            transaction = broker.redis.pipeline(transaction=True)
            transaction.xadd(broker.stream(0), {"m": entry})
            transaction.xreadgroup("workers", "ghost", {broker.stream(0): ">"}, count=1)
            await transaction.execute()
            await wait_until(lambda: read_log(log), 30, "the holder to claim and run the orphan")
        finally:
            await node.shutdown()
        assert [fields[0] for fields in read_log(log)] == ["k:0"]

    uvloop.run(scenario())


def test_a_node_runs_what_it_read_high_priority_first(
    redis_server: RedisServer, config: Callable[..., ParallelizerConfig], tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"

    async def scenario() -> None:
        # Accepted before any node runs (a producer-only broker), so that one read takes them all.
        producer = RedisBroker(redis_server.url, namespace="prio", partitions=1)
        await producer.connect()
        low = [producer.accept(_script(log, f"low:{n}"), 2, 0.0, f"l{n}", None) for n in range(30)]
        high = [producer.accept(_script(log, f"high:{n}"), 0, 0.0, f"h{n}", None) for n in range(30)]
        assert all(await asyncio.gather(*low, *high))
        await producer.redis.aclose()
        broker = RedisBroker(redis_server.url, namespace="prio", partitions=1)
        node = MessageParallelizer(
            SCRIPTED, config(default_worker_count=1, worker_concurrency=1, worker_prefetch=1), broker=broker
        )
        await node.start()
        try:
            await wait_until(lambda: len(read_log(log)) == 60, 60, "every message to run")
        finally:
            await node.shutdown()

    uvloop.run(scenario())
    ran = [fields[0].split(":")[0] for fields in read_log(log)]
    assert ran == ["high"] * 30 + ["low"] * 30, ran


def _script(log: Path, tag: str) -> bytes:
    return msgspec.msgpack.encode({"log": str(log), "tag": tag})


def test_a_node_shuts_down_while_redis_is_away(
    redis_server: RedisServer, config: Callable[..., ParallelizerConfig], tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"

    async def scenario() -> None:
        results: list[Any] = []
        node = _node(redis_server.url, config(), results, claim_timeout=1.0)
        await node.start()
        await wait_until(lambda: node.broker.held, 30, "the node to hold partitions")
        assert await node.accept({"log": str(log), "tag": "k:0", "sleep": 0.5}, ordering_key="k").committed
        await wait_until(lambda: read_log(log), 30, "the message to start")
        redis_server.kill()  # its ack cannot be sent: it stays pending for the next holder
        summary = await asyncio.wait_for(node.shutdown(timeout=2.0), 30)  # the drain cannot finish: no ack
        assert summary.completed == 1

    uvloop.run(scenario())
