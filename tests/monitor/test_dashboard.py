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
