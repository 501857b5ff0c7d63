"""The engine through Redis (``RedisBroker``): ``python -m bench redis`` (``--quick``: a < 2 min smoke run).

Rows, each a median of ``REPEAT`` runs on one private redis-server (AOF everysec, noeviction):

- throughput: no-op messages accepted from this process (1,000 senders as ordering keys) until
  every stream is empty, through one node process with 2 workers, beside dramatiq and arq no-op
  tasks on the same Redis, also sent from this process to 2 worker processes (issue target: >= 10x
  dramatiq); the same with a 5 ms I/O handler; and the no-op rate when the node accepts in its own
  process, as ``sluiceway run`` does (its ingress and supervisor share a core);
- at 1,000 msg/s offered: p99 from accept to handler result (issue target <= 10 ms) and Redis round
  trips per message (requests the node's client wrote, a pipeline counting once, leases, heartbeats
  and idle reads included; issue target <= 1.5); round trips and commands per message at saturation;
- one vs two vs three node processes (2 workers each), fed from this process;
- end to end (``bench/redis_e2e.py``): two ``sluiceway run --redis`` nodes sharing one number's
  1,000 mps cap at the WhatsApp emulator, beside one node (issue target: >= 99% of the cap, 0
  rate-limit answers).

On this 2-core machine the nodes share the same two cores with Redis and the producer, so more
nodes cannot add throughput here: the node rows show the cost of coordination, not scaling.
Rows are functions of ``(report, url)`` in ``ROWS`` so that other parts (the rate-limit rows) can
be added; ``--only PART`` (repeatable: ``throughput``, ``latency``, ``round_trip``, ``node``,
``memory``, ``e2e``) runs some, their rows replacing theirs in ``bench/results/redis.json`` and the
others kept. Writes that file (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
import uvloop

from bench import redis_e2e
from bench.harness import REPEAT, Comparison, Report, header, scaled, write_merged
from sluiceway.engine import MessageParallelizer, ParallelizerConfig
from sluiceway.engine.redis_broker import RedisBroker
from sluiceway.testing.redis_server import RedisServer

QUICK = "--quick" in sys.argv or os.environ.get("SLUICEWAY_BENCH_QUICK") == "1"
#: Messages per throughput run.
MESSAGES = scaled(5_000 if QUICK else 50_000)
#: Messages per peer run (the peers are far slower).
PEER_MESSAGES = scaled(1_000 if QUICK else 5_000)
#: Seconds of paced load for the latency row.
PACED_SECONDS = 2.0 if QUICK else 10.0
PACED_RATE = 1_000
#: Messages of the memory row (the issue's "memory bounded after 1M messages").
MEMORY_MESSAGES = scaled(50_000 if QUICK else 1_000_000)
SENDERS = 1_000
TARGET_VS_DRAMATIQ = 10.0
NOOP = "sluiceway.testing.handlers:noop"
SLEEP_5MS = "sluiceway.testing.handlers:sleep_5ms"
CONFIG = ParallelizerConfig(default_worker_count=2, min_workers=1, max_workers=2, queue_high_water_mark=4_000)


#: Seconds any one wait of the bench may take: a stuck run fails naming what it waited for.
WAIT = 300.0


async def until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench stuck: no {what} after {WAIT} s")
        await asyncio.sleep(0.001)


class Node:
    """One engine with a broker in this process, and what its handler results tell."""

    def __init__(self, url: str, namespace: str, handler: str) -> None:
        self.done_at: list[float] = []
        self.started: dict[int, float] = {}
        self.latencies: list[float] = []
        self.engine = MessageParallelizer(
            handler, CONFIG, broker=RedisBroker(url, namespace=namespace), on_recovered=self._result
        )

    def _result(self, payload: Any, future: asyncio.Future[Any]) -> None:
        sent = payload.get("t") if isinstance(payload, dict) else None
        if sent is not None:
            future.add_done_callback(lambda _: self.latencies.append(time.time() - sent))

    @property
    def broker(self) -> RedisBroker:
        assert self.engine.broker is not None
        return self.engine.broker

    async def wait_acked(self, count: int) -> None:
        await until(lambda: self.broker.completed >= count, f"{count} acks")


async def _accept_all(engine: MessageParallelizer, count: int, payload: Callable[[int], Any]) -> None:
    """``count`` accepts in slices of 1,000 (the broker pipelines each slice in a round trip or few)."""
    for start in range(0, count, 1_000):
        slice_ = [
            engine.accept(payload(n), ordering_key=f"+1555{n % SENDERS:07d}").committed
            for n in range(start, min(count, start + 1_000))
        ]
        await asyncio.gather(*slice_)


def _throughput(url: str, handler: str, count: int, namespace: str) -> list[float]:
    """REPEAT runs of ``count`` messages through one node; msg/s from the first accept to the last ack."""

    async def run() -> list[float]:
        node = Node(url, namespace, handler)
        await node.engine.start()
        try:
            await until(lambda: node.broker.held, "partition held")
            rates = []
            for _ in range(REPEAT):
                base = node.broker.completed
                started = time.perf_counter()
                await _accept_all(node.engine, count, lambda n: None)
                await node.wait_acked(base + count)
                rates.append(count / (time.perf_counter() - started))
            return rates
        finally:
            await node.engine.shutdown()

    return uvloop.run(run())


def _peer_rates(url: str) -> dict[str, list[float]]:
    from bench.engine import redis_peers

    os.environ[redis_peers.URL_VARIABLE] = url
    peers: Any = importlib.reload(redis_peers)
    rates: dict[str, list[float]] = {}
    try:
        rates["dramatiq"] = [peers.dramatiq_rate(url, PEER_MESSAGES) for _ in range(REPEAT)]
    except Exception as error:  # a missing optional peer skips its row, it does not stop the bench
        print(f"  (dramatiq row skipped: {error})")
    try:
        rates["arq"] = [peers.arq_rate(url, PEER_MESSAGES) for _ in range(REPEAT)]
    except Exception as error:
        print(f"  (arq row skipped: {error})")
    return rates


def throughput_rows(report: Report, url: str) -> None:
    header(f"throughput through Redis: {MESSAGES:,} messages per run, 1 node process with 2 workers")
    # As the peers run: the producer here, the workers in their own processes.
    noop = _with_nodes(url, "bench-noop", 1, NOOP)
    io = _with_nodes(url, "bench-io", 1, SLEEP_5MS)
    peers = _peer_rates(url)
    for peer, samples in peers.items():
        report.add(
            Comparison(
                "no-op throughput via Redis",
                f"{peer} no-op (redis)",
                statistics.median(noop),
                statistics.median(samples),
                "msg/s",
                True,
                TARGET_VS_DRAMATIQ if peer == "dramatiq" else None,
                noop,
                samples,
            )
        )
    report.figure("5 ms I/O handler msg/s via Redis (1 node, 2 workers)", statistics.median(io))
    in_process = _throughput(url, NOOP, MESSAGES, "bench-in-process")
    report.figure("no-op msg/s, accepting in the node's own process", statistics.median(in_process))


def latency_rows(report: Report, url: str) -> None:
    header(f"at {PACED_RATE:,} msg/s offered for {PACED_SECONDS:g} s: p99 accept to handler result, round trips")

    async def run() -> tuple[list[float], int, int]:
        node = Node(url, "bench-latency", NOOP)
        await node.engine.start()
        try:
            await until(lambda: node.broker.held, "partition held")
            p99s = []
            total = int(PACED_RATE * PACED_SECONDS)
            with counting_round_trips() as trips:
                for _ in range(REPEAT):
                    node.latencies.clear()
                    started = time.perf_counter()
                    commits = []
                    for n in range(total):  # paced: one message every millisecond at 1,000 msg/s
                        delay = started + n / PACED_RATE - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        commit = node.engine.accept({"t": time.time()}, ordering_key=f"+1{n % SENDERS}").committed
                        commits.append(commit)
                    await asyncio.gather(*commits)
                    await until(lambda: len(node.latencies) >= total, f"{total} handler results")
                    p99s.append(statistics.quantiles(node.latencies, n=100)[98] * 1000)
            return p99s, trips[0], total * REPEAT
        finally:
            await node.engine.shutdown()

    p99s, trips, messages = uvloop.run(run())
    p99 = statistics.median(p99s)
    report.add(Comparison("p99 @ 1,000 msg/s via Redis", "bound 10 ms", p99, 10.0, "ms", False, 1.0, p99s, []))
    # Everything the node wrote to Redis (leases, heartbeats and idle reads included) over the messages.
    per_message = trips / messages
    report.add(
        Comparison("Redis round trips per message @ 1,000 msg/s", "bound 1.5", per_message, 1.5, "trips", False, 1.0)
    )


@contextmanager
def counting_round_trips() -> Iterator[list[int]]:
    """Counts the requests this process's asyncio Redis clients write (a pipeline is one)."""
    import redis.asyncio.connection as connection

    sends = [0]
    original = connection.AbstractConnection.send_packed_command

    async def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sends[0] += 1
        await original(self, command, check_health)

    connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield sends
    finally:
        connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def round_trip_rows(report: Report, url: str) -> None:
    header("Redis round trips and commands per message at saturation (no-op, one node)")
    client = redis.Redis.from_url(url)
    before = _calls(client)
    with counting_round_trips() as trips:
        _throughput_once(url, MESSAGES)
    report.figure("Redis round trips per message, saturated", trips[0] / MESSAGES)
    report.figure("Redis commands per message, saturated (INFO commandstats)", (_calls(client) - before) / MESSAGES)


def _throughput_once(url: str, count: int) -> None:
    async def run() -> None:
        node = Node(url, "bench-trips", NOOP)
        await node.engine.start()
        try:
            await until(lambda: node.broker.held, "partition held")
            await _accept_all(node.engine, count, lambda n: None)
            await node.wait_acked(count)
        finally:
            await node.engine.shutdown()

    uvloop.run(run())


def _calls(client: redis.Redis) -> int:
    stats: Any = client.info("commandstats")
    return sum(int(entry["calls"]) for name, entry in stats.items() if name != "cmdstat_info")


def node_rows(report: Report, url: str) -> None:
    header(f"one vs two vs three nodes (separate processes, 2 workers each): {MESSAGES:,} messages per run")
    for nodes in (1, 2, 3):
        rates = _with_nodes(url, f"bench-nodes-{nodes}", nodes, NOOP)
        report.figure(f"no-op msg/s with {nodes} node(s)", statistics.median(rates))


def _with_nodes(url: str, namespace: str, nodes: int, handler: str) -> list[float]:
    """REPEAT runs through ``nodes`` node processes, fed from here; msg/s until every stream is empty."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.bench_redis", "--node", url, namespace, handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(nodes)
    ]
    try:
        return uvloop.run(_producer(url, namespace, nodes))
    finally:
        for process in processes:
            assert process.stdin is not None
            process.stdin.close()  # the node drains and exits
        for process in processes:
            process.wait(60)


def memory_rows(report: Report, url: str) -> None:
    header(f"Redis memory after {MEMORY_MESSAGES:,} messages through one node (acked entries are deleted)")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_redis", "--node", url, "bench-memory", NOOP],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        before, after, entries = uvloop.run(_memory_run(url, "bench-memory"))
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(60)
    report.figure(f"Redis used_memory growth after {MEMORY_MESSAGES:,} messages (bytes)", after - before)
    report.figure("stream entries left", entries)


async def _memory_run(url: str, namespace: str) -> tuple[int, int, int]:
    broker = RedisBroker(url, namespace=namespace)
    await broker.connect()
    client = broker.redis
    try:
        await until_async(lambda: _all_held(broker), "the node to hold every partition")
        before = int((await client.info("memory"))["used_memory"])
        for start in range(0, MEMORY_MESSAGES, 1_000):
            batch = [
                broker.accept(b"\xc0", 1, time.time(), f"+1555{n % SENDERS:07d}", None)
                for n in range(start, min(MEMORY_MESSAGES, start + 1_000))
            ]
            await asyncio.gather(*batch)
        await until_async(lambda: _streams_empty(broker), "every message acked")
        after = int((await client.info("memory"))["used_memory"])
        entries = sum([int(await client.xlen(broker.stream(p))) for p in range(broker.partitions)])
        return before, after, entries
    finally:
        await client.aclose()


async def _all_held(broker: RedisBroker) -> bool:
    return all([await broker.redis.exists(broker.key("lease", p)) for p in range(broker.partitions)])


async def _streams_empty(broker: RedisBroker) -> bool:
    pipe = broker.redis.pipeline(transaction=False)
    for p in range(broker.partitions):
        pipe.xlen(broker.stream(p))
        pipe.xpending(broker.stream(p), "workers")
    results = await pipe.execute()
    return not sum(results[0::2]) and not sum(r["pending"] for r in results[1::2])


async def until_async(condition: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench stuck: no {what} after {WAIT} s")
        await asyncio.sleep(0.01)


async def _producer(url: str, namespace: str, nodes: int) -> list[float]:
    """Accept through a node-less broker (it only accepts) and time until every stream is empty."""
    broker = RedisBroker(url, namespace=namespace)
    await broker.connect()
    client = broker.redis
    try:
        deadline = time.monotonic() + WAIT
        while True:  # every node holds partitions
            holders = {await client.get(broker.key("lease", p)) for p in range(broker.partitions)}
            if None not in holders and len({h.decode().rpartition(":")[0] for h in holders}) == nodes:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench stuck: {nodes} nodes never shared the partitions")
            await asyncio.sleep(0.05)
        rates = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            for start in range(0, MESSAGES, 1_000):
                batch = [
                    broker.accept(b"\xc0", 1, time.time(), f"+1555{n % SENDERS:07d}", None)
                    for n in range(start, min(MESSAGES, start + 1_000))
                ]
                await asyncio.gather(*batch)
            deadline = time.monotonic() + WAIT
            while True:
                pipe = client.pipeline(transaction=False)
                for p in range(broker.partitions):
                    pipe.xlen(broker.stream(p))
                left = sum(await pipe.execute())
                if not left:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"bench stuck: {left} messages still in the streams after {WAIT} s")
                await asyncio.sleep(0.002)
            rates.append(MESSAGES / (time.perf_counter() - started))
        return rates
    finally:
        await client.aclose()


def _serve_node(url: str, namespace: str, handler: str) -> None:
    """``--node URL NAMESPACE HANDLER``: one node until stdin closes (the bench's subprocess nodes)."""

    async def run() -> None:
        engine = MessageParallelizer(handler, CONFIG, broker=RedisBroker(url, namespace=namespace))
        await engine.start()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await engine.shutdown()

    uvloop.run(run())


def e2e_rows(report: Report, url: str) -> None:
    redis_e2e.e2e_rows(report, url, quick=QUICK)


#: The rows, in order; each takes the report and the Redis URL.
ROWS: list[Callable[[Report, str], None]] = [
    throughput_rows,
    latency_rows,
    round_trip_rows,
    node_rows,
    memory_rows,
    e2e_rows,
]
#: ``--only``'s names of the rows.
PARTS = {row.__name__.removesuffix("_rows"): row for row in ROWS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench redis", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run under 2 minutes; no results written")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(PARTS),
        help="run only this part (repeatable); its rows replace theirs in redis.json, the others are kept",
    )
    args = parser.parse_args(argv or [])
    report = Report("redis")
    with RedisServer(appendonly=True, appendfsync="everysec") as server:
        for name in args.only or PARTS:
            redis.Redis.from_url(server.url).flushall()
            PARTS[name](report, server.url)
    if QUICK:  # a smoke run's small sizes are not results
        print("--quick: bench/results/redis.json not written")
    elif args.only:
        write_merged(report)
    else:
        report.write()


if __name__ == "__main__":
    if "--node" in sys.argv:
        at = sys.argv.index("--node")
        _serve_node(sys.argv[at + 1], sys.argv[at + 2], sys.argv[at + 3])
    else:
        main(sys.argv[1:])
