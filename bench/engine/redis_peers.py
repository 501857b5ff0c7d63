"""dramatiq and arq on a local redis-server: the task-queue peers, when redis-server exists.

Each peer's task increments a Redis counter (a task queue has no cheaper way to say
"done" across its worker processes), and the rate is messages enqueued to the last
increment. Workers run as separate processes (2, like ours) started by each library's
own CLI; the broker is a throwaway ``redis-server`` on a free local port.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sluiceway.testing.redis_server import RedisServer
from sluiceway.testing.redis_server import available as redis_server_available

#: Environment variable carrying the broker URL to the peers' worker processes.
URL_VARIABLE = "SLUICEWAY_BENCH_REDIS_URL"
COUNTER = "sluiceway-bench-done"
REDIS_URL = os.environ.get(URL_VARIABLE, "redis://127.0.0.1:6379/0")


def available() -> bool:
    return redis_server_available()


@contextmanager
def redis_server(*, appendonly: bool = False, appendfsync: str = "everysec") -> Iterator[str]:
    """A private redis-server on 127.0.0.1 in a temp dir, yielding its URL; without persistence unless told."""
    with RedisServer(appendonly=appendonly, appendfsync=appendfsync) as server:
        yield server.url


# -- dramatiq ------------------------------------------------------------------------------

try:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    dramatiq.set_broker(RedisBroker(url=REDIS_URL))

    _clients: dict[int, Any] = {}

    @dramatiq.actor(max_retries=0)
    def dramatiq_noop() -> None:
        import redis

        # One connection per worker process, opened on first use.
        client = _clients.get(os.getpid()) or _clients.setdefault(os.getpid(), redis.Redis.from_url(REDIS_URL))
        client.incr(COUNTER)

except ImportError:  # dramatiq is in the bench extra; without it the row is skipped
    dramatiq = None  # type: ignore[assignment]


# -- arq -----------------------------------------------------------------------------------


async def arq_noop(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr(COUNTER)


def _arq_settings() -> Any:
    from arq.connections import RedisSettings

    class ArqSettings:
        functions = [arq_noop]  # noqa: RUF012 - arq reads its worker settings from class attributes
        redis_settings = RedisSettings.from_dsn(REDIS_URL)
        max_jobs = 64
        keep_result = 0
        poll_delay = 0.01

    return ArqSettings


ArqSettings = _arq_settings() if os.environ.get(URL_VARIABLE) else None


def _wait_for_counter(url: str, target: int, timeout: float = 600.0) -> None:
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while int(client.get(COUNTER) or 0) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"peer finished only {client.get(COUNTER)} of {target}")
        time.sleep(0.005)


def dramatiq_rate(url: str, messages: int) -> float:
    """dramatiq no-op messages per second with 2 worker processes (import this module with the URL set)."""
    import redis

    env = os.environ | {URL_VARIABLE: url}
    workers = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "bench.engine.redis_peers", "--processes", "2", "--threads", "8"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis.from_url(url)
        client.set(COUNTER, 0)
        for _ in range(100):  # warm-up: the workers are up and consuming
            dramatiq_noop.send()
        _wait_for_counter(url, 100)
        client.set(COUNTER, 0)
        started = time.perf_counter()
        for _ in range(messages):
            dramatiq_noop.send()
        _wait_for_counter(url, messages)
        return messages / (time.perf_counter() - started)
    finally:
        workers.terminate()
        workers.wait()


def arq_rate(url: str, messages: int) -> float:
    """arq no-op jobs per second with 2 worker processes."""
    import redis

    env = os.environ | {URL_VARIABLE: url}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "arq", "bench.engine.redis_peers.ArqSettings"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        client = redis.Redis.from_url(url)
        client.set(COUNTER, 0)

        async def enqueue(count: int) -> None:
            from arq import create_pool
            from arq.connections import RedisSettings

            pool = await create_pool(RedisSettings.from_dsn(url))
            for _ in range(count):
                await pool.enqueue_job("arq_noop")
            await pool.aclose()

        asyncio.run(enqueue(50))
        _wait_for_counter(url, 50)
        client.set(COUNTER, 0)
        started = time.perf_counter()
        asyncio.run(enqueue(messages))
        _wait_for_counter(url, messages)
        return messages / (time.perf_counter() - started)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait()
