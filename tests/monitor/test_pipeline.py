"""The monitor's view after the engine: reply latency, the sender and the cache, their alerts and chart events."""

from __future__ import annotations

import pytest

from sluiceway.monitor import MonitorConfig, PerformanceMonitor, PipelineSample, Thresholds
from sluiceway.monitor.pipeline import sender_error_percent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def monitor_with(clock: Clock, sample: list[PipelineSample]) -> PerformanceMonitor:
    config = MonitorConfig(
        metric_collection_interval=1.0,
        performance_check_interval=5.0,
        monitor_process=False,
        enable_anomaly_detection=False,
        thresholds=Thresholds(reply_latency_warning=2.0, reply_latency_critical=8.0),
    )
    monitor = PerformanceMonitor(config, clock=clock)
    monitor.set_pipeline(lambda: sample[0])
    return monitor


def test_the_report_carries_the_pipeline_figures() -> None:
    clock = Clock()
    sample = [PipelineSample()]
    monitor = monitor_with(clock, sample)
    for seconds in (0.5, 1.0, 1.5, 4.0):
        monitor.record_reply_latency(seconds)
    sample[0] = PipelineSample(
        sender_queued=7,
        sender_sent=90,
        sender_failed=2,
        sender_retries=8,
        throttle_events=5,
        pair_rate_holds=1,
        breaker="open",
        cache_hits=30,
        cache_misses=10,
    )
    clock.now += 1.0
    monitor.collect()
    pipeline = monitor.current_report().pipeline
    assert pipeline is not None
    assert pipeline.sample == sample[0]
    assert pipeline.replies_timed == 4
    assert pipeline.reply_latency[0].count == 4 and pipeline.reply_latency[0].max == pytest.approx(4.0, rel=0.01)
    assert pipeline.sender_error_rate_percent == pytest.approx(100 * 10 / 100)
    assert pipeline.cache_hit_rate_percent == pytest.approx(75.0)
    trend = {name: monitor.historical_trend(name, 60)[-1].value for name in ("sender_queue", "breaker")}
    assert trend == {"sender_queue": 7.0, "breaker": 1.0}
    assert monitor.historical_trend("throttle_events_per_second", 60)[-1].value == pytest.approx(5.0)


def test_a_monitor_without_a_pipeline_reports_none() -> None:
    monitor = PerformanceMonitor(MonitorConfig(monitor_process=False), clock=Clock())
    monitor.collect()
    assert monitor.current_report().pipeline is None


def test_alerts_fire_on_reply_latency_and_the_senders_error_rate_and_are_marked_as_events() -> None:
    """An outage: replies wait long and most attempts fail; both alerts rise while the engine's stay quiet,
    and resolve once sending recovers. Each change is an event on the charts' time axis."""
    clock = Clock()
    sample = [PipelineSample()]
    monitor = monitor_with(clock, sample)
    sent = retries = 0
    for second in range(5):
        sent, retries = sent + 2, retries + 8
        sample[0] = PipelineSample(sender_sent=sent, sender_retries=retries, sender_queued=50)
        monitor.record_reply_latency(9.0 + second)
        clock.now += 1.0
        monitor.tick()
    active = {a.metric: a.level for a in monitor.alerts()}
    assert active == {"reply_latency_p95": "CRITICAL", "sender_error_rate_percent": "CRITICAL"}
    for _ in range(5):  # recovered: fast replies, no failed attempts
        sent += 20
        sample[0] = PipelineSample(sender_sent=sent, sender_retries=retries)
        monitor.record_reply_latency(0.2)
        clock.now += 1.0
        monitor.tick()
    assert monitor.alerts() == []
    events = monitor.current_report().events
    assert [(e.kind, e.text) for e in events] == [
        ("alert", "reply_latency_p95 CRITICAL"),
        ("alert", "sender_error_rate_percent CRITICAL"),
        ("alert", "reply_latency_p95 resolved"),
        ("alert", "sender_error_rate_percent resolved"),
    ]
    assert events[0].at < events[2].at


@pytest.mark.parametrize(
    ("before", "after", "percent"),
    [
        (None, PipelineSample(), 0.0),
        (None, PipelineSample(sender_sent=3, sender_retries=1), 25.0),
        (PipelineSample(sender_sent=3, sender_retries=1), PipelineSample(sender_sent=3, sender_retries=1), 0.0),
        (PipelineSample(sender_sent=10), PipelineSample(sender_sent=10, sender_failed=1, sender_retries=1), 100.0),
    ],
)
def test_sender_error_percent(before: PipelineSample | None, after: PipelineSample, percent: float) -> None:
    assert sender_error_percent(before, after) == pytest.approx(percent)


def test_an_unknown_breaker_state_is_refused() -> None:
    with pytest.raises(ValueError, match="breaker"):
        PipelineSample(breaker="ajar")
    with pytest.raises(ValueError, match="reply_latency"):
        Thresholds(reply_latency_warning=5.0, reply_latency_critical=1.0)


def test_replaced_workers_and_scaling_are_events_but_scaling_is_not_a_restart() -> None:
    from sluiceway.monitor.autoscale import ScalingDecision
    from sluiceway.monitor.events import EventLog

    events = EventLog()
    events.workers(1.0, {101, 102})  # the first look: nothing to compare with
    events.workers(2.0, {101, 103})  # 102 died, 103 took its place
    events.scaled(ScalingDecision(at=2.5, old=2, new=3, reason="backlog"))
    events.workers(3.0, {101, 103, 104})  # the scale-up's new worker
    events.workers(4.0, {105, 106})  # three gone, two new: two replaced, one scaled away
    assert [(e.at, e.kind, e.text) for e in events.recent()] == [
        (2.0, "restart", "1 worker(s) replaced"),
        (2.5, "scaling", "workers 2 → 3"),
        (4.0, "restart", "2 worker(s) replaced"),
    ]
