"""The MessageParallelizer against the pools and task queues people use: ``python -m bench engine``.

With 2 workers on this machine it measures, medians of ``REPEAT`` interleaved runs:

- no-op handler throughput (``NOOP_MESSAGES`` messages, then ``wait_for_completion``) on
  two paths: one ``enqueue_message`` per message, and ``enqueue_many`` in batches of
  ``BATCH`` (the fair match for ``imap_unordered``, which is handed the whole iterable at
  once too); vs ``multiprocessing.Pool.imap_unordered`` at chunksize 1 and 256 and
  ``ProcessPoolExecutor.map``; and, when ``redis-server`` is installed, vs dramatiq and arq
  on a private local Redis (fewer messages: they are two orders slower). The batch path
  runs once more with the prefetch fixed at its floor, ``2 * worker_concurrency`` (what
  the adaptive prefetch buys). The supervisor's and the workers' CPU time per message
  are recorded too (where the time goes);
- a 5 ms ``asyncio.sleep`` handler's throughput against the Little's-law bound
  ``workers * worker_concurrency / 5 ms``;
- open-loop latency p50/p99 (scheduled send to result, so a stall counts against us) at
  1,000 and 10,000 msg/s offered, beside ``Pool.apply_async`` at the same schedule (each
  kept by a sleeping thread); also the sender's own lateness and p99 from the actual
  submit, to tell the generator's delay from the engine's;
- the raw IPC floor of the transport (msgpack frames over a pipe, one message per write
  and 256 per frame), and our no-op throughput as a share of it.

Writes ``bench/results/engine.json``.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import os
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

import msgspec
import psutil
import uvloop

from bench.engine import ipc, redis_peers, tasks
from bench.harness import REPEAT, Comparison, Report, header, interleaved_rates, scaled
from sluiceway.engine import Backpressure, MessageParallelizer, ParallelizerConfig
from sluiceway.histogram import LatencyHistogram

#: Worker processes on every side.
WORKERS = 2
#: Messages per no-op throughput run (ours and the multiprocessing peers).
NOOP_MESSAGES = scaled(200_000)
#: Payloads per ``enqueue_many`` call on the batch path.
BATCH = 10_000
#: Messages per run for ProcessPoolExecutor.map, dramatiq and arq (each far slower).
SLOW_PEER_MESSAGES = scaled(5_000)
#: Messages per run of the 5 ms I/O handler.
IO_MESSAGES = scaled(50_000)
#: Seconds each open-loop latency run offers load for.
LATENCY_SECONDS = 3.0 * max(0.2, min(1.0, float(os.environ.get("SLUICEWAY_BENCH_SCALE", "1"))))
#: The engine's configuration for every case (defaults but for the worker count and a
#: high-water mark that lets the producer run ahead: backpressure is not what is measured).
CONFIG = ParallelizerConfig(
    default_worker_count=WORKERS,
    min_workers=1,
    max_workers=WORKERS,
    queue_high_water_mark=20_000,
    queue_low_water_mark=10_000,
)
#: The batch path once more with the prefetch fixed at the adaptive one's floor: what
#: sizing it to a worker's pace buys.
FIXED_PREFETCH = CONFIG.prefetch
FIXED = msgspec.structs.replace(CONFIG, worker_prefetch=FIXED_PREFETCH)
NOOP = "sluiceway.testing.handlers:noop"
SLEEP_5MS = "sluiceway.testing.handlers:sleep_5ms"

# Targets from issue 3 (ours ÷ theirs, higher is better).
TARGET_VS_IMAP_1 = 5.0
TARGET_VS_IMAP_256 = 0.4
TARGET_VS_DRAMATIQ = 50.0
TARGET_IO_SHARE = 0.5
#: p99 latency bounds (seconds) per offered rate.
TARGET_P99 = {1_000: 0.002, 10_000: 0.010}


class Engine:
    """One started engine on its own uvloop, reused across repetitions of a case."""

    def __init__(self, handler: str, config: ParallelizerConfig = CONFIG) -> None:
        self.loop = uvloop.new_event_loop()
        self.engine = MessageParallelizer(handler, config)
        self.loop.run_until_complete(self.engine.start())
        #: (supervisor, all workers) CPU microseconds per message, one pair per throughput run.
        self.cpu: list[tuple[float, float]] = []

    def throughput(self, messages: int) -> int:
        """One ``enqueue_message`` per message."""

        async def run() -> None:
            enqueue = self.engine.enqueue_message
            for _ in range(messages):
                await enqueue(None)
            await self.engine.wait_for_completion()

        return self._timed_cpu(run, messages)

    def batch_throughput(self, messages: int) -> int:
        """``enqueue_many`` in batches of ``BATCH``."""
        payloads = [None] * min(BATCH, messages)

        async def run() -> None:
            enqueue_many = self.engine.enqueue_many
            for start in range(0, messages, BATCH):
                await enqueue_many(payloads[: min(BATCH, messages - start)])
            await self.engine.wait_for_completion()

        return self._timed_cpu(run, messages)

    def _timed_cpu(self, run: Callable[[], Any], messages: int) -> int:
        """Run, adding the supervisor's and the workers' CPU microseconds per message to ``cpu``."""
        processes = [psutil.Process()] + [psutil.Process(pid) for pid in self.engine.worker_pids()]
        before = [_cpu_seconds(p) for p in processes]
        self.loop.run_until_complete(run())
        after = [_cpu_seconds(p) for p in processes]
        spent = [(a - b) / messages * 1e6 for a, b in zip(after, before, strict=False)]
        self.cpu.append((spent[0], sum(spent[1:])))
        return messages

    def open_loop(self, rate: int, seconds: float, through_engine: bool = True) -> OpenLoop:
        """Submit at ``rate`` per second on a fixed schedule; latency from scheduled time to result.

        The schedule is kept by a thread that sleeps until each send is due and hands the
        submit to the engine's loop (as a socket event would wake it): the loop's own
        timers tick in milliseconds, which would make the sender, not the engine, late.
        Futures are not kept (a done callback counts them), so the sender adds no garbage
        for the collector to walk beyond what the engine itself makes. Without
        ``through_engine`` each message is done as soon as the loop picks it up: the
        latency of the schedule's handoff alone, this machine's floor under the engine's.
        """
        measured = OpenLoop()
        loop = self.loop
        count = int(rate * seconds)
        if not count:
            return measured
        all_done = loop.create_future()
        outstanding = count

        def settled() -> None:
            nonlocal outstanding
            outstanding -= 1
            if outstanding == 0:
                all_done.set_result(None)

        def finished(_: asyncio.Future[Any], due: float, sent: float) -> None:
            now = time.perf_counter()
            measured.scheduled.record(now - due)
            measured.submitted.record(now - sent)
            settled()

        def submit(due: float) -> None:
            sent = time.perf_counter()
            measured.lateness.record(sent - due)
            if not through_engine:
                measured.scheduled.record(sent - due)
                measured.submitted.record(0.0)
                settled()
                return
            try:
                future = self.engine.submit_nowait(None)
            except Backpressure:
                measured.refused += 1
                settled()
                return
            future.add_done_callback(partial(finished, due=due, sent=sent))

        def schedule() -> None:
            start = time.perf_counter() + 0.05
            for i in range(count):
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                loop.call_soon_threadsafe(submit, due)

        sender = threading.Thread(target=schedule, name="open-loop sender")
        sender.start()
        try:
            loop.run_until_complete(all_done)
        finally:
            sender.join()
        return measured

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.shutdown())
        self.loop.close()


class OpenLoop:
    """One open-loop run: latency from the scheduled send, from the actual submit, and the sender's lateness."""

    def __init__(self) -> None:
        self.scheduled = LatencyHistogram()
        self.submitted = LatencyHistogram()
        self.lateness = LatencyHistogram()
        #: Submits refused by backpressure (the engine fell behind the schedule).
        self.refused = 0


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _pool_open_loop(pool: Any, rate: int, seconds: float) -> LatencyHistogram:
    histogram = LatencyHistogram()
    count = int(rate * seconds)
    start = time.perf_counter() + 0.05
    results = []
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        results.append(
            pool.apply_async(tasks.echo, (due,), callback=lambda due: histogram.record(time.perf_counter() - due))
        )
    for result in results:
        result.wait()
    return histogram


def noop_throughput(report: Report) -> float:
    header(f"no-op handler throughput, {WORKERS} workers [msg/s]")
    ours = Engine(NOOP)
    fixed = Engine(NOOP, FIXED)
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(WORKERS)
    executor = ProcessPoolExecutor(WORKERS, mp_context=context)
    pool.map(tasks.noop, range(100))
    list(executor.map(tasks.noop, range(100)))

    def imap(chunksize: int) -> Callable[[], int]:
        def run() -> int:
            for _ in pool.imap_unordered(tasks.noop, range(NOOP_MESSAGES), chunksize=chunksize):
                pass
            return NOOP_MESSAGES

        return run

    def executor_map() -> int:
        for _ in executor.map(tasks.noop, range(SLOW_PEER_MESSAGES)):
            pass
        return SLOW_PEER_MESSAGES

    try:
        rates = interleaved_rates(
            {
                "ours": lambda: ours.throughput(NOOP_MESSAGES),
                "ours_batch": lambda: ours.batch_throughput(NOOP_MESSAGES),
                "ours_fixed": lambda: fixed.batch_throughput(NOOP_MESSAGES),
                "imap1": imap(1),
                "imap256": imap(256),
                "executor": executor_map,
            }
        )
    finally:
        ours.close()
        fixed.close()
        pool.terminate()
        executor.shutdown()
    mine, mine_samples = rates["ours"]
    batch, batch_samples = rates["ours_batch"]
    for key, peer, target in (
        ("imap1", "Pool.imap_unordered cs=1", TARGET_VS_IMAP_1),
        ("imap256", "Pool.imap_unordered cs=256", None),
        ("executor", "ProcessPoolExecutor.map", None),
    ):
        theirs, samples = rates[key]
        report.add(Comparison("no-op throughput", peer, mine, theirs, "msg/s", True, target, mine_samples, samples))
    imap256, imap256_samples = rates["imap256"]
    report.add(
        Comparison(
            "no-op throughput, enqueue_many",
            "Pool.imap_unordered cs=256",
            batch,
            imap256,
            "msg/s",
            True,
            TARGET_VS_IMAP_256,
            batch_samples,
            imap256_samples,
        )
    )
    fixed_rate, fixed_samples = rates["ours_fixed"]
    report.add(
        Comparison(
            "enqueue_many, adaptive prefetch",
            f"worker_prefetch={FIXED_PREFETCH} (fixed)",
            batch,
            fixed_rate,
            "msg/s",
            True,
            None,
            batch_samples,
            fixed_samples,
        )
    )
    report.add(
        Comparison(
            "enqueue_many vs enqueue_message",
            "enqueue_message",
            batch,
            mine,
            "msg/s",
            True,
            None,
            batch_samples,
            mine_samples,
        )
    )
    # Throughput runs alternate single, batch, single, batch... (interleaved_rates).
    for name, runs in (
        ("enqueue_message", ours.cpu[0::2]),
        ("enqueue_many", ours.cpu[1::2]),
        (f"enqueue_many, worker_prefetch={FIXED_PREFETCH}", fixed.cpu),
    ):
        report.figure(f"CPU per message, {name}: supervisor [µs]", statistics.median(s for s, _ in runs))
        report.figure(f"CPU per message, {name}: workers [µs]", statistics.median(w for _, w in runs))
    if redis_peers.available():
        _redis_rows(report, mine, mine_samples)
    else:
        print("  (redis-server not installed: dramatiq and arq rows skipped)")
    return batch


def _redis_rows(report: Report, mine: float, mine_samples: list[float]) -> None:
    with redis_peers.redis_server() as url:
        os.environ[redis_peers.URL_VARIABLE] = url
        peers = importlib.reload(redis_peers)
        for name, measure, target in (
            ("dramatiq (redis)", peers.dramatiq_rate, TARGET_VS_DRAMATIQ),
            ("arq (redis)", peers.arq_rate, None),
        ):
            try:
                samples = [measure(url, SLOW_PEER_MESSAGES) for _ in range(REPEAT)]
            except ImportError as exc:
                print(f"  ({name} not installed: {exc}; pip install '.[bench]')")
                continue
            report.add(
                Comparison(
                    "no-op throughput",
                    name,
                    mine,
                    statistics.median(samples),
                    "msg/s",
                    True,
                    target,
                    mine_samples,
                    samples,
                )
            )


def io_throughput(report: Report) -> None:
    header("5 ms async I/O handler throughput vs Little's law [msg/s]")
    ours = Engine(SLEEP_5MS)
    try:
        rates = interleaved_rates({"ours": lambda: ours.throughput(IO_MESSAGES)})
    finally:
        ours.close()
    bound = WORKERS * CONFIG.worker_concurrency / 0.005
    mine, samples = rates["ours"]
    report.add(
        Comparison(
            "5 ms I/O throughput", "Little's-law bound", mine, bound, "msg/s", True, TARGET_IO_SHARE, samples, [bound]
        )
    )


def open_loop_latency(report: Report) -> None:
    header("open-loop latency p50 / p99 at offered load [ms]; ratio = bound ÷ ours")
    ours = Engine(NOOP)
    pool = multiprocessing.get_context("spawn").Pool(WORKERS)
    pool.map(tasks.noop, range(100))
    try:
        for rate in sorted(TARGET_P99):
            p50s, p99s, submitted_p99s, late_p99s, handoff_p99s, pool_p50s, pool_p99s = [], [], [], [], [], [], []
            for _ in range(REPEAT):
                handoff_p99s.append(
                    ours.open_loop(rate, LATENCY_SECONDS, through_engine=False).scheduled.quantile(0.99) * 1000
                )
                run = ours.open_loop(rate, LATENCY_SECONDS)
                p50s.append(run.scheduled.quantile(0.5) * 1000)
                p99s.append(run.scheduled.quantile(0.99) * 1000)
                submitted_p99s.append(run.submitted.quantile(0.99) * 1000)
                late_p99s.append(run.lateness.quantile(0.99) * 1000)
                if run.refused:
                    print(
                        f"  {run.refused} of {int(rate * LATENCY_SECONDS)} "
                        f"submits refused by backpressure at {rate:,} msg/s"
                    )
                h = _pool_open_loop(pool, rate, LATENCY_SECONDS)
                pool_p50s.append(h.quantile(0.5) * 1000)
                pool_p99s.append(h.quantile(0.99) * 1000)
            p50, p99 = statistics.median(p50s), statistics.median(p99s)
            report.add(
                Comparison(
                    f"p99 @ {rate:,} msg/s",
                    f"bound {TARGET_P99[rate] * 1000:g} ms",
                    p99,
                    TARGET_P99[rate] * 1000,
                    "ms",
                    False,
                    1.0,
                    p99s,
                    [],
                )
            )
            report.add(
                Comparison(
                    f"p99 @ {rate:,} msg/s",
                    "Pool.apply_async",
                    p99,
                    statistics.median(pool_p99s),
                    "ms",
                    False,
                    None,
                    p99s,
                    pool_p99s,
                )
            )
            report.figure(f"p50 @ {rate:,} msg/s ours [ms]", p50)
            report.figure(f"p99 @ {rate:,} msg/s ours, from actual submit [ms]", statistics.median(submitted_p99s))
            report.figure(f"p99 @ {rate:,} msg/s sender lateness [ms]", statistics.median(late_p99s))
            report.figure(
                f"p99 @ {rate:,} msg/s schedule handoff alone, no engine [ms]", statistics.median(handoff_p99s)
            )
            report.figure(f"p50 @ {rate:,} msg/s Pool.apply_async [ms]", statistics.median(pool_p50s))
    finally:
        ours.close()
        pool.terminate()


def ipc_floor(report: Report, noop_rate: float) -> None:
    """``noop_rate`` is the batch path's: the IPC floor is measured in frames too."""
    header("raw IPC floor of the transport (pipe, msgspec msgpack) [msg/s]")
    single = statistics.median(ipc.rate(scaled(100_000), 1) for _ in range(REPEAT))
    framed = statistics.median(ipc.rate(scaled(2_000_000), ipc.FRAME) for _ in range(REPEAT))
    report.figure("IPC floor, 1 message per write [msg/s]", single)
    report.figure(f"IPC floor, {ipc.FRAME} per frame [msg/s]", framed)
    report.figure("engine no-op throughput / framed IPC floor", noop_rate / framed)


def main() -> None:
    report = Report("engine")
    noop_rate = noop_throughput(report)
    io_throughput(report)
    open_loop_latency(report)
    ipc_floor(report, noop_rate)
    report.write()


if __name__ == "__main__":
    main()
