"""The monitor process: /metrics in Prometheus text format, /status JSON, psutil samples, clean exit."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluiceway import MonitorConfig, PerformanceMonitor
from sluiceway.histogram import LatencyHistogram
from sluiceway.monitor import PipelineSample
from sluiceway.monitor.exposition import LATENCY_BUCKETS, latency_buckets

#: Generous: a loaded 2-core CI machine may take seconds to start a Python process.
WAIT = 60.0


async def wait_for(condition: Callable[[], Awaitable[Any]], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def config() -> MonitorConfig:
    return MonitorConfig(metric_collection_interval=0.1, performance_check_interval=0.2, http_port=0)


def test_metrics_parse_with_prometheus_parser() -> None:
    """/metrics parses with prometheus_client's parser and carries counters, gauges and a histogram with the right
    types.
    """

    async def scenario() -> None:
        async with PerformanceMonitor(config()) as monitor, aiohttp.ClientSession() as http:
            assert monitor.http_url is not None and monitor.http_url.startswith("http://127.0.0.1:")
            for i in range(200):
                monitor.record_message_latency(f"m{i}", 0.002 * (i % 50 + 1), success=i % 20 != 0)
            monitor.record_metric("sheets_cache_hit_ratio", 0.75, sheet="tenants")

            async def scrape() -> str | None:
                async with http.get(monitor.http_url + "/metrics") as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"].startswith("text/plain")
                    text = await response.text()
                return (
                    text
                    if "sluiceway_messages_completed_total 190.0" in text
                    and "sluiceway_process_cpu_seconds_total" in text
                    else None
                )

            text = await wait_for(scrape, "metrics with the recorded messages and a resource sample")
            families = {f.name: f for f in text_string_to_metric_families(text)}
            assert families["sluiceway_messages_completed"].type == "counter"
            assert families["sluiceway_messages_failed"].samples[0].value == 10
            assert families["sluiceway_workers"].type == "gauge"
            histogram = families["sluiceway_message_latency_seconds"]
            assert histogram.type == "histogram"
            buckets = [s for s in histogram.samples if s.name.endswith("_bucket")]
            counts = [s.value for s in buckets]
            assert counts == sorted(counts) and counts[-1] == 200 and buckets[-1].labels["le"] == "+Inf"
            assert next(s.value for s in histogram.samples if s.name.endswith("_count")) == 200
            roles = {s.labels["role"] for s in families["sluiceway_process_resident_memory_bytes"].samples}
            assert roles == {"supervisor", "monitor"}
            custom = families["sluiceway_custom_sheets_cache_hit_ratio"].samples[0]
            assert custom.labels == {"sheet": "tenants"} and custom.value == 0.75

    asyncio.run(scenario())


def test_status_json_and_dashboard_assets() -> None:
    """/status returns the report and the dashboard series; / and its static assets are served by the app."""

    async def scenario() -> None:
        async with PerformanceMonitor(config()) as monitor, aiohttp.ClientSession() as http:
            monitor.record_message_latency("m", 0.05)

            async def status() -> Any:
                async with http.get(monitor.http_url + "/status") as response:
                    body = await response.json()
                ready = (
                    body["report"]
                    and body["report"]["completed_total"] == 1
                    and len(body["series"].get("throughput", [])) >= 2
                )
                return body if ready else None

            body = await wait_for(status, "a status with the recorded message")
            assert body["report"]["latency"][0]["max"] == 0.05
            assert body["resources"]["machine"]["cpu_count"] >= 1
            for path, kind in (
                ("/", "text/html"),
                ("/static/dashboard.js", "javascript"),
                ("/static/dashboard.css", "text/css"),
            ):
                async with http.get(monitor.http_url + path) as response:
                    assert response.status == 200 and kind in response.headers["Content-Type"]
            assert monitor.current_report().resources is not None

    asyncio.run(scenario())


def test_monitor_process_exits_on_stop() -> None:
    """Stopping the monitor ends its process; nothing is left running."""

    async def scenario() -> int:
        monitor = PerformanceMonitor(config())
        await monitor.start()
        assert monitor._process is not None
        pid = monitor._process.pid
        assert pid is not None and psutil.pid_exists(pid)
        await monitor.stop()
        return pid

    pid = asyncio.run(scenario())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_latency_buckets_are_cumulative_and_exact_up_to_relative_error() -> None:
    """Each Prometheus bucket counts the values at or below its bound, up to the histogram's 1% error."""
    h = LatencyHistogram()
    values = [0.0, 0.0005, 0.003, 0.0099, 0.2, 0.26, 1.0, 100.0]
    for v in values:
        h.record(v)
    buckets = dict(latency_buckets(h))
    for bound in LATENCY_BUCKETS:
        assert buckets[repr(bound)] == sum(1 for v in values if v <= bound * 1.01)
    assert buckets["+Inf"] == len(values)


def test_port_in_use_is_a_clear_error() -> None:
    """A monitor asked for a port that is taken fails to start with an error naming the address."""

    async def scenario() -> None:
        async with PerformanceMonitor(config()) as first:
            assert first.http_url is not None
            port = int(first.http_url.rsplit(":", 1)[1])
            second = PerformanceMonitor(MonitorConfig(http_port=port))
            try:
                await second.start()
            except RuntimeError as error:
                assert f"127.0.0.1:{port}" in str(error)
            else:
                raise AssertionError("a second monitor started on a port already in use")
            finally:
                await second.stop()

    asyncio.run(scenario())


def test_workers_are_sampled_in_the_monitor_process() -> None:
    """The engine's worker pids are sampled by psutil in the monitor process and reported per process."""
    from .fake_engine import FakeEngine

    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:

        async def scenario() -> None:
            engine = FakeEngine(auto_scaling=False)
            engine.pids = [worker.pid]
            monitor = PerformanceMonitor(config())
            monitor.on_start(engine)

            async def sampled() -> bool:
                resources = monitor.current_report().resources
                return resources is not None and any(
                    p.pid == worker.pid and p.role == "worker" for p in resources.processes
                )

            await wait_for(sampled, "a resource sample that includes the worker")
            assert monitor.http_url is not None
            await monitor.on_stop()

        asyncio.run(scenario())
    finally:
        worker.kill()
        worker.wait()


def _scrape_real_metrics() -> str:
    """/metrics of a real monitor that has latencies, failures (so an alert), a resource sample,
    custom metrics whose labels Prometheus reserves or refuses, and the pipeline after the engine."""

    async def scenario() -> str:
        async with PerformanceMonitor(config()) as monitor:
            monitor.set_pipeline(
                lambda: PipelineSample(
                    sender_queued=3, sender_sent=40, sender_retries=5, throttle_events=2, breaker="half_open"
                )
            )
            for i in range(200):
                monitor.record_message_latency(f"m{i}", 0.002 * (i % 50 + 1), success=i % 20 != 0)
                monitor.record_reply_latency(0.05 * (i % 10 + 1))
            monitor.record_metric("reserved_labels", 1.0, quantile="0.5", le="1", __x="y", sheet="units")
            assert monitor.http_url is not None
            url = monitor.http_url + "/metrics"

            async def scrape() -> str | None:
                text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
                wanted = (
                    "completed_total 190.0",
                    "sluiceway_process_cpu_seconds_total",
                    "sluiceway_alert_active{",
                    "sluiceway_reply_latency_seconds_count 200.0",
                    "sluiceway_sender_queue_messages 3.0",
                )
                return text if all(part in text for part in wanted) else None

            text: str = await wait_for(scrape, "metrics with latencies, an alert and a resource sample")
            return text

    return asyncio.run(scenario())


def test_metrics_use_quantile_and_le_labels_only_where_prometheus_allows() -> None:
    """Only a summary has a ``quantile`` label, only a histogram an ``le``; quantiles are gauges named per quantile."""
    families = {f.name: f for f in text_string_to_metric_families(_scrape_real_metrics())}
    for family in families.values():
        for sample in family.samples:
            assert family.type == "summary" or "quantile" not in sample.labels, (family.name, sample)
            assert family.type == "histogram" or "le" not in sample.labels, (family.name, sample)
    for name in ("p50", "p95", "p99"):
        quantile = families[f"sluiceway_message_latency_{name}_seconds"]
        assert quantile.type == "gauge"
        assert {s.labels["window"] for s in quantile.samples} == {"60s", "300s", "900s"}
        assert all(0.002 <= s.value <= 0.1 for s in quantile.samples)
    p50 = families["sluiceway_message_latency_p50_seconds"].samples[0].value
    assert p50 <= families["sluiceway_message_latency_p99_seconds"].samples[0].value
    # The pipeline after the engine: reply-latency quantiles per window, the breaker as one state set to 1.
    for name in ("p50", "p95", "p99"):
        assert families[f"sluiceway_reply_latency_{name}_seconds"].type == "gauge"
    assert families["sluiceway_reply_latency_seconds"].type == "histogram"
    breaker = {s.labels["state"]: s.value for s in families["sluiceway_sender_breaker_state"].samples}
    assert breaker == {"closed": 0.0, "half_open": 1.0, "open": 0.0}
    assert families["sluiceway_sender_retries"].type == "counter"
    [custom] = families["sluiceway_custom_reserved_labels"].samples
    assert custom.labels == {"label_quantile": "0.5", "label_le": "1", "label___x": "y", "sheet": "units"}


def test_metrics_pass_promtool() -> None:
    """``promtool check metrics`` (Prometheus's own linter) finds nothing in the monitor's real output."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package: prometheus)")
    check = subprocess.run([promtool, "check", "metrics"], input=_scrape_real_metrics(), capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr
