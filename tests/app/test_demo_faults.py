"""``sluiceway demo --faults``: a kill -9 of the whole runtime mid-run, a restart on the same state_dir, nothing lost;
and the report it writes, loaded in headless Chromium."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sluiceway.demo.report import nice_ticks
from sluiceway.demo.run import DemoOptions, run_demo
from sluiceway.demo.tenants import Sent
from sluiceway.demo.verify import verify

from ..monitor.test_dashboard import chromium, dump_dom, is_one_two_five


def test_demo_with_faults_survives_a_kill_of_the_whole_runtime_and_reports_it(tmp_path: Path) -> None:
    """Every message gets one reply (uncertain re-sends excepted) across the kill; the report shows the recovery."""
    browser = chromium()
    result = asyncio.run(
        run_demo(DemoOptions(conversations=100, messages=3, rate=80, faults=True, live=False, report_dir=str(tmp_path)))
    )
    assert result.verdict.ok, result.verdict
    recovery = result.recovery
    assert recovery is not None
    # The kill came while work was in flight, and Meta's side had to re-deliver what got no 200.
    assert recovery.in_flight > 0 and recovery.redelivered > 0
    assert 0 < recovery.restart <= recovery.first_200
    assert recovery.first_reply is not None and recovery.first_reply > recovery.restart
    labels = [fault.label for fault in result.faults]
    assert any(label.startswith("runtime killed") for label in labels)
    assert any(label.startswith("runtime restarted on the same state_dir") for label in labels)
    assert any(label.startswith("SIGKILL of worker") for label in labels)
    assert [fault.t for fault in result.faults] == sorted(fault.t for fault in result.faults)
    # The runtime was down for a while: the samples say so, and its counters run on across the restart.
    assert any(not s.up for s in result.snapshots)
    before_kill = max(s.inbound for s in result.snapshots if s.t <= recovery.killed_at)
    assert result.snapshots[-1].inbound > before_kill > 0
    document = json.loads((tmp_path / "demo-report.json").read_text())
    assert document["recovery"]["redelivered"] == recovery.redelivered
    assert (tmp_path / "demo-runtime.log").exists()

    dom = dump_dom(browser, (tmp_path / "demo-report.html").as_uri())
    for text in ("Settings", "offered load", "Restart after kill -9", "webhooks re-delivered", "runtime killed"):
        assert text in dom, text
    faults_listed = re.findall(r"<li>([\d.]+) s: ", dom)
    assert len(faults_listed) == len(result.faults) and faults_listed == sorted(faults_listed, key=float)
    charts = re.findall(r'<svg class="chart" data-title="([^"]+)"(.*?)</svg>', dom, re.S)
    titles = [title for title, _ in charts]
    assert any(title.startswith("Backlog: replies the sender holds") for title in titles)
    for title, body in charts:
        # Every chart marks every fault on its time axis and draws its series with points.
        assert body.count('class="fault-marker"') == len(result.faults), title
        assert all(int(n) >= 3 for n in re.findall(r'data-points="(\d+)"', body)), title
        x_ticks = re.findall(r'class="x-tick"[^>]*>([^<]+)<', body)
        assert x_ticks[0] == "0 s" and len(x_ticks) >= 3 and all(t.endswith(" s") for t in x_ticks), title
    latency = next(body for title, body in charts if title.startswith("Reply latency"))
    y_ticks = re.findall(r'class="y-tick"[^>]*>([^<]+)<', latency)
    assert y_ticks[0] == "0 ms" and all(t.endswith(" ms") for t in y_ticks)
    backlog = next(body for title, body in charts if title.startswith("Backlog"))
    points = re.search(r'data-name="sender backlog" data-points="\d+"[^>]*points="([^"]+)"', backlog)
    assert points is not None
    heights = {pair.split(",")[1] for pair in points.group(1).split()}
    assert len(heights) > 1, "the sender's backlog is drawn flat: it never held a reply"


@given(high=st.floats(min_value=1e-3, max_value=1e9, allow_nan=False))
def test_ticks_start_at_zero_on_a_one_two_five_step_and_end_above_the_highest_value(high: float) -> None:
    ticks = nice_ticks(high)
    steps = {round(b - a, 6) for a, b in itertools.pairwise(ticks)}
    assert ticks[0] == 0 and ticks[-1] > high and 3 <= len(ticks) <= 12
    assert len({round(s / max(steps), 6) for s in steps}) == 1 and is_one_two_five(ticks[1])


def test_the_verdict_allows_as_many_duplicates_as_uncertain_re_sends_and_no_more() -> None:
    class Record:
        def __init__(self, to: str, wamid: str) -> None:
            self.at = 1.0
            self.message = type("M", (), {"to": to, "context": type("C", (), {"message_id": wamid})()})()

    conversations = [[Sent("15550001", "w1", 0, "hi"), Sent("15550001", "w2", 1, "again")]]
    twice = [Record("15550001", "w1"), Record("15550001", "w1"), Record("15550001", "w2")]
    assert verify(conversations, twice, uncertain_resends=1).ok
    assert not verify(conversations, twice, uncertain_resends=0).ok
    assert not verify(conversations, twice[:1], uncertain_resends=5).ok  # w2 missing
