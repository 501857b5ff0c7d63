"""Global rate limits through Redis: ``python -m bench redis_limits`` (or ``rate_limit_rows`` from ``bench_redis``).

Measures, against a private redis-server (AOF on) and the WhatsApp emulator:

* three sender processes sharing one number's cap through :class:`RedisRateLimits`: the share
  of the cap used, the emulator's 130429/131056 answers (target: 0), the busiest second
  (never above the cap) and Redis round trips per send (target: well under 1);
* token acquisition through Redis in one process, ours (batched reservations) against
  pyrate-limiter's ``RedisBucket`` (one round trip or more per acquire), at a rate high
  enough that neither limit binds: acquires per second and round trips per acquire.

Writes ``bench/results/redis_limits.json``. What a 2-core machine cannot show: the nodes,
the emulator and Redis share two cores, so the cap is kept where they are not CPU-bound
(at 400 msg/s on a loaded 2-core machine the nodes, not the limits, run out of CPU).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from bench.harness import REPEAT, SCALE, Comparison, Report, header

#: The number's cap in the three-node run, and the run's length.
CAP = 200
NODES = 3
RUN_SECONDS = max(3.0, 10.0 * SCALE)
#: Acquires per repetition in the single-process comparison, and the (non-binding) rate.
ACQUIRES = max(2000, int(20_000 * SCALE))
FREE_RATE = 1_000_000
TARGET_USED = 0.95


async def _node(config: dict[str, Any]) -> dict[str, int]:
    """One sender node (run in its own process): sends from ``start_at`` to ``stop_at`` through Redis limits."""
    from redis.asyncio import Redis

    from sluiceway.whatsapp import BatchSender, SenderConfig, WhatsAppCloudTransport
    from sluiceway.whatsapp.config import RecipientLimit
    from sluiceway.whatsapp.messages import OutboundMessage
    from sluiceway.whatsapp.redis_limits import RedisRateLimits

    cap = int(config["cap"])
    sender_config = SenderConfig.cloud_api(cap, per_recipient=RecipientLimit(limit=1, window=6.0), max_retries=0)
    redis = Redis.from_url(config["redis_url"])
    limits = RedisRateLimits(redis, sender_config.rate_limit, sender_config.per_recipient, key=config["key"])
    async with WhatsAppCloudTransport(config["phone_number_id"], config["token"], base_url=config["base_url"]) as t:
        sender = BatchSender(t, sender_config, limits=limits)
        while time.monotonic() < config["start_at"]:
            await asyncio.sleep(0.005)
        await sender.start()
        for i in range(int(cap * (config["stop_at"] - config["start_at"]) + cap)):
            sender.enqueue_nowait(OutboundMessage.of_text(f"{config['prefix']}{i}", "hello"))
        await asyncio.sleep(max(0.0, config["stop_at"] - time.monotonic()))
        await sender.close(timeout=0.0)
    await redis.aclose()
    return {"round_trips": limits.round_trips, "granted": limits.granted, "lapsed": limits.lapsed}


async def _cluster_run(redis_url: str, key: str) -> dict[str, float]:
    from sluiceway.testing.whatsapp_emulator import WhatsAppEmulator

    async with WhatsAppEmulator(throughput=CAP, pair_limit=1, pair_window=6.0) as api:
        start_at = time.monotonic() + 3.0
        stop_at = start_at + RUN_SECONDS
        nodes = []
        for n in range(NODES):
            config = {
                "redis_url": redis_url,
                "key": key,
                "cap": CAP,
                "base_url": api.base_url,
                "phone_number_id": api.phone_number_id,
                "token": api.access_token,
                "start_at": start_at,
                "stop_at": stop_at,
                "prefix": f"1555{n}",
            }
            nodes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.bench_redis_limits", "node", json.dumps(config),
                    stdout=asyncio.subprocess.PIPE,
                )
            )  # fmt: skip
        counters = [json.loads((await node.communicate())[0].decode().splitlines()[-1]) for node in nodes]
        sent = sorted(a.at for a in api.accepted)
        measured = [t for t in sent if start_at + 0.5 <= t < stop_at]
        busiest, j = 0, 0
        for i, start in enumerate(sent):
            while j < len(sent) and sent[j] < start + 1.0:
                j += 1
            busiest = max(busiest, j - i)
        granted = sum(c["granted"] for c in counters)
        return {
            "used": len(measured) / ((stop_at - start_at - 0.5) * CAP),
            "rate_limit_answers": float(api.answers[130429] + api.answers[131056]),
            "busiest_second": float(busiest),
            "round_trips_per_send": sum(c["round_trips"] for c in counters) / max(granted, 1),
        }


async def _ours_acquires(redis_url: str, key: str) -> tuple[float, float]:
    from redis.asyncio import Redis

    from sluiceway.whatsapp.config import RateLimits, RecipientLimit
    from sluiceway.whatsapp.redis_limits import RedisRateLimits

    redis = Redis.from_url(redis_url)
    limits = RedisRateLimits(redis, RateLimits.cloud_api(FREE_RATE), RecipientLimit(), key=key)
    clock = time.monotonic
    taken = 0
    started = clock()
    while taken < ACQUIRES:
        if limits.take_global(clock()):
            taken += 1
        else:
            await asyncio.sleep(0)
    elapsed = clock() - started
    await limits.aclose()
    await redis.aclose()
    return taken / elapsed, limits.round_trips / taken


async def _pyrate_acquires(redis_url: str, key: str) -> float:
    from pyrate_limiter import Duration, Limiter, Rate, RedisBucket
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    bucket = await RedisBucket.init([Rate(FREE_RATE, Duration.SECOND)], redis, key)  # type: ignore[misc]
    limiter = Limiter(bucket)
    started = time.monotonic()
    for _ in range(ACQUIRES):
        assert await limiter.try_acquire_async("send")
    elapsed = time.monotonic() - started
    await redis.aclose()
    return ACQUIRES / elapsed


def rate_limit_rows(report: Report) -> None:
    """Add the Redis rate-limit rows and figures to ``report`` (``bench_redis`` calls this too)."""
    import uvloop

    from sluiceway.testing.redis_server import RedisServer

    with RedisServer() as server:
        header(f"{NODES} sender processes sharing a {CAP} msg/s cap through Redis, {RUN_SECONDS:g} s each")
        runs = [uvloop.run(_cluster_run(server.url, f"bench:{i}")) for i in range(REPEAT)]
        used = [r["used"] for r in runs]
        report.add(
            Comparison(
                f"{NODES} nodes @ {CAP} mps cap",
                "the cap",
                statistics.median(used) * CAP,
                float(CAP),
                "messages/s",
                target=TARGET_USED,
                samples_ours=[u * CAP for u in used],
            )
        )
        report.figure(
            f"{NODES} nodes: rate-limit answers (130429+131056), all runs", sum(r["rate_limit_answers"] for r in runs)
        )
        report.figure(
            f"{NODES} nodes: busiest second (max over runs; cap {CAP})", max(r["busiest_second"] for r in runs)
        )
        report.figure(
            f"{NODES} nodes: Redis round trips per send (median)",
            statistics.median(r["round_trips_per_send"] for r in runs),
        )

        header(f"token acquisition through Redis, one process, {ACQUIRES:,} acquires (the rate does not bind)")
        ours = [uvloop.run(_ours_acquires(server.url, f"bench:ours:{i}")) for i in range(REPEAT)]
        try:
            theirs = [uvloop.run(_pyrate_acquires(server.url, f"bench:pyrate:{i}")) for i in range(REPEAT)]
        except ImportError:
            theirs = []
            print("  pyrate-limiter is not installed (pip install -e '.[bench]'): no comparison", flush=True)
        rates = [rate for rate, _ in ours]
        if theirs:
            report.add(
                Comparison(
                    "acquires through Redis",
                    "pyrate-limiter RedisBucket",
                    statistics.median(rates),
                    statistics.median(theirs),
                    "acquires/s",
                    samples_ours=rates,
                    samples_theirs=theirs,
                )
            )
        else:
            report.figure("acquires through Redis per second (ours)", statistics.median(rates))
        report.figure("round trips per acquire (ours, median)", statistics.median(trips for _, trips in ours))


def main() -> None:
    report = Report("redis_limits")
    rate_limit_rows(report)
    report.write()


if __name__ == "__main__":
    if sys.argv[1:2] == ["node"]:
        import uvloop

        print(json.dumps(uvloop.run(_node(json.loads(sys.argv[2])))))
    else:
        main()
