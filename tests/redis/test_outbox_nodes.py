"""The reply outbox in Redis across ``sluiceway run --redis`` nodes: a node's death strands no reply.

The sender paces each recipient (one reply per 6 s), so replies to a tenant's later messages
wait in the outbox of the node that ran them: that is what a killed node holds. The tests wait
until every message is acked (a message is acked only once its replies are committed), so the
replies a node holds at its kill are all in Redis, under its name.

* killed and not restarted: the holders of its partitions adopt its replies within
  ``claim_timeout`` (and one lease round) and send them before their own replies to those
  tenants' later messages; every answered webhook gets exactly one reply, except re-sends of
  replies that were on the wire at the kill, which are counted (``uncertain_resends``);
* killed and restarted under the same name: it sends its own, once; the other node adopts none;
* ``sluiceway dlq list|replay|purge --redis`` and the admin API show the sender's dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import redis

from sluiceway.testing import WhatsAppEmulator
from sluiceway.testing.redis_server import RedisServer
from sluiceway.testing.webhooks import signed, text_message

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_nodes import (
    CLAIM_TIMEOUT,
    SECRET,
    WAIT,
    Node,
    _deliver,
    _first_reply_order,
    _nodes_share_partitions,
    _replies,
    start_and_deliver,
    wait_for,
)


def _unsent(client: redis.Redis, node: str) -> int:
    """Replies ``node`` has not sent yet, in Redis."""
    return sum(int(client.zcard(key)) for key in client.scan_iter(f"sluiceway:outbox:unsent:{node}:*"))


def _all_acked(client: redis.Redis) -> bool:
    """Every accepted message is acked (so its replies are committed): no stream entry is left."""
    return all(int(client.xlen(key)) == 0 for key in client.scan_iter("sluiceway:p:*"))


async def _probe(condition: Any) -> Any:
    return condition()


def _check_replies(
    api: WhatsAppEmulator, answered: list[str], tenants: list[str], per_tenant: int, resent: int
) -> None:
    """One reply per answered message (a re-sent uncertain one may show twice) in each tenant's order."""
    counts = _replies(api)
    assert sorted(counts) == sorted(answered) and len(answered) == len(tenants) * per_tenant
    extra = sum(count - 1 for count in counts.values())
    assert extra <= resent, f"{extra} duplicate replies but only {resent} counted as uncertain re-sends"
    for tenant in tenants:
        assert _first_reply_order(api, tenant) == [f"wamid.{tenant}.{n}" for n in range(per_tenant)]


def test_a_dead_nodes_unsent_replies_are_sent_by_the_others_in_each_tenants_order(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    tenants, before, after = 12, 3, 1
    client = redis.Redis.from_url(redis_server.url)
    names = [f"1555400{i:04d}" for i in range(tenants)]

    async def scenario() -> None:
        hold = _victim_holding_replies(client, redis_server.url, tmp_path, CLAIM_TIMEOUT, names, before)
        async with hold as (api, session, victim, survivor, answered):
            held = _unsent(client, "node-a")
            await victim.kill()
            killed_at = asyncio.get_running_loop().time()
            # The tenants' next messages, answered by the survivor while the victim's replies wait for it.
            later = [f"wamid.{t}.{n}" for t in names for n in range(before, before + after)]
            for tenant in names:
                for n in range(before, before + after):
                    await _post(survivor, session, tenant, n, answered)

            async def adopted() -> Any:
                status = await survivor.status(session)
                return status if status is not None and status["adopted_replies"] else None

            await wait_for(adopted, "the survivor to adopt the dead node's replies")
            adopted_after = asyncio.get_running_loop().time() - killed_at
            await wait_for(lambda: _probe(lambda: set(answered) <= set(_replies(api))), "every reply")
            status = await survivor.status(session)
            assert status is not None
        assert set(later) <= set(answered)
        _check_replies(api, answered, names, before + after, status["uncertain_resends"])
        assert status["adopted_replies"] <= held
        assert _unsent(client, "node-a") == 0 and not client.hexists("sluiceway:outbox:nodes", "node-a")
        # Lease expiry, then one lease round of the survivor (a quarter of claim_timeout, at most 1 s).
        assert adopted_after < CLAIM_TIMEOUT + 3.0, f"adopted after {adopted_after:.1f} s"
        print(f"{status['adopted_replies']} of {held} replies adopted {adopted_after:.2f} s after the kill")

    asyncio.run(scenario())
    client.close()


@contextlib.asynccontextmanager
async def _victim_holding_replies(
    client: redis.Redis, redis_url: str, tmp_path: Path, claim_timeout: float, tenants: list[str], per_tenant: int
) -> AsyncIterator[tuple[WhatsAppEmulator, aiohttp.ClientSession, Node, Node, list[str]]]:
    """Two nodes, the first named ``node-a`` (the victim; status webhooks go to the other), once every
    tenant's first ``per_tenant`` messages are answered and acked and the victim holds unsent replies.
    Yields (api, session, victim, other, the wamids answered 200); both nodes are stopped at the end."""
    async with (
        WhatsAppEmulator(throughput=1000.0, pair_limit=1000, pair_window=1.0, app_secret=SECRET) as api,
        aiohttp.ClientSession() as session,
    ):
        nodes = [Node(api, redis_url, tmp_path / f"node{i}", claim_timeout) for i in range(2)]
        victim, other = nodes
        victim.env["SLUICEWAY_REDIS_NODE"] = "node-a"
        api.webhook_url = other.webhook
        try:
            answered = await start_and_deliver(nodes, session, tenants, per_tenant)
            await wait_for(lambda: _probe(lambda: _all_acked(client)), "every message acked")
            assert _unsent(client, "node-a"), "the victim holds no unsent reply (the sender's pacing should)"
            yield api, session, victim, other, answered
        finally:
            await asyncio.gather(*(node.stop() for node in nodes))


async def _post(node: Node, session: aiohttp.ClientSession, tenant: str, n: int, answered: list[str]) -> None:
    """Post the tenant's message ``n`` to ``node`` until it is answered 200, as Meta re-delivers."""
    wamid = f"wamid.{tenant}.{n}"
    body, headers = signed(text_message(tenant, wamid, f"{tenant} {n}"), SECRET)
    while True:
        try:
            async with session.post(node.webhook, data=body, headers=headers) as response:
                if response.status == 200:
                    answered.append(wamid)
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)


def test_a_node_restarted_under_its_name_sends_its_own_unsent_replies_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    tenants, per_tenant = 12, 3
    # Long: the restart must come back before the other node could adopt anything.
    claim_timeout = 30.0
    client = redis.Redis.from_url(redis_server.url)
    names = [f"1555500{i:04d}" for i in range(tenants)]

    async def scenario() -> None:
        hold = _victim_holding_replies(client, redis_server.url, tmp_path, claim_timeout, names, per_tenant)
        async with hold as (api, session, victim, other, answered):
            await victim.kill()
            await victim.start(session)
            await wait_for(lambda: _probe(lambda: set(answered) <= set(_replies(api))), "every reply")
            restarted, survivor = await victim.status(session), await other.status(session)
            assert restarted is not None and survivor is not None
        _check_replies(api, answered, names, per_tenant, restarted["uncertain_resends"] + survivor["uncertain_resends"])
        assert restarted["resent_replies"] >= 1 and survivor["adopted_replies"] == 0
        assert _unsent(client, "node-a") == 0

    asyncio.run(scenario())
    client.close()


def _dlq(url: str, action: str) -> str:
    """``sluiceway dlq ACTION --redis URL``, from outside any node; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "sluiceway.cli", "dlq", action, "--redis", url],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_dlq_lists_replays_and_purges_the_senders_dead_letters_in_redis(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    tenant = "15556000001"

    async def scenario() -> None:
        # No webhook URL: the emulator refuses a send to an invalid recipient at once (131026, permanent).
        async with (
            WhatsAppEmulator(throughput=1000.0, pair_limit=1000, pair_window=1.0, app_secret=SECRET) as api,
            aiohttp.ClientSession() as session,
        ):
            node = Node(api, redis_server.url, tmp_path / "node", CLAIM_TIMEOUT)
            api.invalid_recipients.add(tenant)
            try:
                await node.start(session)
                answered: list[str] = []
                await _post(node, session, tenant, 0, answered)

                async def listed() -> str | None:
                    out = await asyncio.to_thread(_dlq, redis_server.url, "list")
                    return out if f"send 1 to {tenant}: error 131026" in out else None

                out = await wait_for(listed, "the failed send in `dlq list`")
                assert "1 dead letter(s)" in out
                async with session.get(f"http://127.0.0.1:{node.admin}/dead-letters") as response:
                    letters = await response.json()
                assert [(d["kind"], d["recipient"], d["in_reply_to"]) for d in letters] == [
                    ("send", tenant, "wamid.15556000001.0")
                ]
                api.invalid_recipients.clear()
                assert "replayed 0 message(s) and 1 reply(ies)" in await asyncio.to_thread(
                    _dlq, redis_server.url, "replay"
                )
                # Replayed from outside any node: the partition's holder adopts it and sends it.
                await wait_for(lambda: _probe(lambda: _replies(api) == Counter(answered)), "the replayed reply")
                api.invalid_recipients.add(tenant)
                await _post(node, session, tenant, 1, answered)

                async def second_failure() -> str | None:
                    out = await asyncio.to_thread(_dlq, redis_server.url, "list")
                    return out if "1 dead letter(s)" in out else None

                await wait_for(second_failure, "the second failed send")
                assert "purged 0 message(s) and 1 reply(ies)" in await asyncio.to_thread(
                    _dlq, redis_server.url, "purge"
                )
                assert "0 dead letter(s)" in await asyncio.to_thread(_dlq, redis_server.url, "list")
            finally:
                await node.stop()

    asyncio.run(scenario())


def test_a_partition_handed_over_to_a_joining_node_keeps_each_tenants_reply_order(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The first node gives half its partitions to a node that joins while its replies to those tenants
    still wait (paced): the newcomer's replies to their next messages come after them."""
    tenants, before, after = 12, 3, 1
    # Longer than the pacing of the replies held: a hand-over waits for them up to claim_timeout.
    claim_timeout = 30.0
    client = redis.Redis.from_url(redis_server.url)

    async def scenario() -> None:
        async with (
            WhatsAppEmulator(throughput=1000.0, pair_limit=1000, pair_window=1.0, app_secret=SECRET) as api,
            aiohttp.ClientSession() as session,
        ):
            first, joining = (Node(api, redis_server.url, tmp_path / f"node{i}", claim_timeout) for i in range(2))
            first.env["SLUICEWAY_REDIS_NODE"] = "node-a"
            api.webhook_url = first.webhook
            try:
                await first.start(session)
                await wait_for(lambda: _nodes_share_partitions([first], session), "the first node's partitions")
                answered: list[str] = []
                names = [f"1555700{i:04d}" for i in range(tenants)]
                await asyncio.wait_for(
                    asyncio.gather(
                        *(_deliver([first], itertools.count(), session, t, before, answered) for t in names)
                    ),
                    WAIT,
                )
                await wait_for(lambda: _probe(lambda: _all_acked(client)), "every message acked")
                assert _unsent(client, "node-a"), "no reply waits: nothing for a hand-over to overtake"
                await joining.start(session)
                nodes = [first, joining]
                await wait_for(lambda: _nodes_share_partitions(nodes, session), "the partitions to be shared")
                turn = itertools.count()
                for tenant in names:
                    for n in range(before, before + after):
                        await _post(nodes[next(turn) % 2], session, tenant, n, answered)
                await wait_for(lambda: _probe(lambda: set(answered) <= set(_replies(api))), "every reply")
                statuses = [await node.status(session) for node in nodes]
            finally:
                await asyncio.gather(first.stop(), joining.stop())
            resent = sum(s["uncertain_resends"] for s in statuses if s is not None)
            _check_replies(api, answered, names, before + after, resent)
            assert all(s is not None and s["adopted_replies"] == 0 for s in statuses), "nobody died"

    asyncio.run(scenario())
    client.close()
