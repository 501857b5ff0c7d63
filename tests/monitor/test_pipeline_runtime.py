"""The bot runtime's monitor sees the whole pipeline: exact counts from start-up, the sender during a fault."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from sluiceway.app.runtime import Runtime
from sluiceway.app.secret import Secret
from sluiceway.app.settings import Settings
from sluiceway.engine import ParallelizerConfig
from sluiceway.examples.property_bot import SHEETS
from sluiceway.journal import Journal
from sluiceway.monitor import MonitorConfig
from sluiceway.testing import SheetsEmulator, WhatsAppEmulator
from sluiceway.testing.webhooks import signed, text_message
from sluiceway.whatsapp import BreakerConfig, RecipientLimit, SenderConfig, WhatsAppCloudTransport

from .test_dashboard import canvases, chromium, dump_dom

PROPERTY_BOT = "sluiceway.examples.property_bot.app:bot"
SECRET = "pipeline-secret"
#: Bounds a broken run; every wait polls a condition.
WAIT = 120.0


@asynccontextmanager
async def running(
    state_dir: Path, monitor: MonitorConfig
) -> AsyncIterator[tuple[Runtime, WhatsAppEmulator, aiohttp.ClientSession]]:
    """The property bot's runtime (one worker) against both emulators, and an HTTP session."""
    async with (
        SheetsEmulator() as sheets,
        WhatsAppEmulator(throughput=500.0, pair_limit=100, pair_window=1.0, app_secret=SECRET) as api,
        aiohttp.ClientSession() as http,
    ):
        for name, path in SHEETS.items():
            sheets.load_csv("sheet", name, path)
        settings = Settings(
            whatsapp_app_secret=Secret(SECRET),
            whatsapp_verify_token=Secret("verify"),
            whatsapp_phone_number_id=api.phone_number_id,
            spreadsheet_id="sheet",
            sheets_api_endpoint=sheets.url,
            sheets_read_requests_per_minute=600,
            port=0,
            admin_port=0,
            monitor_port=0,
            workers=1,
            state_dir=str(state_dir),
        )
        runtime = Runtime(
            PROPERTY_BOT,
            settings,
            transport=WhatsAppCloudTransport(api.phone_number_id, api.access_token, base_url=api.base_url),
            engine_config=ParallelizerConfig(
                default_worker_count=1, min_workers=1, max_workers=1, enable_auto_scaling=False
            ),
            # Retries and the breaker recover in about a second, not the production 30 s: the test waits for them.
            sender_config=msgspec.structs.replace(
                SenderConfig.cloud_api(500, per_recipient=RecipientLimit(100, 1.0)),
                initial_backoff=0.2,
                breaker=BreakerConfig(open_duration=1.0, window=5.0),
            ),
            monitor_config=monitor,
        )
        await runtime.start()
        api.webhook_url = runtime.webhook_url
        try:
            yield runtime, api, http
        finally:
            if runtime.running:
                await runtime.stop()


async def say(http: aiohttp.ClientSession, runtime: Runtime, count: int, prefix: str) -> None:
    for n in range(count):
        body, headers = signed(text_message(f"1555000{n:04d}", f"wamid.{prefix}.{n}", "is 3D available?"), SECRET)
        async with http.post(runtime.webhook_url, data=body, headers=headers) as response:
            assert response.status == 200


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_counts_equal_the_engines_for_a_run_shorter_than_one_collection_interval(tmp_path: Path) -> None:
    """With a collection interval longer than the run, the final report still counts every message and reply."""
    config = MonitorConfig(metric_collection_interval=600.0, performance_check_interval=600.0, monitor_process=False)

    async def scenario() -> None:
        async with running(tmp_path, config) as (runtime, api, http):
            await say(http, runtime, 20, "short")
            await until(lambda: len(api.accepted) == 20, "20 replies")
            assert runtime.monitor is not None and runtime.engine is not None
            summary = await runtime.stop()
            report = runtime.monitor.current_report()
        assert summary.handled == summary.sent == 20
        assert report.completed_total == 20 and report.failed_total == 0
        assert report.pipeline is not None
        assert report.pipeline.replies_timed == 20 and report.pipeline.sample.sender_sent == 20
        assert report.pipeline.sample.sender_queued == 0
        assert report.pipeline.sample.cache_hits + report.pipeline.sample.cache_misses > 0

    asyncio.run(scenario())


def test_sender_figures_reach_metrics_status_and_the_dashboard_during_an_outage(tmp_path: Path) -> None:
    """The WhatsApp API is down for a while (the breaker opens) and then refuses with 429s: retries, throttles,
    the breaker and the reply latency show on /metrics, in /status and on the dashboard page (headless
    Chromium), with data points."""
    browser = chromium()
    config = MonitorConfig(metric_collection_interval=0.2, performance_check_interval=0.5, http_port=0)

    async def scenario() -> tuple[str, dict[str, Any], dict[str, float]]:
        async with running(tmp_path, config) as (runtime, api, http):
            assert runtime.monitor is not None and runtime.monitor.http_url is not None
            url = runtime.monitor.http_url
            api.outage(1.5)
            api.fail_next(3, status=429, code=130429)  # once the outage is over
            await say(http, runtime, 12, "outage")
            await until(lambda: len(api.accepted) == 12, "12 replies after the outage")

            metrics: dict[str, float] = {}

            async def scraped() -> bool:
                async with http.get(url + "/metrics") as response:
                    text = await response.text()
                metrics.clear()
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        if not sample.labels:
                            metrics[sample.name] = sample.value
                return metrics.get("sluiceway_reply_latency_seconds_count") == 12.0

            deadline = time.monotonic() + WAIT
            while not await scraped():
                assert time.monotonic() < deadline, metrics
                await asyncio.sleep(0.1)
            async with http.get(url + "/status") as response:
                status = await response.json()
            dom = await asyncio.to_thread(dump_dom, browser, url + "/")
            return dom, status, metrics

    dom, status, metrics = asyncio.run(scenario())
    assert metrics["sluiceway_sender_retries_total"] > 0 and metrics["sluiceway_sender_throttle_events_total"] > 0
    assert metrics["sluiceway_sender_sent_total"] == 12.0
    # The outage lasted 1.5 s, so some tenant waited at least that long for the reply.
    assert metrics["sluiceway_reply_latency_seconds_sum"] >= 1.5
    pipeline = status["report"]["pipeline"]
    assert pipeline["sample"]["sender_retries"] > 0 and pipeline["replies_timed"] == 12
    assert pipeline["reply_latency"][0]["max"] >= 1.5
    series = status["series"]
    for name in ("reply_latency_p95", "sender_queue", "sender_retries_per_second", "breaker", "journal_pending"):
        assert series[name], name
    assert max(value for _, value in series["sender_queue"]) > 0  # the backlog was seen while it existed
    assert max(value for _, value in series["breaker"]) == 1.0  # and the breaker open during the outage
    drawn = {chart["data-series"]: int(chart.get("data-points", "0")) for chart in canvases(dom)}
    for chart in (
        "reply_latency_p50,reply_latency_p95,reply_latency_p99",
        "sender_queue",
        "sender_retries_per_second,throttle_events_per_second,pair_rate_holds_per_second",
        "sender_error_rate_percent",
        "breaker",
        "cache_hit_rate_percent",
    ):
        assert drawn[chart] >= 3, (chart, drawn)
    # The outage raised the sender's error-rate alert: listed, and marked on the charts' time axis.
    assert "alert: sender_error_rate_percent CRITICAL" in dom
    assert any(int(chart.get("data-events", "0")) > 0 for chart in canvases(dom))
    assert re.search(r"<b>[0-9.]+ (ms|µs)</b>reply p95", dom)
    assert "Sheets requests saved" in dom and "sender retries" in dom and "sender error rate" in dom
    assert re.search(r"<b>\d+ / [0-9.]+ MB</b>journal backlog", dom)


def test_a_restart_that_takes_over_unfinished_work_is_marked_on_the_charts(tmp_path: Path) -> None:
    """A start on a journal holding an unfinished message marks a "restart" event; its reply still goes out."""
    inbound = {"id": "wamid.left", "sender": "15550009999", "type": "text", "text": "is 3D available?"}
    with Journal.open(tmp_path / "journal.sqlite3", sync="normal") as journal:
        journal.insert_payloads(1, [msgspec.msgpack.encode(inbound)], priority=1, enqueued_at=0.0, ordering_key="x")
    config = MonitorConfig(metric_collection_interval=600.0, performance_check_interval=600.0, monitor_process=False)

    async def scenario() -> None:
        async with running(tmp_path, config) as (runtime, api, _):
            await until(lambda: len(api.accepted) == 1, "the recovered message's reply")
            assert runtime.monitor is not None
            events = runtime.monitor.current_report().events
            assert [(e.kind, e.text) for e in events] == [
                ("restart", "restarted: 1 unfinished message(s) and 0 unsent reply(ies) taken over from the journal")
            ]

    asyncio.run(scenario())
