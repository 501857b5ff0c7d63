"""The lease and fencing scripts, straight against Redis: a node that lost its lease cannot finish anything.

A hypothesis property runs random sequences of acquire / renew / expire / release / ack by three
nodes against a small model of one lease (holder, token).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluiceway.engine import redis_scripts as scripts
from sluiceway.testing.redis_server import RedisServer

LEASE, FENCE, STREAM = "f:lease:0", "f:fence:0", "f:p:0"


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    with RedisServer() as server:
        connection = redis.Redis.from_url(server.url)
        yield connection
        connection.close()


class Scripts:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.acquire = client.register_script(scripts.ACQUIRE)
        self.renew = client.register_script(scripts.RENEW)
        self.release = client.register_script(scripts.RELEASE)
        self.ack = client.register_script(scripts.ACK)

    def reset(self) -> None:
        self.client.delete(LEASE, FENCE, STREAM)
        self.client.xgroup_create(STREAM, scripts.GROUP, id="0", mkstream=True)

    def add_and_read(self, node: str) -> bytes:
        """One entry added and read by ``node`` (pending under it until acked)."""
        self.client.xadd(STREAM, {"p": b"x"})
        reply: Any = self.client.xreadgroup(scripts.GROUP, node, {STREAM: ">"}, count=1)
        return bytes(reply[0][1][0][0])


def test_a_node_whose_lease_expired_cannot_ack_and_the_new_holder_can(client: redis.Redis) -> None:
    s = Scripts(client)
    s.reset()
    first = int(s.acquire(keys=[LEASE, FENCE], args=["a", 60_000]))
    entry = s.add_and_read("a")
    client.delete(LEASE)  # the lease expired (node a stalled past claim_timeout)
    second = int(s.acquire(keys=[LEASE, FENCE], args=["b", 60_000]))
    assert second > first
    assert s.ack(keys=[LEASE, STREAM], args=[f"a:{first}", scripts.GROUP, entry]) == -1
    assert client.xpending(STREAM, scripts.GROUP)["pending"] == 1, "the refused ack changed nothing"
    assert s.renew(keys=[LEASE], args=[f"a:{first}", 60_000]) == 0
    claimed: Any = client.xautoclaim(STREAM, scripts.GROUP, "b", 0, "0-0")
    assert [bytes(e[0]) for e in claimed[1]] == [entry]
    assert s.ack(keys=[LEASE, STREAM], args=[f"b:{second}", scripts.GROUP, entry]) == 1
    assert client.xlen(STREAM) == 0, "an acked entry leaves the stream"


NODES = ("a", "b", "c")
OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["acquire", "renew", "expire", "release", "ack"]), st.sampled_from(NODES)), max_size=40
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_the_lease_scripts_agree_with_a_model_of_one_lease(client: redis.Redis, operations: list[Any]) -> None:
    s = Scripts(client)
    s.reset()
    holder: str | None = None  # the model: the lease value, "<node>:<token>", or None when free
    last_token = 0
    known: dict[str, str] = {}  # what each node believes its lease is (its last acquire)
    for operation, node in operations:
        mine = known.get(node, f"{node}:0")
        if operation == "acquire":
            token = int(s.acquire(keys=[LEASE, FENCE], args=[node, 60_000]))
            if holder is None:
                last_token += 1
                assert token == last_token, "fencing tokens only grow"
                holder = known[node] = f"{node}:{token}"
            else:
                assert token == 0, "a held lease cannot be taken"
        elif operation == "renew":
            assert s.renew(keys=[LEASE], args=[mine, 60_000]) == (1 if holder == mine else 0)
        elif operation == "expire":
            client.delete(LEASE)
            holder = None
        elif operation == "release":
            s.release(keys=[LEASE], args=[mine])
            if holder == mine:
                holder = None
        else:
            entry = s.add_and_read(node)
            acked = int(s.ack(keys=[LEASE, STREAM], args=[mine, scripts.GROUP, entry]))
            assert acked == (1 if holder == mine else -1), (holder, mine)
            still_there = bool(client.xrange(STREAM, entry, entry))
            assert still_there == (holder != mine), "acked entries leave the stream, refused ones stay"
        assert (client.get(LEASE) or b"").decode() == (holder or "")
