"""The WhatsApp sender against the emulator and against the hand-written stack: ``python -m bench sender``.

Measures, with the emulator in its own process (so the client's CPU is the client's):

* sustained throughput of ``BatchSender`` + ``WhatsAppCloudTransport`` for
  ``SUSTAINED_SECONDS`` at an 80 mps cap and at a 1,000 mps cap, with the number
  of 130429/131056 answers the emulator gave (target: ≥ 99% of the cap, zero errors);
* client CPU per 1,000 messages at the 1,000 mps cap against a hand-written
  aiohttp + aiolimiter + tenacity sender (target: ours ≤ 0.5× theirs), both sides
  timed from building their messages to the last answer, measured with
  ``time.process_time()`` of the client process alone (every thread of it), with
  two floors for scale: bare aiohttp posts and bare posts through
  ``sluiceway.http.HttpClient`` (no limiter, so both meet the emulator's cap: that only shows
  what one HTTP round trip costs each client);
* success-path overhead per call of our retry and breaker against a tenacity
  ``@retry`` and a pybreaker ``CircuitBreaker.call`` (targets: ≤ 0.1× tenacity,
  ≤ 0.5× pybreaker), each as time per wrapped call minus time per bare call;
* the Rust limiters' acquire against pyrate-limiter and aiolimiter, copied from
  the core benchmark's results file when it exists.

Writes ``bench/results/sender.json``. Both clients run on uvloop.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import uvloop

from bench.harness import REPEAT, RESULTS_DIR, SCALE, Comparison, Report, header, scaled

#: Length of each sustained-throughput run (the issue asks for 30 s; scaled for smoke runs).
SUSTAINED_SECONDS = max(2.0, 30.0 * SCALE)
#: Throughput caps measured: the Cloud API default and an upgraded number.
CAPS = (80, 1000)
#: Messages per repetition in the CPU comparison, at the 1,000 mps cap.
CPU_MESSAGES = scaled(5000)
CPU_CAP = 1000
#: Concurrent requests the hand-written baseline keeps in flight.
BASELINE_CONCURRENCY = 50
#: Calls per repetition in the retry/breaker overhead micro-benchmark.
OVERHEAD_CALLS = scaled(100_000)
#: Targets from issue 5, as harness ratios (bigger is better).
TARGET_SUSTAINED = 0.99
TARGET_CPU = 2.0  # theirs ÷ ours ≥ 2, i.e. ours ≤ 0.5×
TARGET_VS_TENACITY = 10.0
TARGET_VS_PYBREAKER = 2.0


# --- the emulator in its own process ---------------------------------------------------


def _serve(conn: Connection, throughput: float) -> None:
    from sluiceway.testing import WhatsAppEmulator

    async def main() -> None:
        # Pair rate generous enough never to bind: every message goes to a new recipient.
        async with WhatsAppEmulator(throughput=throughput, pair_limit=1, pair_window=6.0) as api:
            conn.send((api.base_url, api.phone_number_id, api.access_token))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    uvloop.run(main())


class EmulatorProcess:
    """A ``WhatsAppEmulator`` at ``throughput`` mps in a child process, for one measurement."""

    def __init__(self, throughput: float) -> None:
        self.throughput = throughput

    def __enter__(self) -> EmulatorProcess:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.throughput), daemon=True)
        self._proc.start()
        self.base_url, self.phone_number_id, self.token = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()

    async def stats(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.base_url}/_emulator/stats") as r:
            result: dict[str, Any] = await r.json()
            return result


def _rate_errors(stats: dict[str, Any]) -> int:
    return int(stats["answers"].get("130429", 0)) + int(stats["answers"].get("131056", 0))


# --- ours ------------------------------------------------------------------------------------


async def _ours(emu: EmulatorProcess, cap: int, messages: int, seconds: float | None) -> tuple[int, float, float]:
    """Send through BatchSender; (messages confirmed, wall seconds, client CPU seconds)."""
    from sluiceway.whatsapp import BatchSender, OutboundMessage, SenderConfig, WhatsAppCloudTransport

    transport = WhatsAppCloudTransport(emu.phone_number_id, emu.token, base_url=emu.base_url)
    async with transport, BatchSender(transport, SenderConfig.cloud_api(cap)) as sender:
        # Building the messages is timed, as the baseline's payload dicts are.
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(messages):
            sender.enqueue_nowait(OutboundMessage.of_text(f"{i:012d}", "Your rent receipt is ready"))
        if seconds is None:
            await sender.drain()
        else:
            # Sustained rate: measured from a full queue, once enqueueing is done.
            cpu0, t0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
        done, wall, cpu = sender.stats()["confirmed"], time.perf_counter() - t0, time.process_time() - cpu0
        await sender.close(timeout=0)
    return done, wall, cpu


# --- the hand-written baseline ---------------------------------------------------------------


async def _baseline(emu: EmulatorProcess, cap: int, messages: int) -> tuple[int, float, float]:
    """What people write by hand: aiohttp + aiolimiter + tenacity, json payloads, a semaphore."""
    from aiolimiter import AsyncLimiter
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

    class Transient(Exception):
        pass

    url = f"{emu.base_url}/v23.0/{emu.phone_number_id}/messages"
    limiter = AsyncLimiter(cap, 1.0)
    semaphore = asyncio.Semaphore(BASELINE_CONCURRENCY)
    headers = {"Authorization": f"Bearer {emu.token}"}
    sent = 0
    async with aiohttp.ClientSession(headers=headers) as session:

        async def send(payload: dict[str, Any]) -> str:
            async with limiter, session.post(url, json=payload) as response:
                body = await response.json()
                if response.status >= 400:
                    if response.status >= 500 or body["error"]["code"] in (130429, 131056, 131000):
                        raise Transient(body["error"]["message"])
                    raise RuntimeError(body["error"]["message"])
                return str(body["messages"][0]["id"])

        async def one(i: int) -> None:
            nonlocal sent
            payload = {
                "messaging_product": "whatsapp",
                "to": f"{i:012d}",
                "type": "text",
                "text": {"body": "Your rent receipt is ready"},
            }
            async with semaphore:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(4),
                    wait=wait_exponential_jitter(initial=1, max=60),
                    retry=retry_if_exception_type(Transient),
                    reraise=True,
                ):
                    with attempt:
                        await send(payload)
            sent += 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(messages)))
        return sent, time.perf_counter() - t0, time.process_time() - cpu0


async def _floor(emu: EmulatorProcess, cap: int, messages: int) -> tuple[int, float, float]:
    """Bare aiohttp posts of ready-made bodies, no limiter, retry or bookkeeping: the HTTP client's own cost."""
    url = f"{emu.base_url}/v23.0/{emu.phone_number_id}/messages"
    headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
    bodies = [
        b'{"messaging_product":"whatsapp","to":"%012d","type":"text","text":{"body":"hi"}}' % i for i in range(messages)
    ]
    semaphore = asyncio.Semaphore(BASELINE_CONCURRENCY)
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(body: bytes) -> None:
            async with semaphore, session.post(url, data=body) as response:
                await response.read()

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return messages, time.perf_counter() - t0, time.process_time() - cpu0


async def _pool_floor(emu: EmulatorProcess, cap: int, messages: int) -> tuple[int, float, float]:
    """The same bare posts as ``_floor`` through ``sluiceway.http.HttpClient``: the transport's HTTP cost alone."""
    from sluiceway.http import HttpClient

    path = f"/v23.0/{emu.phone_number_id}/messages"
    headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
    bodies = [
        b'{"messaging_product":"whatsapp","to":"%012d","type":"text","text":{"body":"hi"}}' % i for i in range(messages)
    ]
    async with HttpClient(emu.base_url, headers=headers, max_connections=BASELINE_CONCURRENCY) as client:

        async def one(body: bytes) -> None:
            await client.request("POST", path, body)

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return messages, time.perf_counter() - t0, time.process_time() - cpu0


# --- sections ------------------------------------------------------------------------------------


def sustained(report: Report) -> None:
    header(f"sustained throughput over {SUSTAINED_SECONDS:g} s against the emulator (its own process)")
    for cap in CAPS:
        rates, errors, cpus = [], 0, []
        for _ in range(REPEAT):
            with EmulatorProcess(cap) as emu:
                messages = int(cap * (SUSTAINED_SECONDS + 5))
                done, wall, cpu = uvloop.run(_ours(emu, cap, messages, SUSTAINED_SECONDS))
                rates.append(done / wall)
                cpus.append(cpu / done * 1e6 if done else float("nan"))
                errors += _rate_errors(uvloop.run(emu.stats()))
        report.add(
            Comparison(
                f"sustained @ {cap} mps cap",
                "the cap",
                statistics.median(rates),
                float(cap),
                "messages/s",
                target=TARGET_SUSTAINED,
                samples_ours=rates,
            )
        )
        report.figure(f"rate-limit answers (130429+131056) @ {cap} mps, all runs", float(errors))
        report.figure(f"client CPU ms per 1,000 messages @ {cap} mps", statistics.median(cpus))


async def _cpu_run(kind: str, emu: EmulatorProcess) -> tuple[int, float, float]:
    if kind == "ours":
        return await _ours(emu, CPU_CAP, CPU_MESSAGES, None)
    if kind == "baseline":
        return await _baseline(emu, CPU_CAP, CPU_MESSAGES)
    if kind == "pool_floor":
        return await _pool_floor(emu, CPU_CAP, CPU_MESSAGES)
    return await _floor(emu, CPU_CAP, CPU_MESSAGES)


def cpu(report: Report) -> None:
    header(f"client CPU per 1,000 messages at a {CPU_CAP} mps cap ({CPU_MESSAGES} messages a run)")
    samples: dict[str, list[float]] = {"ours": [], "baseline": [], "floor": [], "pool_floor": []}
    rate_errors: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(REPEAT):
        for kind, bucket in samples.items():
            with EmulatorProcess(CPU_CAP) as emu:
                done, _, cpu_s = uvloop.run(_cpu_run(kind, emu))
                bucket.append(cpu_s / done * 1e6)
                if kind in rate_errors:
                    rate_errors[kind].append(_rate_errors(uvloop.run(emu.stats())))
    ours, theirs, floor = samples["ours"], samples["baseline"], samples["floor"]
    report.add(
        Comparison(
            "CPU per 1,000 messages",
            "aiohttp+aiolimiter+tenacity",
            statistics.median(ours),
            statistics.median(theirs),
            "ms CPU per 1,000 messages",
            higher_is_better=False,
            target=TARGET_CPU,
            samples_ours=ours,
            samples_theirs=theirs,
        )
    )
    # The baseline's few 130429 answers (aiolimiter's burst meets the emulator's bucket)
    # cost it a retried request each: under 1% extra requests, shown so the ratio can be judged.
    for kind, errors in rate_errors.items():
        report.figure(f"{kind}: 130429/131056 answers per run (median)", statistics.median(errors))
    report.figure("bare aiohttp floor: ms CPU per 1,000 posts (no limits, no retries)", statistics.median(floor))
    report.figure(
        "bare HttpClient floor (our transport's HTTP client): ms CPU per 1,000 posts",
        statistics.median(samples["pool_floor"]),
    )
    # What each sender adds on top of its own HTTP client's bare posts.
    report.figure(
        "ours above the HttpClient floor: ms CPU per 1,000 messages",
        statistics.median(ours) - statistics.median(samples["pool_floor"]),
    )
    report.figure(
        "baseline above the aiohttp floor: ms CPU per 1,000 messages",
        statistics.median(theirs) - statistics.median(floor),
    )


def _per_call(run: Callable[[], Awaitable[None] | None], loop: asyncio.AbstractEventLoop) -> float:
    """Nanoseconds per call of one run (a coroutine function runs to completion on ``loop``)."""
    start = time.perf_counter()
    pending = run()
    if pending is not None:
        loop.run_until_complete(pending)
    return (time.perf_counter() - start) / OVERHEAD_CALLS * 1e9


def overhead(report: Report) -> None:
    import pybreaker
    from tenacity import retry, stop_after_attempt, wait_exponential_jitter

    from sluiceway.whatsapp import BreakerConfig, CircuitBreaker, SendError

    header(f"success-path overhead per call of retry + breaker ({OVERHEAD_CALLS} calls a run)")
    n = OVERHEAD_CALLS
    breaker = CircuitBreaker(BreakerConfig())
    allow, success = breaker.allow, breaker.record_success

    async def op() -> int:
        return 1

    def op_sync() -> int:
        return 1

    async def bare_async() -> None:
        for _ in range(n):
            await op()

    async def ours_async() -> None:
        # The sender's own success path: admit through the breaker, await the send
        # inside a try (retries are only computed in the except), record the success.
        for _ in range(n):
            if allow():
                try:
                    await op()
                except SendError:
                    raise
                success()

    wrapped = retry(stop=stop_after_attempt(4), wait=wait_exponential_jitter(initial=1, max=60))(op)

    async def tenacity_async() -> None:
        for _ in range(n):
            await wrapped()

    def bare_sync() -> None:
        for _ in range(n):
            op_sync()

    def ours_sync() -> None:
        for _ in range(n):
            if allow():
                op_sync()
                success()

    peer = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    def pybreaker_sync() -> None:
        for _ in range(n):
            peer.call(op_sync)

    loop = uvloop.new_event_loop()
    runs: dict[str, Callable[[], Any]] = {
        "bare_async": bare_async,
        "ours_async": ours_async,
        "tenacity": tenacity_async,
        "bare_sync": bare_sync,
        "ours_sync": ours_sync,
        "pybreaker": pybreaker_sync,
    }
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(max(REPEAT, 5)):
        for name, run in runs.items():
            samples[name].append(_per_call(run, loop))
    loop.close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    ours_async_ns = max(med["ours_async"] - med["bare_async"], 1.0)
    ours_sync_ns = max(med["ours_sync"] - med["bare_sync"], 1.0)
    report.add(
        Comparison(
            "retry+breaker overhead (async)",
            "tenacity @retry",
            ours_async_ns,
            med["tenacity"] - med["bare_async"],
            "ns per call",
            higher_is_better=False,
            target=TARGET_VS_TENACITY,
        )
    )
    report.add(
        Comparison(
            "breaker overhead (sync call)",
            "pybreaker .call",
            ours_sync_ns,
            med["pybreaker"] - med["bare_sync"],
            "ns per call",
            higher_is_better=False,
            target=TARGET_VS_PYBREAKER,
        )
    )


def limiter_figures(report: Report) -> None:
    """The foundation's limiter rows, reused from its results file."""
    header("Rust limiters vs pyrate-limiter and aiolimiter (from the core benchmark's results)")
    for name in ("core_rate_limit.json", "core.json"):
        path = RESULTS_DIR / name
        if path.exists():
            rows = json.loads(path.read_text())["rows"]
            picked = [r for r in rows if r["peer"].startswith(("pyrate", "aiolimiter"))]
            for r in picked:
                report.figure(f"{r['case']} vs {r['peer']} (×, from {name})", r["ratio"])
            if picked:
                return
    print("  no core rate-limit results yet: run `python -m bench core` first", flush=True)


def main() -> None:
    report = Report("sender")
    overhead(report)
    limiter_figures(report)
    cpu(report)
    sustained(report)
    report.write()


if __name__ == "__main__":
    main()
