"""The dashboard page, loaded in headless Chromium, draws the monitor's data."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import re
import shutil
import subprocess
import tempfile
import time

import aiohttp
import pytest

from sluiceway import MonitorConfig, PerformanceMonitor

#: Seconds Chromium may take on a loaded CI machine.
BROWSER_TIMEOUT = 120


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        raise RuntimeError("chromium is not installed; .ci/run must apt-get install chromium")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def dump_dom(browser: str, url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=8000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=BROWSER_TIMEOUT,
            check=True,
        )
    return result.stdout


def test_dashboard_shows_data_points_in_headless_chromium() -> None:
    """The page fetches /status, draws every chart with data points and lists the workers' summary."""
    browser = chromium()

    async def scenario() -> str:
        config = MonitorConfig(metric_collection_interval=0.1, performance_check_interval=0.2, http_port=0)
        async with PerformanceMonitor(config) as monitor, aiohttp.ClientSession() as http:
            for i in range(50):
                monitor.record_message_latency(f"m{i}", 0.01 * (i + 1))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                async with http.get(monitor.http_url + "/status") as response:
                    series = (await response.json())["series"]
                if len(series.get("cpu_percent", [])) >= 3:
                    break
                await asyncio.sleep(0.05)
            assert monitor.http_url is not None
            return await asyncio.to_thread(dump_dom, browser, monitor.http_url + "/")

    dom = asyncio.run(scenario())
    drawn = dict(re.findall(r'data-series="([^"]+)"[^>]*data-points="(\d+)"', dom))
    assert int(drawn["throughput"]) >= 3
    assert int(drawn["latency_p50,latency_p95,latency_p99"]) >= 9
    assert int(drawn["cpu_percent"]) >= 3 and int(drawn["memory_percent"]) >= 3
    assert "msg/s (1 min)" in dom and "uptime" in dom
    charts = {chart["data-series"]: chart for chart in canvases(dom)}

    # Latency (0.01 to 0.5 s here) reads in milliseconds, on 1-2-5 ticks from 0, with room above the highest line.
    latency = charts["latency_p50,latency_p95,latency_p99"]
    ticks = latency["data-y-ticks"].split("|")
    assert ticks[0] == "0 ms" and all(t.endswith(" ms") for t in ticks) and len(ticks) >= 3
    values = [float(t.removesuffix(" ms")) for t in ticks]
    steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1 and is_one_two_five(steps.pop())
    assert float(latency["data-y-top"]) > float(latency["data-y-max"])  # a flat or top line is not on the edge
    assert re.search(r"<b>[0-9.]+ ms</b>p95 latency", dom)
    # Every drawn chart labels its y ticks with the unit and its x axis with time up to now.
    for series, suffix in (("throughput", "/s"), ("cpu_percent", " %"), ("memory_percent", " %")):
        assert all(t.endswith(suffix) for t in charts[series]["data-y-ticks"].split("|")), charts[series]
        x_ticks = charts[series]["data-x-ticks"].split("|")
        assert x_ticks[-1] == "now" and len(x_ticks) >= 2 and all(t.endswith(" s") for t in x_ticks[:-1])


def canvases(dom: str) -> list[dict[str, str]]:
    """The attributes of each ``<canvas>`` in ``dom``."""
    return [dict(re.findall(r'([\w-]+)="([^"]*)"', tag)) for tag in re.findall(r"<canvas[^>]*>", dom)]


def is_one_two_five(step: float) -> bool:
    """``step`` is 1, 2 or 5 times a power of ten."""
    exponent = math.floor(math.log10(step))
    return round(step / 10**exponent, 6) in (1.0, 2.0, 5.0)


def test_dashboard_lists_the_redis_cluster_nodes_and_partitions() -> None:
    """In Redis mode (a ``redis`` source shaped as ``cluster_status`` returns), the page lists each node and
    partition, marks a partition nobody holds, and hides the section without that source."""
    browser = chromium()
    cluster = {
        "nodes": [
            {
                "node": "box-a:8080",
                "partitions": [0, 1],
                "outstanding": 3,
                "completed": 120,
                "dead_lettered": 1,
                "refused_acks": 0,
                "heartbeat_age": 0.4,
            },
            {
                "node": "box-b:8080",
                "partitions": [2],
                "outstanding": 0,
                "completed": 98,
                "dead_lettered": 0,
                "refused_acks": 2,
                "heartbeat_age": 1.2,
            },
        ],
        "partitions": [
            {"partition": 0, "backlog": 5, "pending": 2, "holder": "box-a:8080", "lease_seconds_left": 21.5},
            {"partition": 1, "backlog": 0, "pending": 0, "holder": "box-a:8080", "lease_seconds_left": 20.0},
            {"partition": 2, "backlog": 7, "pending": 1, "holder": "box-b:8080", "lease_seconds_left": 3.0},
            {"partition": 3, "backlog": 4, "pending": 0, "holder": None, "lease_seconds_left": 0.0},
        ],
        "dead_letters": 1,
    }

    async def scenario(with_cluster: bool) -> str:
        config = MonitorConfig(metric_collection_interval=0.1, performance_check_interval=0.2, http_port=0)
        async with PerformanceMonitor(config) as monitor, aiohttp.ClientSession() as http:
            if with_cluster:
                monitor.add_source("redis", lambda: cluster)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                async with http.get(monitor.http_url + "/status") as response:
                    report = (await response.json())["report"]
                if report and (not with_cluster or "redis" in report["sources"]):
                    break
                await asyncio.sleep(0.05)
            assert monitor.http_url is not None
            return await asyncio.to_thread(dump_dom, browser, monitor.http_url + "/")

    dom = asyncio.run(scenario(True))
    assert '<section id="cluster">' in dom  # no longer hidden
    assert "2 node(s), 16 message(s) in the streams, 1 dead letter(s)" in dom
    assert re.search(r"<td>box-a:8080</td><td>0\.4 s ago</td><td>0 1</td><td>3</td><td>120</td>", dom)
    assert re.search(r'<tr class="unheld"><td>3</td><td>4</td><td>0</td><td>none</td>', dom)
    assert re.search(r"<td>2</td><td>7</td><td>1</td><td>box-b:8080</td><td>3\.0 s</td>", dom)
    assert '<section id="cluster" hidden="">' in asyncio.run(scenario(False))
