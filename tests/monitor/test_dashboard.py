"""The dashboard page, loaded in headless Chromium, draws the monitor's data."""

from __future__ import annotations

import asyncio
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
