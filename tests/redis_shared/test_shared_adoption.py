"""A dead node's unsent replies are adopted per partition, once, by the partition's holder (RedisOutboxStore.adopt).

A reference model of ownership (which node must send each unsent reply) is checked against the
store under random adds, sends, starts (a node lists its own and beats) and leaves (a stopped
node); two adopters racing never both get a reply; ``OutboxLeases`` hands adopted replies to the
sender before the replies of later messages, and counts those that were on the wire.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from sluiceway.app.context import Outgoing
from sluiceway.app.outbox import DurableOutbox
from sluiceway.app.redis_outbox import OutboxLeases, RedisOutboxStore
from sluiceway.testing.redis_server import RedisServer
from sluiceway.whatsapp.messages import OutboundMessage

PARTITIONS = 4
NODES = ("a", "b", "c")
#: Long: a node that beat is live for the whole test; only ``leave`` makes one adoptable.
CLAIM_TIMEOUT = 600.0


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _partition(recipient: str) -> int:
    return int(recipient) % PARTITIONS


def _store(redis: Redis, namespace: str, node: str) -> RedisOutboxStore:
    return RedisOutboxStore(
        redis,
        namespace=namespace,
        node=node,
        partitions=PARTITIONS,
        partition_of=_partition,
        claim_timeout=CLAIM_TIMEOUT,
    )


operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(NODES), st.integers(0, 7)),
        st.tuples(st.just("sent"), st.integers(0, 40)),
        st.tuples(st.just("leave"), st.sampled_from(NODES)),
        st.tuples(st.just("start"), st.sampled_from(NODES)),
        st.tuples(st.just("adopt"), st.sampled_from(NODES), st.sets(st.integers(0, PARTITIONS - 1), min_size=1)),
    ),
    min_size=4,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_adoption_moves_each_dead_nodes_replies_once_as_a_model_of_ownership_says(
    loop: asyncio.AbstractEventLoop, shared_redis: RedisServer, ops: list[tuple[object, ...]]
) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(shared_redis.url)
        namespace = uuid.uuid4().hex
        stores = {node: _store(redis, namespace, node) for node in NODES}
        owner: dict[int, str] = {}  # the model: each unsent reply's owner
        partition_of: dict[int, int] = {}
        live = dict.fromkeys(NODES, True)
        added: list[int] = []
        for node in NODES:
            assert await stores[node].outbox_unsent() == []  # each node starts: beats
        for op in ops:
            if op[0] == "add" and live[str(op[1])]:
                node, recipient = str(op[1]), str(op[2])
                id = await stores[node].outbox_add(recipient, b"body")
                owner[id], partition_of[id] = node, _partition(recipient)
                added.append(id)
            elif op[0] == "sent" and int(str(op[1])) < len(added) and added[int(str(op[1]))] in owner:
                id = added[int(str(op[1]))]
                await stores[owner[id]].outbox_sent(id, f"wamid.{id}")
                del owner[id]
            elif op[0] == "leave":
                await stores[str(op[1])].leave()
                live[str(op[1])] = False
            elif op[0] == "start":
                node = str(op[1])
                listed = [item.id for item in await stores[node].outbox_unsent()]
                assert listed == sorted(id for id, who in owner.items() if who == node)
                live[node] = True
            elif op[0] == "adopt" and live[str(op[1])]:
                me, wanted = str(op[1]), op[2]
                assert isinstance(wanted, set)
                adopted = [item.id for item in await stores[me].adopt(sorted(wanted))]
                expected = sorted(
                    id for id, who in owner.items() if who != me and not live[who] and partition_of[id] in wanted
                )
                assert adopted == expected
                for id in expected:
                    owner[id] = me
        for node in NODES:  # what each node would send at its next start is what the model says it owns
            listed = [item.id for item in await stores[node].outbox_unsent()]
            assert listed == sorted(id for id, who in owner.items() if who == node)
        await redis.aclose()

    loop.run_until_complete(scenario())


def test_two_adopters_racing_never_both_take_a_reply(
    loop: asyncio.AbstractEventLoop, shared_redis: RedisServer
) -> None:
    async def scenario() -> None:
        namespace = uuid.uuid4().hex
        clients = [Redis.from_url(shared_redis.url) for _ in range(3)]
        dead, first, second = (_store(client, namespace, node) for client, node in zip(clients, NODES, strict=True))
        await dead.outbox_unsent()
        ids = [await dead.outbox_add(str(n), b"body") for n in range(200)]
        await dead.leave()
        rounds = await asyncio.gather(
            *(store.adopt(range(PARTITIONS)) for _ in range(5) for store in (first, second))  # type: ignore[arg-type]
        )
        taken = [item.id for adopted in rounds for item in adopted]
        assert sorted(taken) == ids, "a reply adopted twice, or not at all"
        assert not await clients[0].hexists(f"{namespace}:outbox:nodes", "a"), "an emptied dead node is forgotten"
        for client in clients:
            await client.aclose()

    loop.run_until_complete(scenario())


class FakeSender:
    def __init__(self) -> None:
        self.taken: list[str] = []
        self._ids: dict[str, str] = {}

    def enqueue_nowait(
        self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None
    ) -> str:
        assert message.text is not None and idempotency_key is not None
        self.taken.append(message.text.body)
        return self._ids.setdefault(idempotency_key, f"m{len(self._ids)}")


def _reply(to: str, text: str) -> Outgoing:
    return Outgoing(OutboundMessage.of_text(to, text), "normal", f"key-{text}")


def test_the_new_holder_sends_a_dead_nodes_replies_before_its_own_to_later_messages(
    loop: asyncio.AbstractEventLoop, shared_redis: RedisServer
) -> None:
    async def scenario() -> None:
        namespace = uuid.uuid4().hex
        redis = Redis.from_url(shared_redis.url)
        dead = _store(redis, namespace, "a")
        await dead.outbox_unsent()
        tenant, other = "5", "6"  # partitions 1 and 2
        for n in range(3):
            await dead.outbox_add(tenant, msgspec.msgpack.encode(_reply(tenant, f"a{n}")))
        await dead.outbox_add(other, msgspec.msgpack.encode(_reply(other, "a-other")))
        on_wire = (await dead.outbox_unsent())[0].id
        await dead.outbox_sending(on_wire)  # the request was written when the node died
        await dead.leave()

        store = _store(redis, namespace, "b")
        outbox, sender = DurableOutbox(), FakeSender()
        outbox.attach(sender)
        await outbox.open(store)
        hooks = OutboxLeases(store, outbox)
        await hooks.taking(_partition(tenant))  # before the partition's next messages are read
        outbox.put(_reply(tenant, "b3"), "wamid.in.3")  # the reply to the tenant's next message
        await outbox.wait_committed(10)
        assert sender.taken == ["a0", "a1", "a2", "b3"], "the other partition's reply is not this holder's"
        assert (outbox.adopted, outbox.uncertain_resends) == (3, 1)
        await hooks.holding([_partition(other)])
        assert sender.taken[-1] == "a-other"
        await hooks.before_finish()
        await store.close()
        await redis.aclose()

    loop.run_until_complete(scenario())


def test_flush_returns_once_every_earlier_operation_is_done(
    loop: asyncio.AbstractEventLoop, shared_redis: RedisServer
) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(shared_redis.url)
        store = _store(redis, uuid.uuid4().hex, "a")
        adds = [store.outbox_add(str(n), b"body") for n in range(600)]  # several pipelines
        await store.flush()
        assert all(add.done() for add in adds)
        await store.flush()  # nothing queued: returns at once
        await redis.aclose()

    loop.run_until_complete(scenario())
