"""PerformanceMonitor on a manual clock, alone and attached to a scripted engine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import msgspec
import pytest

from sluiceway import MonitorConfig, PerformanceMonitor, Thresholds
from sluiceway.engine import LatencyDelta
from sluiceway.histogram import LatencyHistogram
from sluiceway.monitor import AutoscaleConfig
from sluiceway.monitor.profiling import has_profiler
from sluiceway.testing import ManualClock

from .fake_engine import FakeEngine

INTERVAL = 5.0


def make(clock: ManualClock, **overrides: Any) -> PerformanceMonitor:
    config = MonitorConfig(
        metric_collection_interval=INTERVAL,
        performance_check_interval=10.0,
        monitor_process=False,
        **overrides,
    )
    return PerformanceMonitor(config, clock=clock)


def test_standalone_report_windows_and_error_rate() -> None:
    """Recorded latencies show up as per-window min/avg/max/percentiles, throughput and error rate."""
    clock = ManualClock()
    monitor = make(clock)
    for i in range(100):
        monitor.record_message_latency(f"m{i}", 0.001 * (i + 1), success=i % 10 != 0)
    clock.advance(INTERVAL)
    monitor.tick()
    report = monitor.current_report()
    window = report.latency[0]
    assert window.count == 100
    assert window.min == 0.001 and window.max == 0.1
    assert window.avg == pytest.approx(0.0505)
    assert window.p50 == pytest.approx(0.0505, rel=0.02)
    assert window.p99 == pytest.approx(0.099, rel=0.02)
    assert report.throughput[0].rate == pytest.approx(100 / INTERVAL)
    assert report.error_rate_percent == pytest.approx(10.0)
    assert (report.completed_total, report.failed_total) == (90, 10)


def test_windows_forget_old_slots() -> None:
    """Latencies older than a window's span no longer count in that window but still do in longer ones."""
    clock = ManualClock()
    monitor = make(clock)
    monitor.record_message_latency("slow", 3.0)
    for _ in range(14):  # 70 s of collections
        clock.advance(INTERVAL)
        monitor.tick()
        monitor.record_message_latency("fast", 0.01)
    report = monitor.current_report()
    one_minute, five_minutes = report.latency[0], report.latency[1]
    assert one_minute.max == 0.01 and one_minute.count == 12
    assert five_minutes.max == 3.0 and five_minutes.count == 14


def test_historical_trend_has_a_point_per_collection() -> None:
    """Each collection adds one time-stamped point per metric to the history."""
    clock = ManualClock()
    monitor = make(clock)
    for i in range(6):
        for _ in range(i):
            monitor.record_message_latency(None, 0.02)
        clock.advance(INTERVAL)
        monitor.tick()
    points = monitor.historical_trend("throughput", 60.0)
    assert [p.t for p in points] == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    assert [p.value for p in points] == [i / INTERVAL for i in range(6)]
    assert len(monitor.historical_trend("throughput", 12.0)) == 3


def test_custom_metrics_are_reported_and_kept() -> None:
    """record_metric values appear in the report (last value per label set) and in history."""
    clock = ManualClock()
    monitor = make(clock)
    monitor.record_metric("cache_hit_ratio", 0.5, cache="sheets")
    monitor.record_metric("cache_hit_ratio", 0.8, cache="sheets")
    monitor.record_metric("cache_hit_ratio", 0.1, cache="other")
    clock.advance(INTERVAL)
    monitor.tick()
    custom = {tuple(m.labels.items()): m.value for m in monitor.current_report().custom}
    assert custom == {(("cache", "sheets"),): 0.8, (("cache", "other"),): 0.1}
    assert monitor.historical_trend("cache_hit_ratio{cache=sheets}", 60)[0].value == 0.8


@pytest.mark.parametrize(
    ("name", "value", "labels", "match"),
    [
        ("bad name", 1.0, {}, "metric name"),
        ("ok", float("nan"), {}, "finite"),
        ("ok", 1.0, {"bad-label": "x"}, "label name"),
    ],
)
def test_record_metric_rejects_bad_input(name: str, value: float, labels: dict[str, str], match: str) -> None:
    """A malformed metric name, label or value raises ValueError naming the problem."""
    with pytest.raises(ValueError, match=match):
        make(ManualClock()).record_metric(name, value, **labels)


def test_record_message_latency_rejects_negative() -> None:
    """A negative latency is refused, not silently counted."""
    with pytest.raises(ValueError, match="latency"):
        make(ManualClock()).record_message_latency("m", -1.0)


def test_sources_are_included_in_the_report() -> None:
    """A cache's or sender's statistics added with add_source appear in the report as plain data."""

    class CacheStats(msgspec.Struct):
        hits: int
        misses: int

    monitor = make(ManualClock())
    monitor.add_source("cache", lambda: CacheStats(hits=3, misses=1))
    assert monitor.current_report().sources == {"cache": {"hits": 3, "misses": 1}}


def test_latency_alert_raised_escalated_resolved_through_checks() -> None:
    """Check intervals evaluate p95 latency against the thresholds, with the alert's full lifecycle."""
    clock = ManualClock()
    monitor = make(clock, auto_optimize_enabled=False)

    def period(latency: float) -> None:
        for _ in range(20):
            monitor.record_message_latency(None, latency)
        clock.advance(INTERVAL)
        monitor.tick()
        clock.advance(INTERVAL)
        monitor.tick()

    period(0.1)
    assert monitor.alerts() == []
    period(0.7)
    assert [(a.metric, a.level) for a in monitor.alerts()] == [("message_latency_p95", "WARNING")]
    period(2.5)
    assert monitor.alerts()[0].level == "CRITICAL"
    assert monitor.current_report().alerts[0].level == "CRITICAL"
    period(0.1)
    assert monitor.alerts() == []
    assert monitor.alerts(active_only=False)[0].peak_level == "CRITICAL"


def test_error_rate_alert() -> None:
    """A failure share above the critical threshold raises a critical error-rate alert."""
    clock = ManualClock()
    monitor = make(clock, thresholds=Thresholds(error_rate_warning_percent=5, error_rate_critical_percent=10))
    for i in range(100):
        monitor.record_message_latency(None, 0.01, success=i % 5 != 0)
    clock.advance(10.0)
    monitor.tick()
    assert [(a.metric, a.level) for a in monitor.alerts()] == [("error_rate_percent", "CRITICAL")]


def test_critical_latency_triggers_a_profile() -> None:
    """With auto-optimisation on, latency turning critical profiles a process and the report shows it."""

    async def scenario() -> None:
        clock = ManualClock()
        monitor = make(clock, auto_profile_seconds=0.2)
        for _ in range(10):
            monitor.record_message_latency(None, 5.0)
        clock.advance(10.0)
        monitor.tick()
        deadline = time.monotonic() + 60
        while monitor.current_report().profile is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        profile = monitor.current_report().profile
        assert profile is not None and profile.pid == os.getpid() and profile.samples > 0
        assert any("run_forever" in f.function for f in profile.top)  # the sampled loop was idling

    asyncio.run(scenario())


def test_engine_statistics_feed_the_report() -> None:
    """Attached to an engine, counts are its totals since attaching and its latency deltas feed the histogram."""

    async def scenario() -> None:
        clock = ManualClock()
        engine = FakeEngine(auto_scaling=False)
        monitor = make(clock)
        monitor.on_start(engine)
        engine.stats.completed, engine.stats.failed_attempts = 100, 5
        clock.advance(INTERVAL)
        monitor.tick()
        engine.stats.completed, engine.stats.failed_attempts = 600, 5
        engine.stats.queue_depths = [1, 2, 3]
        delta = LatencyHistogram()
        for v in (0.01, 0.02, 0.03):
            delta.record(v)
        monitor.on_latencies(LatencyDelta(1234, delta))
        engine.stats.dead_lettered = 1
        clock.advance(INTERVAL)
        monitor.tick()
        report = monitor.current_report()
        assert report.completed_total == 600 and report.failed_total == 5 and report.dead_lettered_total == 1
        assert monitor.historical_trend("throughput", 60)[-1].value == 100.0
        assert report.queue_depths == [1, 2, 3] and report.workers == 2
        assert report.latency[0].count == 3 and report.latency[0].max == 0.03
        assert report.engine is not None and report.engine["completed"] == 600
        await monitor.on_stop()

    asyncio.run(scenario())


def test_autoscaling_drives_the_engine_up_and_down() -> None:
    """A sustained backlog scales the engine up through scale_to; idleness then scales it back down."""

    async def scenario() -> None:
        clock = ManualClock()
        engine = FakeEngine(min_workers=2, max_workers=8)
        autoscale = AutoscaleConfig(scale_up_sustain=10, scale_up_cooldown=10, idle_sustain=20, scale_down_cooldown=20)
        monitor = make(clock, autoscale=autoscale)
        monitor.on_start(engine)
        for i in range(10):
            engine.stats.queue_depths = [0, 2000 + 500 * i, 0]
            engine.stats.in_flight = 4 * engine.stats.worker_count
            clock.advance(INTERVAL)
            monitor.tick()
            await asyncio.sleep(0)
        assert engine.scaled_to[:2] == [3, 5]
        grown = engine.stats.worker_count
        engine.stats.queue_depths, engine.stats.in_flight = [0, 0, 0], 0
        for _ in range(60):
            clock.advance(INTERVAL)
            monitor.tick()
            await asyncio.sleep(0)
        assert engine.stats.worker_count == 2
        decisions = monitor.current_report().scaling
        assert [d.new for d in decisions if d.new < d.old] == list(range(grown - 1, 1, -1))
        assert all(d.reason for d in decisions)
        await monitor.on_stop()

    asyncio.run(scenario())


def test_a_scaling_decision_after_the_engine_stopped_is_no_failure(caplog: pytest.LogCaptureFixture) -> None:
    """When the engine shuts down before a scaling decision lands, the monitor logs no error."""

    async def scenario() -> None:
        clock = ManualClock()
        engine = FakeEngine(min_workers=2, max_workers=8)
        monitor = make(clock, autoscale=AutoscaleConfig(scale_up_sustain=10, scale_up_cooldown=10))
        monitor.on_start(engine)
        engine.stopped = True
        for i in range(10):
            engine.stats.queue_depths = [0, 2000 + 500 * i, 0]
            engine.stats.in_flight = 4 * engine.stats.worker_count
            clock.advance(INTERVAL)
            monitor.tick()
            await asyncio.sleep(0)
        assert monitor.current_report().scaling, "the backlog should have led to a scaling decision"
        assert engine.scaled_to == []
        await monitor.on_stop()

    with caplog.at_level("INFO", logger="sluiceway.monitor"):
        asyncio.run(scenario())
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("engine has stopped" in r.getMessage() for r in caplog.records)


def test_no_autoscaling_when_auto_optimize_disabled() -> None:
    """With auto_optimize_enabled off, a backlog never calls scale_to."""

    async def scenario() -> None:
        clock = ManualClock()
        engine = FakeEngine()
        monitor = make(clock, auto_optimize_enabled=False)
        monitor.on_start(engine)
        engine.stats.queue_depths = [0, 50_000, 0]
        for _ in range(20):
            clock.advance(INTERVAL)
            monitor.tick()
            await asyncio.sleep(0)
        assert engine.scaled_to == []
        await monitor.on_stop()

    asyncio.run(scenario())


SPIN = """
import time
from sluiceway.monitor import install_worker_profiler
install_worker_profiler()
def spin_forever():
    while True:
        sum(range(1000))
spin_forever()
"""


def test_profile_a_worker_process() -> None:
    """profile(worker=pid) returns the top functions of a real process that installed the profiler."""
    process = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        deadline = time.monotonic() + 60
        while not has_profiler(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        profile = asyncio.run(make(ManualClock()).profile(worker=process.pid, seconds=0.5))
        assert profile.pid == process.pid and profile.samples > 0
        assert profile.top[0].function == "spin_forever"
    finally:
        process.kill()
        process.wait()


def test_profile_refuses_a_process_without_profiler() -> None:
    """Profiling a pid that never installed the profiler is a clear ValueError."""
    with pytest.raises(ValueError, match="install_worker_profiler"):
        asyncio.run(make(ManualClock()).profile(worker=1, seconds=0.1))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"metric_collection_interval": 0}, "metric_collection_interval"),
        ({"anomaly_sigma": -1}, "anomaly_sigma"),
        ({"http_port": 70000}, "http_port"),
        ({"history_retention": 1.0, "metric_collection_interval": 5.0}, "history_retention"),
        ({"anomaly_alpha": 1.5}, "anomaly_alpha"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    """Invalid MonitorConfig values raise ValueError naming the field."""
    with pytest.raises(ValueError, match=field):
        MonitorConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cpu_warning_percent": 95, "cpu_critical_percent": 90}, "cpu_warning_percent"),
        ({"message_latency_warning": -1}, "message_latency_warning"),
        ({"hysteresis": 1.0}, "hysteresis"),
        ({"error_rate_critical_percent": 101}, "error_rate_critical_percent"),
    ],
)
def test_threshold_errors_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    """Invalid Thresholds raise ValueError naming the field."""
    with pytest.raises(ValueError, match=field):
        Thresholds(**kwargs)


def test_autoscale_config_errors_name_the_field() -> None:
    """Invalid AutoscaleConfig values raise ValueError naming the field."""
    with pytest.raises(ValueError, match="trend_samples"):
        AutoscaleConfig(trend_samples=1)
    with pytest.raises(ValueError, match="idle_utilization"):
        AutoscaleConfig(idle_utilization=1.0)
