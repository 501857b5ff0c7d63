"""The PerformanceMonitor's cost: ``python -m bench monitor``.

Measures, medians of ``REPEAT`` runs, written to ``bench/results/monitor.json``:

- ``record_message_latency`` calls per second against ``prometheus_client``'s
  ``Histogram.observe`` (target: at least as fast), interleaved in the same run;
- the supervisor's cost of one collection (closing a slot, windows, history,
  anomalies, snapshot) at 16 workers, in microseconds;
- the monitor process's CPU at a 1 s collection interval while it samples the
  supervisor and 16 worker processes (idle Python processes standing in for workers)
  and serves the snapshot (target: at most 2% of one core);
- a 2-worker engine's no-op throughput with the monitor attached (1 s interval, monitor
  process and HTTP on) against the same engine without it, alternating runs
  (target: at least 97%).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import sys
import time

import psutil
from prometheus_client import CollectorRegistry, Histogram

from bench.harness import REPEAT, Comparison, Report, header, interleaved_rates, scaled
from sluiceway import MonitorConfig, PerformanceMonitor
from sluiceway.engine import MessageParallelizer, ParallelizerConfig, Statistics

#: Latencies recorded per timed run.
RECORDS = scaled(200_000)
#: Worker processes the monitor samples in the CPU measurement.
WORKERS = 16
#: Seconds of monitor-process CPU measured per repetition.
CPU_SECONDS = max(2.0, 10.0 * min(1.0, scaled(100) / 100))
#: The issue's budget for the monitor process: percent of one core.
CPU_BUDGET_PERCENT = 2.0


class IdleEngine:
    """An EngineView over real but idle worker processes."""

    def __init__(self, pids: list[int]) -> None:
        self.config = ParallelizerConfig(
            default_worker_count=1, min_workers=1, max_workers=WORKERS, enable_auto_scaling=False, worker_concurrency=8
        )
        self._pids = pids

    def get_statistics(self) -> Statistics:
        return Statistics(
            enqueued=0,
            completed=0,
            failed_attempts=0,
            retried=0,
            dead_lettered=0,
            in_flight=0,
            queued=0,
            queue_depths=[0, 0, 0],
            backpressure=False,
            worker_count=len(self._pids),
            workers=[],
            throughput_1s=0.0,
            throughput_10s=0.0,
            throughput_60s=0.0,
            latency_p50=0.0,
            latency_p95=0.0,
            latency_p99=0.0,
            uptime=0.0,
        )

    def publish_latencies(self) -> None:
        """Idle: no completions to hand over."""

    def worker_pids(self) -> list[int]:
        return self._pids

    async def scale_to(self, n: int) -> None:
        raise AssertionError("autoscaling is off in this benchmark")


def bench_record(report: Report) -> None:
    latencies = [random.lognormvariate(-4.0, 1.0) for _ in range(RECORDS)]
    monitor = PerformanceMonitor(MonitorConfig(monitor_process=False))
    histogram = Histogram("bench_latency_seconds", "latency", registry=CollectorRegistry())

    def ours() -> int:
        record = monitor.record_message_latency
        for latency in latencies:
            record("id", latency, True)
        return len(latencies)

    def theirs() -> int:
        observe = histogram.observe
        for latency in latencies:
            observe(latency)
        return len(latencies)

    rates = interleaved_rates({"ours": ours, "theirs": theirs})
    report.add(
        Comparison(
            case="record_message_latency",
            peer="prometheus Histogram.observe",
            ours=rates["ours"][0],
            theirs=rates["theirs"][0],
            unit="calls/s",
            target=1.0,
            samples_ours=rates["ours"][1],
            samples_theirs=rates["theirs"][1],
        )
    )


async def measure_monitor_cpu(report: Report) -> None:
    workers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"]) for _ in range(WORKERS)]
    try:
        config = MonitorConfig(metric_collection_interval=1.0, http_port=0)
        monitor = PerformanceMonitor(config)
        monitor.on_start(IdleEngine([w.pid for w in workers]))
        deadline = time.monotonic() + 120
        while (
            monitor.current_report().resources is None
            or len(monitor.current_report().resources.processes) < WORKERS + 2
        ) and time.monotonic() < deadline:  # type: ignore[union-attr]
            await asyncio.sleep(0.1)
        assert monitor._process is not None and monitor._process.pid is not None
        process = psutil.Process(monitor._process.pid)
        await asyncio.sleep(2.0)  # past start-up
        shares = []
        for _ in range(REPEAT):
            before, start = process.cpu_times(), time.monotonic()
            await asyncio.sleep(CPU_SECONDS)
            after, elapsed = process.cpu_times(), time.monotonic() - start
            used = (after.user - before.user) + (after.system - before.system)
            shares.append(100.0 * used / elapsed)
        share = statistics.median(shares)
        report.add(
            Comparison(
                case=f"monitor process CPU, 1 s, {WORKERS} workers",
                peer=f"budget {CPU_BUDGET_PERCENT:g}% of a core",
                ours=share,
                theirs=CPU_BUDGET_PERCENT,
                unit="% of one core (lower is better)",
                higher_is_better=False,
                target=1.0,
                samples_ours=shares,
            )
        )
        report.figure("monitor process CPU % of one core (median)", share)

        collects = []
        for _ in range(REPEAT * 20):
            start = time.perf_counter()
            monitor.collect()
            collects.append(time.perf_counter() - start)
        report.figure("supervisor cost of one collection (µs, median)", 1e6 * statistics.median(collects))
        await monitor.on_stop()
    finally:
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.wait()


#: No-op messages per engine run in the monitor-on/off comparison.
ENGINE_MESSAGES = scaled(300_000)


async def engine_noop_rate(monitored: bool) -> float:
    """No-op messages per second through a 2-worker engine, with or without the monitor attached."""
    config = ParallelizerConfig(
        default_worker_count=2,
        min_workers=2,
        max_workers=2,
        enable_auto_scaling=False,
        queue_high_water_mark=ENGINE_MESSAGES + 1,
        queue_low_water_mark=ENGINE_MESSAGES,
    )
    monitor = PerformanceMonitor(MonitorConfig(metric_collection_interval=1.0, http_port=0)) if monitored else None
    async with MessageParallelizer("sluiceway.testing.handlers:noop", config, monitor=monitor) as engine:
        if monitor is not None:
            deadline = time.monotonic() + 120
            while monitor.http_url is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the monitor process is up before timing starts
        start = time.perf_counter()
        for i in range(ENGINE_MESSAGES):
            engine.enqueue_nowait(None)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let the supervisor dispatch while we enqueue
        await engine.wait_for_completion()
        return ENGINE_MESSAGES / (time.perf_counter() - start)


def bench_engine_overhead(report: Report) -> None:
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(REPEAT):
        for monitored in (False, True):
            rates[monitored].append(asyncio.run(engine_noop_rate(monitored)))
    report.add(
        Comparison(
            case="engine no-op throughput, monitor on",
            peer="same engine, monitor off",
            ours=statistics.median(rates[True]),
            theirs=statistics.median(rates[False]),
            unit="msg/s",
            target=0.97,
            samples_ours=rates[True],
            samples_theirs=rates[False],
        )
    )


def main() -> None:
    report = Report("monitor")
    header("PerformanceMonitor")
    bench_record(report)
    asyncio.run(measure_monitor_cpu(report))
    bench_engine_overhead(report)
    report.write()


if __name__ == "__main__":
    main()
