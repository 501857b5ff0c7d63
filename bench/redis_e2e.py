"""End to end across Redis nodes at the 1,000 msg/s tier: ``python -m bench redis --only e2e``.

Two ``sluiceway run --redis`` node processes (the property bot, 2 workers each, as ``bench e2e``'s
``ours``), each on its own port, answer for the same business number, so only the limits they
share in Redis keep the pair under the number's cap. The WhatsApp emulator enforces its
1,000 mps tier (130429 beyond it) and the tenants post signed webhooks to the nodes in turn, as a
load balancer in front of ``/webhook`` would. The same with one node gives the comparison.

Per repetition and node count, on fresh nodes, emulators and an empty Redis, warmed up as in
``bench e2e``: the share of the cap used while tenants offer 1.2 x the cap (target: >= 99%), the
p99 reply latency at 0.8 x, the emulator's rate-limit answers (130429 + 131056, target 0) and
the replies sent twice (must be 0) in both runs. Each message comes from a tenant of its own:
``sluiceway run`` keeps Meta's pair rate (one message per recipient every 6 s), which with
``bench e2e``'s 1,000 tenants, not the cap, would bind.

The machinery (Meta's side in two processes, the load generator, the Sheets emulator, the
measurements) is ``bench e2e``'s. Not a module of its own in ``python -m bench``: ``bench redis``
runs it (``e2e_rows``) on its Redis server. The emulator posts its status webhooks (two per reply)
to the first node only: it has one webhook URL.

What this 2-core machine can show: that the shared limits keep two nodes on one number under its
cap (no 130429, no 131056), that no reply goes out twice, and how much of the cap the pair uses
when the CPU allows. What it cannot: both nodes, Redis, the emulator and the tenants share the two
cores, so a share below the limits' own ceiling is CPU (one node's supervisor binds well below
the cap here; two supervisors get further), not what two machines would do. The ceiling is the
Redis limits' slot rate, just under the cap (the figure ``e2e: the Redis limits' slot rate``;
see ``sluiceway.whatsapp.redis_limits``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import redis.asyncio
import uvloop

from bench.bench_e2e import (
    BELOW_CAP,
    RUN_SECONDS,
    SATURATION,
    SPREADSHEET,
    TARGET_P99,
    TARGET_SHARE,
    WARM_UP_RATE,
    WARM_UP_SECONDS,
    Run,
    _quantile,
    _sheets,
    _Traffic,
)
from bench.harness import REPEAT, Comparison, Report, header, scaled
from sluiceway.engine.redis_broker import DEFAULT_PARTITIONS
from sluiceway.http import HttpClient, HttpError
from sluiceway.whatsapp.redis_limits import scheduled_emission

#: The emulator's tier (messages/s) the nodes share.
CAP = 1000
#: Node counts measured, in each repetition's order: two, and one for the comparison.
NODE_COUNTS = (2, 1)
#: Worker processes per node, as ``bench e2e``'s single node.
WORKERS = 2
BOT = "sluiceway.examples.property_bot.app:bot"
#: Sheets requests per minute the emulator allows (Google's project quota), as ``bench e2e``'s runtime.
SHEETS_PER_MINUTE = 300
#: Tenant numbers of the warm-up: apart from the measured run's, so no reply there waits for the pair rate.
WARM_UP_TENANTS = 9_000_000
#: Seconds any one wait may take (a node coming up, the partitions spreading): a stuck run fails naming it.
WAIT = 120.0
#: ``--quick``: one repetition of short runs (a smoke run, not results).
QUICK_REPEAT, QUICK_RUN_SECONDS = 1, 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until(probe: Callable[[], Awaitable[object]], what: str, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + WAIT
    while not await probe():
        if not alive():
            raise RuntimeError(f"bench: gave up waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench stuck: no {what} after {WAIT} s")
        await asyncio.sleep(0.05)


class _Node:
    """One ``sluiceway run --redis`` process group on its own ports and state_dir; its stderr goes to a log."""

    def __init__(self, env: dict[str, str], redis_url: str, state_dir: Path) -> None:
        self.port, self.admin = _free_port(), _free_port()
        self.log = state_dir / "node.log"
        state_dir.mkdir(parents=True)
        command = [sys.executable, "-m", "sluiceway.cli", "run", BOT, "--redis", redis_url]
        command += ["--port", str(self.port), "--admin-port", str(self.admin), "--monitor-port", "0"]
        command += ["--workers", str(WORKERS), "--state-dir", str(state_dir), "--log-level", "WARNING"]
        with self.log.open("wb") as log:
            # Its own process group: stopping it takes its workers and monitor too.
            self.process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def alive(self) -> bool:
        return self.process.poll() is None

    async def ready(self) -> bool:
        try:
            async with HttpClient(f"http://127.0.0.1:{self.admin}", timeout=2.0) as client:
                return (await client.get("/status")).status == 200
        except HttpError:
            return False

    def terminate(self) -> None:
        """SIGTERM: the node drains and exits."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)

    def wait(self) -> None:
        """Until it has exited; SIGKILL if it has not within a minute."""
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _partitions_shared(redis_url: str, namespace: str, nodes: int) -> bool:
    """Whether every partition's lease is held and ``nodes`` nodes hold them (the broker's lease keys)."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        leases = await client.mget([f"{namespace}:lease:{p}" for p in range(DEFAULT_PARTITIONS)])
    finally:
        await client.aclose()
    holders = {_text(lease).rpartition(":")[0] for lease in leases if lease is not None}
    return None not in leases and len(holders) == nodes


@contextlib.asynccontextmanager
async def _cluster(nodes: int, redis_url: str, secret: str) -> AsyncIterator[tuple[list[str], _Traffic]]:
    """``nodes`` fresh nodes on an empty Redis, with their own emulators; yields their webhooks and Meta's side."""
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.flushall()
    await client.aclose()
    namespace = f"bench-e2e-{secrets.token_hex(4)}"
    with _sheets() as sheets, tempfile.TemporaryDirectory(prefix="sluiceway-bench-nodes-") as state:
        async with _Traffic(CAP, secret) as api:
            env = {
                **os.environ,
                "WHATSAPP_APP_SECRET": secret,
                "WHATSAPP_ACCESS_TOKEN": api.access_token,
                "WHATSAPP_PHONE_NUMBER_ID": api.phone_number_id,
                "SLUICEWAY_WHATSAPP_BASE_URL": api.base_url,
                "SLUICEWAY_MESSAGES_PER_SECOND": str(CAP),
                "SLUICEWAY_SHEETS_API_ENDPOINT": sheets.url,
                "SLUICEWAY_SPREADSHEET_ID": SPREADSHEET,
                "SLUICEWAY_SHEETS_READ_REQUESTS_PER_MINUTE": str(SHEETS_PER_MINUTE),
                "SLUICEWAY_SHEETS_WRITE_REQUESTS_PER_MINUTE": str(SHEETS_PER_MINUTE),
                "SLUICEWAY_REDIS_NAMESPACE": namespace,
            }
            cluster = [_Node(env, redis_url, Path(state) / f"node-{n}") for n in range(nodes)]
            try:
                for node in cluster:
                    await _until(node.ready, f"node on port {node.port} up", node.alive)
                await _until(lambda: _partitions_shared(redis_url, namespace, nodes), f"{nodes} nodes sharing")
                await api.set_webhook(cluster[0].webhook)  # status webhooks: a node's ingress takes them
                yield [node.webhook for node in cluster], api
            except BaseException:
                for node in cluster:
                    print(f"  node on port {node.port} (alive: {node.alive()}) log:\n{node.tail()}", flush=True)
                raise
            finally:
                for node in cluster:
                    node.terminate()
                for node in cluster:
                    node.wait()


async def _measure(nodes: int, redis_url: str, secret: str, rate: float, seconds: float, tag: str) -> Run:
    async with _cluster(nodes, redis_url, secret) as (webhooks, api):
        await api.offer(webhooks, WARM_UP_RATE, WARM_UP_SECONDS, f"{tag}-warm", 1000, WARM_UP_TENANTS)
        # Every message its own tenant: Meta's pair rate (one per 6 s) never holds a reply back.
        return await api.offer(webhooks, rate, seconds, tag, tenants=int(rate * seconds) + 1)


async def _samples(redis_url: str, repeat: int, seconds: float) -> dict[int, dict[str, list[float]]]:
    secret = secrets.token_hex(8)
    samples: dict[int, dict[str, list[float]]] = {
        nodes: {"share": [], "p50": [], "p99": [], "offered": [], "limited": [], "twice": []} for nodes in NODE_COUNTS
    }
    for round_ in range(repeat):
        for nodes in NODE_COUNTS:
            full = await _measure(nodes, redis_url, secret, SATURATION * CAP, seconds, f"n{nodes}-s-{round_}")
            below = await _measure(nodes, redis_url, secret, BELOW_CAP * CAP, seconds, f"n{nodes}-l-{round_}")
            figures = samples[nodes]
            figures["share"].append(full.throughput / CAP)
            figures["offered"].append(full.offered)
            figures["p50"].append(_quantile(below.latencies, 0.50))
            figures["p99"].append(_quantile(below.latencies, 0.99))
            figures["limited"].append(full.rate_limited + below.rate_limited)
            figures["twice"].append(full.duplicates + below.duplicates)
            print(
                f"  {nodes} node(s), round {round_}: {full.throughput / CAP:.1%} of the cap"
                f" (offered {full.offered:,.0f}/s, {full.shed} answered 503),"
                f" p99 {_quantile(below.latencies, 0.99) * 1000:.1f} ms at {BELOW_CAP:g} x,"
                f" {full.rate_limited + below.rate_limited} rate-limit answers,"
                f" {full.duplicates + below.duplicates} replies sent twice",
                flush=True,
            )
    return samples


def e2e_rows(report: Report, url: str, *, quick: bool = False) -> None:
    """The end-to-end rows on the Redis server at ``url`` (``quick``: one repetition of short runs)."""
    repeat = QUICK_REPEAT if quick else REPEAT
    seconds = QUICK_RUN_SECONDS if quick else scaled(RUN_SECONDS)
    header(f"end to end at the {CAP:,} mps tier: {' vs '.join(map(str, NODE_COUNTS))} `sluiceway run --redis` nodes")
    samples = uvloop.run(_samples(url, repeat, seconds))
    two, one = samples[2], samples[1]
    med = {nodes: {k: statistics.median(v) for k, v in figures.items()} for nodes, figures in samples.items()}
    report.add(
        Comparison(
            f"e2e, 2 nodes: share of {CAP} mps cap",
            "the cap",
            med[2]["share"],
            1.0,
            "share",
            target=TARGET_SHARE,
            samples_ours=two["share"],
        )
    )
    report.add(
        Comparison(
            f"e2e, 2 nodes: p99 reply at 0.8 x {CAP} mps",
            "bound 1 s",
            med[2]["p99"] * 1000,
            TARGET_P99 * 1000,
            "ms",
            higher_is_better=False,
            target=1.0,
            samples_ours=[s * 1000 for s in two["p99"]],
        )
    )
    report.add(
        Comparison(
            f"e2e: share of {CAP} mps cap, 2 nodes",
            "1 node",
            med[2]["share"] * 100,
            med[1]["share"] * 100,
            "% of cap",
            samples_ours=[s * 100 for s in two["share"]],
            samples_theirs=[s * 100 for s in one["share"]],
        )
    )
    for q in ("p50", "p99"):
        report.add(
            Comparison(
                f"e2e: reply {q} at 0.8 x {CAP} mps, 2 nodes",
                "1 node",
                med[2][q] * 1000,
                med[1][q] * 1000,
                "ms",
                higher_is_better=False,
                samples_ours=[s * 1000 for s in two[q]],
                samples_theirs=[s * 1000 for s in one[q]],
            )
        )
    # The most the shared limits hand out, whatever the nodes' CPU.
    ceiling = 1_000_000 / scheduled_emission(CAP) / CAP
    report.figure(f"e2e: the Redis limits' slot rate, share of the {CAP} mps cap", ceiling)
    for nodes in NODE_COUNTS:
        report.figure(f"e2e, {nodes} node(s): offered at {SATURATION:g} x, msg/s (median)", med[nodes]["offered"])
        report.figure(
            f"e2e, {nodes} node(s): rate-limit answers 130429+131056 (all runs)", sum(samples[nodes]["limited"])
        )
        report.figure(f"e2e, {nodes} node(s): replies sent twice (all runs)", sum(samples[nodes]["twice"]))
