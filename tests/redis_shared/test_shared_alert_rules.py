"""The shipped Prometheus alert rules: valid for promtool, and every metric they name is in a real /metrics scrape."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import sluiceway.monitor
from sluiceway import MonitorConfig, PerformanceMonitor
from sluiceway.app.outbox import DurableOutbox
from sluiceway.engine import MessageParallelizer, ParallelizerConfig
from sluiceway.http import HttpClient
from sluiceway.whatsapp import BatchSender, OutboundMessage, SenderConfig, SendResult


class NoTransport:
    """The sender is only asked for its statistics here."""

    async def send(self, message: OutboundMessage) -> SendResult:
        raise AssertionError("nothing is sent in this test")


RULES = Path(sluiceway.monitor.__file__).with_name("alert_rules.yml")
METRIC_NAME = re.compile(r"\bsluiceway_[a-z0-9_]+\b")


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_metric_the_rules_use_is_exposed_by_a_node(tmp_path: Path) -> None:
    # Every expression is one ``expr:`` line (promtool, above, checks the file is the YAML it should be).
    expressions = re.findall(r"^\s*expr:\s*(.+)$", RULES.read_text(), flags=re.MULTILINE)
    used = {name for expr in expressions for name in METRIC_NAME.findall(expr)}
    assert len(expressions) == RULES.read_text().count("- alert:") and used

    async def scrape() -> str:
        monitor = PerformanceMonitor(
            MonitorConfig(metric_collection_interval=0.1, performance_check_interval=0.2, http_port=0)
        )
        # The runtime's sources: the sender and the reply outbox report through the monitor.
        sender = BatchSender(NoTransport(), SenderConfig())
        monitor.add_source("sender", sender.stats)
        monitor.add_source("outbox", DurableOutbox().stats)
        config = ParallelizerConfig(default_worker_count=1, min_workers=1, max_workers=1)
        async with MessageParallelizer(
            "sluiceway.testing.task_handlers:task_at_once", config, monitor=monitor, journal=tmp_path / "j.db"
        ) as engine:
            await engine.enqueue_many([{"n": i} for i in range(3)])
            await engine.wait_for_completion(30)
            deadline = time.monotonic() + 60
            while True:
                if monitor.http_url is not None:
                    async with HttpClient(monitor.http_url) as http:
                        response = await http.get("/metrics")
                        text = response.body.decode()
                    complete = (
                        "sluiceway_journal_pending_messages",
                        "sluiceway_process_cpu_seconds",
                        "sluiceway_sender",
                    )
                    if all(part in text for part in complete):
                        return text
                assert time.monotonic() < deadline, "no complete scrape in time"
                await asyncio.sleep(0.05)

    text = asyncio.run(scrape())
    families = list(text_string_to_metric_families(text))
    # A family counts with no sample too (sluiceway_alert_active while no alert is active): its HELP and TYPE are there.
    exposed = {family.name for family in families} | {s.name for family in families for s in family.samples}
    assert used <= exposed, f"the rules use metrics no node exposes: {sorted(used - exposed)}"
