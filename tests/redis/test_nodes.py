"""Several ``sluiceway run --redis`` nodes (separate process groups) behind a round-robin "load balancer".

Meta's side is played by the test: each tenant's messages are posted in order, each to the next
node in turn, and posted again (to the next live node) until answered 200, as Meta re-delivers.
What must hold: every answered message gets its reply, in each tenant's order; without faults
exactly one reply each.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import redis

from sluiceway.testing import WhatsAppEmulator
from sluiceway.testing.redis_server import RedisServer
from sluiceway.testing.webhooks import signed, text_message

#: Every wait here is on a condition; this only bounds a broken run.
WAIT = 120.0
SECRET = "redis-node-secret"
#: Short, so that a dead node's partitions move within the kill test (the default is 30 s).
CLAIM_TIMEOUT = 2.0
#: Where no node dies: long enough that no lease lapses while this shared machine starves a node.
STEADY_CLAIM_TIMEOUT = 10.0
HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Node:
    """One ``sluiceway run --redis`` process group, on its own ports and state_dir."""

    def __init__(
        self, api: WhatsAppEmulator, redis_url: str, state_dir: Path, claim_timeout: float = STEADY_CLAIM_TIMEOUT
    ) -> None:
        self.port, self.admin = _free_port(), _free_port()
        self.redis_url = redis_url
        self.state_dir = state_dir
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            "WHATSAPP_APP_SECRET": SECRET,
            "WHATSAPP_ACCESS_TOKEN": api.access_token,
            "WHATSAPP_PHONE_NUMBER_ID": api.phone_number_id,
            "SLUICEWAY_WHATSAPP_BASE_URL": api.base_url,
            "SLUICEWAY_ADMIN_PORT": str(self.admin),
            "SLUICEWAY_MONITOR_PORT": "0",
            "SLUICEWAY_STATE_DIR": str(state_dir),
            "SLUICEWAY_LOG_LEVEL": "WARNING",
            "SLUICEWAY_REDIS_CLAIM_TIMEOUT": str(claim_timeout),
        }
        self.process: asyncio.subprocess.Process | None = None

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, session: aiohttp.ClientSession) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / "node.log").open("ab") as log:  # its warnings, for a failing test's report
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "sluiceway.cli", "run", "redis_bots:echo_bot"),
                *("--port", str(self.port), "--workers", "1", "--redis", self.redis_url),
                env=self.env,
                cwd=HERE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # its own process group: a kill takes its workers too
            )
        await wait_for(lambda: self.status(session), "the node to come up", lambda: self.alive)

    async def status(self, session: aiohttp.ClientSession) -> dict[str, Any] | None:
        try:
            async with session.get(f"http://127.0.0.1:{self.admin}/status") as response:
                return await response.json() if response.status == 200 else None
        except aiohttp.ClientError:
            return None

    async def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM, as a deploy stops a node; one that has not exited within ``WAIT`` s fails the test
        and is killed (its process group with it), so no failed run leaves a node behind."""
        if self.alive:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), WAIT)
            except TimeoutError:
                os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
                raise AssertionError(f"the node on port {self.port} did not stop within {WAIT} s of SIGTERM") from None


async def wait_for(probe: Any, what: str, still_possible: Any = lambda: True) -> Any:
    """Await ``probe()`` until it returns something truthy; fail naming ``what`` after ``WAIT`` s."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        assert still_possible(), f"gave up waiting for {what}"
        result = await probe()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _deliver(
    nodes: list[Node],
    turn: itertools.count[int],
    session: aiohttp.ClientSession,
    tenant: str,
    count: int,
    answered: list[str],
) -> None:
    """Post this tenant's messages in order, each to the next live node until one answers 200."""
    for n in range(count):
        wamid = f"wamid.{tenant}.{n}"
        body, headers = signed(text_message(tenant, wamid, f"{tenant} {n}"), SECRET)
        while True:
            node = nodes[next(turn) % len(nodes)]
            if node.alive:
                try:
                    async with session.post(node.webhook, data=body, headers=headers) as response:
                        if response.status == 200:
                            answered.append(wamid)
                            break
                except aiohttp.ClientError:
                    pass  # killed mid-request: not answered, so Meta would deliver it again
            await asyncio.sleep(0.01)


def _replies(api: WhatsAppEmulator) -> Counter[str]:
    return Counter(a.message.context.message_id for a in api.accepted if a.message.context is not None)


def _first_reply_order(api: WhatsAppEmulator, tenant: str) -> list[str]:
    order = [a.message.context.message_id for a in api.accepted if a.message.to == tenant and a.message.context]
    return list(dict.fromkeys(order))


async def _all_replied(api: WhatsAppEmulator, answered: list[str]) -> bool:
    return set(answered) <= set(_replies(api))


async def start_and_deliver(
    nodes: list[Node], session: aiohttp.ClientSession, tenants: list[str], per_tenant: int
) -> list[str]:
    """Start ``nodes``, wait until they share the partitions, then deliver ``per_tenant`` messages of
    each tenant spread over them (see ``_deliver``); return the wamids answered 200."""
    await asyncio.gather(*(node.start(session) for node in nodes))
    await wait_for(lambda: _nodes_share_partitions(nodes, session), "every node to hold partitions")
    answered: list[str] = []
    turn = itertools.count()
    await asyncio.wait_for(
        asyncio.gather(*(_deliver(nodes, turn, session, t, per_tenant, answered) for t in tenants)), WAIT
    )
    return answered


async def _nodes_share_partitions(nodes: list[Node], session: aiohttp.ClientSession) -> bool:
    statuses = [await node.status(session) for node in nodes if node.alive]
    if not all(statuses):
        return False
    cluster = statuses[0]["redis"]  # type: ignore[index]
    holders = {p["holder"] for p in cluster["partitions"]}
    return len(cluster["nodes"]) == len(statuses) and None not in holders and len(holders) == len(statuses)


@pytest.mark.parametrize("node_count", [2, 3])
def test_nodes_answer_every_message_exactly_once_in_each_senders_order(
    redis_server: RedisServer, tmp_path: Path, node_count: int
) -> None:
    tenants, per_tenant = 24, 3  # the sender paces each recipient (one reply per 6 s): few per tenant

    async def scenario() -> None:
        async with (
            WhatsAppEmulator(throughput=1000.0, pair_limit=1000, pair_window=1.0, app_secret=SECRET) as api,
            aiohttp.ClientSession() as session,
        ):
            nodes = [Node(api, redis_server.url, tmp_path / f"node{i}") for i in range(node_count)]
            api.webhook_url = nodes[0].webhook
            try:
                names = [f"1555100{i:04d}" for i in range(tenants)]
                answered = await start_and_deliver(nodes, session, names, per_tenant)
                await wait_for(lambda: _all_replied(api, answered), "a reply to every answered message")
                statuses = [await node.status(session) for node in nodes]
            finally:
                await asyncio.gather(*(node.stop() for node in nodes))
            counts = _replies(api)
            assert sorted(counts) == sorted(answered) and len(answered) == tenants * per_tenant
            assert set(counts.values()) == {1}, "a message answered twice"
            for tenant in names:
                assert _first_reply_order(api, tenant) == [f"wamid.{tenant}.{n}" for n in range(per_tenant)]
            handled = [s["handled"] for s in statuses if s is not None]
            assert sum(handled) == tenants * per_tenant and all(handled), f"work not shared: {handled}"

    asyncio.run(scenario())


def _runs_in_order(log: Path, tenants: list[str], per_tenant: int) -> None:
    """Per tenant the handler ran its messages in order; a message ran again only right after itself
    (the one a dead node was running, re-run by the next holder of its partition)."""
    runs: dict[str, list[int]] = {t: [] for t in tenants}
    for line in log.read_text().splitlines():
        sender, _, n = line.split(" ")
        runs[sender].append(int(n))
    for tenant, ran in runs.items():
        last = -1
        for n in ran:
            assert n in (last, last + 1), f"{tenant} ran out of order: {ran}"
            last = n
        assert last == per_tenant - 1, f"{tenant} did not run everything: {ran}"


def test_a_killed_nodes_partitions_are_reclaimed_and_nothing_is_lost(redis_server: RedisServer, tmp_path: Path) -> None:
    tenants, per_tenant = 24, 3
    log = tmp_path / "runs.log"

    async def scenario() -> None:
        async with (
            WhatsAppEmulator(throughput=1000.0, pair_limit=1000, pair_window=1.0, app_secret=SECRET) as api,
            aiohttp.ClientSession() as session,
        ):
            nodes = [Node(api, redis_server.url, tmp_path / f"node{i}", CLAIM_TIMEOUT) for i in range(3)]
            for node in nodes:
                node.env["REDIS_TEST_RUN_LOG"] = str(log)
                node.env["REDIS_TEST_HANDLER_SECONDS"] = "0.2"
            victim, survivor = nodes[1], nodes[0]
            api.webhook_url = survivor.webhook
            try:
                await asyncio.gather(*(node.start(session) for node in nodes))
                await wait_for(lambda: _nodes_share_partitions(nodes, session), "every node to hold partitions")
                answered: list[str] = []
                turn = itertools.count()
                names = [f"1555200{i:04d}" for i in range(tenants)]
                deliveries = asyncio.gather(*(_deliver(nodes, turn, session, t, per_tenant, answered) for t in names))
                await wait_for(_async(lambda: len(answered) >= tenants), "a third of the messages answered")
                await victim.kill()
                killed_at = asyncio.get_running_loop().time()
                victim_status = await wait_for(lambda: _reclaimed(survivor, session), "the dead node's partitions")
                reclaimed_after = asyncio.get_running_loop().time() - killed_at
                await asyncio.wait_for(deliveries, WAIT)
                await victim.start(session)  # its outbox (in its state_dir) sends the replies it still had
                await wait_for(lambda: _all_replied(api, answered), "a reply to every answered message")
            finally:
                await asyncio.gather(*(node.stop() for node in nodes))
            assert sorted(set(_replies(api))) == sorted(answered) and len(answered) == tenants * per_tenant
            # Lease expiry plus one lease round of a live node (a quarter of claim_timeout, at most 1 s).
            assert reclaimed_after < CLAIM_TIMEOUT + 3.0, f"reclaimed after {reclaimed_after:.1f} s"
            assert len(victim_status["redis"]["nodes"]) == 2
            _runs_in_order(log, names, per_tenant)
            print(f"reclaimed {reclaimed_after:.2f} s after the kill (claim_timeout {CLAIM_TIMEOUT} s)")

    asyncio.run(scenario())


def _async(condition: Any) -> Any:
    async def probe() -> bool:
        return bool(condition())

    return probe


async def _reclaimed(survivor: Node, session: aiohttp.ClientSession) -> dict[str, Any] | None:
    """The survivor's status once two nodes hold every partition (the dead one's heartbeat is gone)."""
    status = await survivor.status(session)
    if status is None:
        return None
    cluster = status["redis"]
    live = {n["node"] for n in cluster["nodes"]}
    holders = {p["holder"] for p in cluster["partitions"]}
    return status if len(live) == 2 and holders <= live else None


def test_a_node_answers_503_while_redis_is_down_and_recovers(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            WhatsAppEmulator(throughput=1000.0, pair_limit=1000, pair_window=1.0, app_secret=SECRET) as api,
            aiohttp.ClientSession() as session,
        ):
            node = Node(api, redis_server.url, tmp_path / "node")
            api.webhook_url = node.webhook
            try:
                await node.start(session)

                async def post(wamid: str) -> int:
                    body, headers = signed(text_message("15553000000", wamid, wamid), SECRET)
                    async with session.post(node.webhook, data=body, headers=headers) as response:
                        return response.status

                async def ready() -> str:
                    async with session.get(f"http://127.0.0.1:{node.port}/readyz") as response:
                        return f"{response.status} {await response.text()}"

                assert await post("wamid.before") == 200
                redis_server.kill()
                assert await post("wamid.during") == 503
                await wait_for(_async_equal(ready, "503 not ready: Redis cannot be reached"), "/readyz to say why")
                redis_server.start()
                await wait_for(_async_equal(ready, "200 ready"), "/readyz to recover")
                await wait_for(_async_status(lambda: post("wamid.during")), "a 200 once Redis is back")
                assert await post("wamid.after") == 200
                wanted = ["wamid.before", "wamid.during", "wamid.after"]
                await wait_for(lambda: _all_replied(api, wanted), "the replies")
                # The admin API's dead letters are every node's, from Redis.
                inbound = msgspec.msgpack.encode({"id": "wamid.dead", "sender": "15553000000", "text": "x"})
                entry = msgspec.msgpack.encode((1, 0.0, "15553000000", inbound))
                fields = {"m": entry, "partition": 0, "error": "ValueError: bad", "dead_at": "1.0"}
                redis.Redis.from_url(redis_server.url).xadd("sluiceway:dead", fields)  # type: ignore[arg-type]
                admin = f"http://127.0.0.1:{node.admin}"
                async with session.get(f"{admin}/dead-letters") as response:
                    assert [letter["id"] for letter in await response.json()] == ["wamid.dead"]
                async with session.post(f"{admin}/dead-letters/purge") as response:
                    assert (await response.json())["purged"] == 1
            finally:
                await node.stop()
            assert _replies(api) == Counter(dict.fromkeys(wanted, 1))

    asyncio.run(scenario())


def _async_equal(probe: Any, wanted: str) -> Any:
    async def equal() -> bool:
        return bool(await probe() == wanted)

    return equal


def _async_status(post: Any) -> Any:
    async def probe() -> bool:
        return bool(await post() == 200)

    return probe


@pytest.mark.parametrize(
    ("server", "named"),
    [({"appendonly": False}, "appendonly"), ({"maxmemory_policy": "allkeys-lru"}, "maxmemory-policy")],
)
def test_a_redis_that_may_lose_messages_is_refused_in_one_line(
    server: dict[str, Any], named: str, tmp_path: Path
) -> None:
    with RedisServer(**server) as unsafe:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            "WHATSAPP_APP_SECRET": SECRET,
            "SLUICEWAY_STATE_DIR": str(tmp_path),
            "SLUICEWAY_PORT": str(_free_port()),
            "SLUICEWAY_ADMIN_PORT": str(_free_port()),
            "SLUICEWAY_MONITOR_PORT": "0",
        }
        command = [sys.executable, "-m", "sluiceway.cli", "run", "redis_bots:echo_bot", "--redis", unsafe.url]
        done = subprocess.run(command, env=env, cwd=HERE, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "--redis-unsafe" in lines[0], done.stderr


def test_nodes_share_the_numbers_cap_and_get_no_rate_limit_answers(redis_server: RedisServer, tmp_path: Path) -> None:
    """Two nodes, each allowed the number's whole cap on its own, together stay under it: the cap is global."""
    cap, tenants = 40, 160

    async def scenario() -> None:
        async with (
            WhatsAppEmulator(throughput=float(cap), pair_limit=1000, pair_window=1.0, app_secret=SECRET) as api,
            aiohttp.ClientSession() as session,
        ):
            nodes = [Node(api, redis_server.url, tmp_path / f"node{i}") for i in range(2)]
            for node in nodes:
                node.env["SLUICEWAY_MESSAGES_PER_SECOND"] = str(cap)
            api.webhook_url = nodes[0].webhook
            try:
                await asyncio.gather(*(node.start(session) for node in nodes))
                await wait_for(lambda: _nodes_share_partitions(nodes, session), "every node to hold partitions")
                answered: list[str] = []
                turn = itertools.count()
                names = [f"1555300{i:04d}" for i in range(tenants)]
                await asyncio.wait_for(
                    asyncio.gather(*(_deliver(nodes, turn, session, t, 1, answered) for t in names)), WAIT
                )
                await wait_for(lambda: _all_replied(api, answered), "a reply to every answered message")
                statuses = [await node.status(session) for node in nodes]
            finally:
                await asyncio.gather(*(node.stop() for node in nodes))
            assert set(_replies(api).values()) == {1} and len(answered) == tenants
            assert api.answers.get(130429, 0) == 0 and api.answers.get(131056, 0) == 0, dict(api.answers)
            handled = [s["handled"] for s in statuses if s is not None]
            assert all(handled), f"both nodes must have sent (else the cap was not shared): {handled}"

    asyncio.run(scenario())
