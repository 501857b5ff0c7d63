"""The autoscaling policy: how many workers should run, given what the engine looks like now.

Fed one ``ScalingInputs`` per collection, ``AutoscalePolicy.decide`` returns a
``ScalingDecision`` (with its reason) or ``None``. It is pure apart from its own memory
of the recent past, so scripted metric streams test it without an engine or a clock.

The policy, in order:

1. Out of bounds: a worker count outside ``min_workers..max_workers`` is brought back.
2. Pressure: the backlog's projected drain time exceeds ``target_drain_time`` while
   at least ``backlog_per_worker`` per worker wait, or while the p95 latency is at the
   warning threshold. The projection divides the backlog by its drain rate, the
   least-squares slope of the backlog over the last ``trend_samples`` samples; a backlog
   that grows or holds has no end. The rate counts only samples with messages both
   queued and in flight and an unchanged worker count (it measures the running workers;
   workers still starting take no messages), so it exists from the second such sample
   on: pressure is evident within two samples. Pressure that has lasted
   ``scale_up_sustain`` seconds (0 by default: act once evident) adds workers, unless
   - the projected drain time is under ``worker_start_margin`` × the measured worker
     start time (``ScalingInputs.worker_start_seconds``): the backlog would be (nearly)
     gone before a new worker could take messages;
   - the machine's CPU is at ``cpu_ceiling_percent`` (more processes would only share
     the same saturated cores);
   - the last change is younger than ``scale_up_cooldown``.
   How many: enough that the drain rate per current worker clears the backlog within
   ``target_drain_time`` (messages still arriving make that rate look lower, so more are
   asked for), at least one, at most ``ceil(workers * scale_up_step)`` and
   ``max_workers``; when the backlog is not shrinking at all, the full step.
3. Idleness: nothing queued and at most ``idle_utilization`` of the handler slots busy
   for ``idle_sustain`` seconds removes one worker, at most once per
   ``scale_down_cooldown``.
"""

from __future__ import annotations

import math
from collections import deque

import msgspec

from sluiceway.monitor.config import AutoscaleConfig


class ScalingInputs(msgspec.Struct, kw_only=True, frozen=True):
    """What the policy looks at, sampled once per collection."""

    now: float
    workers: int
    backlog: int
    in_flight: int
    #: Handler slots per worker (the engine's ``worker_concurrency``).
    concurrency: int = 1
    #: p95 handler latency in seconds; ``None`` when nothing completed.
    latency_p95: float | None = None
    #: Machine CPU percent; ``None`` when not sampled (no monitor process).
    cpu_percent: float | None = None
    #: Measured seconds from spawning a worker to its taking messages; ``None`` when not
    #: measured yet (then no backlog counts as too short-lived for a new worker).
    worker_start_seconds: float | None = None


class ScalingDecision(msgspec.Struct, kw_only=True, frozen=True):
    """A change of the worker count and why it was made."""

    at: float
    old: int
    new: int
    reason: str


def slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope (per second) of ``(t, value)`` samples; 0.0 with fewer than two times."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in samples)
    if var_t == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / var_t


class AutoscalePolicy:
    """Decides worker counts from backlog, its drain rate, latency, worker start time and CPU headroom.

    Example::

        policy = AutoscalePolicy(AutoscaleConfig(), min_workers=2, max_workers=16, latency_warning=0.5)
        decision = policy.decide(ScalingInputs(now=t, workers=2, backlog=5000, in_flight=16))

    Warning:
        Scaling up needs two samples of a backlog (one drain rate) and scaling down needs
        ``idle_sustain`` seconds of idleness; a backlog the current workers clear before a
        new one could start (``worker_start_margin`` × its start time) gets none.
    """

    def __init__(self, config: AutoscaleConfig, *, min_workers: int, max_workers: int, latency_warning: float) -> None:
        if not 1 <= min_workers <= max_workers:
            raise ValueError(f"need 1 <= min_workers <= max_workers, got {min_workers}..{max_workers}")
        self.config = config
        self.min_workers, self.max_workers = min_workers, max_workers
        self.latency_warning = latency_warning
        #: ``(time, backlog)`` of the current run of samples with messages both waiting and in flight
        #: and an unchanged worker count.
        self._backlog: deque[tuple[float, float]] = deque(maxlen=config.trend_samples)
        self._backlog_workers = 0
        self._pressure_since: float | None = None
        self._idle_since: float | None = None
        self._last_change = -math.inf

    def note_change(self, at: float) -> None:
        """Record a worker-count change made elsewhere (it restarts the cooldowns and the drain rate)."""
        self._last_change = at
        self._backlog.clear()

    def decide(self, sample: ScalingInputs) -> ScalingDecision | None:
        """The change to make for ``sample``, or ``None`` to keep the current count."""
        now, workers = sample.now, sample.workers
        if workers < self.min_workers or workers > self.max_workers:
            target = min(max(workers, self.min_workers), self.max_workers)
            bounds = f"{self.min_workers}..{self.max_workers}"
            return self._change(now, workers, target, f"{workers} workers is outside {bounds}")

        drain_rate = self._drain_rate(sample)
        if sample.backlog > 0 and drain_rate is not None:
            self._idle_since = None
            return self._consider_scale_up(sample, drain_rate)
        self._pressure_since = None
        if sample.backlog > 0:
            self._idle_since = None
            return None
        return self._consider_scale_down(sample)

    def _drain_rate(self, sample: ScalingInputs) -> float | None:
        """Messages per second the backlog shrinks by (negative: grows); ``None`` until two samples show it."""
        # Nothing in flight with messages waiting: the workers are not taking messages yet
        # (starting) or at all, so the backlog's course says nothing about what they can do.
        working = sample.backlog > 0 and sample.in_flight > 0
        if not working or sample.workers != self._backlog_workers:
            self._backlog.clear()
        self._backlog_workers = sample.workers
        if not working:
            return None
        self._backlog.append((sample.now, float(sample.backlog)))
        if len(self._backlog) < 2 or self._backlog[-1][0] == self._backlog[0][0]:
            return None
        return -slope(list(self._backlog))

    def _consider_scale_up(self, sample: ScalingInputs, drain_rate: float) -> ScalingDecision | None:
        c = self.config
        now, workers, backlog = sample.now, sample.workers, sample.backlog
        drain_time = backlog / drain_rate if drain_rate > 0 else math.inf
        backlogged = backlog >= c.backlog_per_worker * workers
        slow = sample.latency_p95 is not None and sample.latency_p95 >= self.latency_warning
        if drain_time <= c.target_drain_time or not (backlogged or slow):
            self._pressure_since = None
            return None
        if self._pressure_since is None:
            self._pressure_since = now
        start = sample.worker_start_seconds
        if start is not None and drain_time < c.worker_start_margin * start:
            return None  # gone (or nearly) before a new worker could take a message
        cpu_bound = sample.cpu_percent is not None and sample.cpu_percent >= c.cpu_ceiling_percent
        if (
            now - self._pressure_since < c.scale_up_sustain
            or now - self._last_change < c.scale_up_cooldown
            or workers >= self.max_workers
            or cpu_bound
        ):
            return None
        step = max(1, math.ceil(workers * c.scale_up_step))
        if drain_rate > 0:
            needed = math.ceil(backlog / (c.target_drain_time * drain_rate / workers))
            add = min(step, max(1, needed - workers))
        else:
            add = step
        target = min(self.max_workers, workers + add)
        ends = f"drains in {drain_time:.1f}s" if drain_rate > 0 else f"is not shrinking ({-drain_rate:+.1f}/s)"
        why = (
            f"backlog {backlog} {ends}, over the {c.target_drain_time:g}s target"
            if backlogged
            else f"p95 latency {sample.latency_p95:.3f}s at warning {self.latency_warning:g}s; backlog {backlog} {ends}"
        )
        started = "unknown" if start is None else f"{start:.1f}s"
        cpu = "unknown" if sample.cpu_percent is None else f"{sample.cpu_percent:.0f}%"
        return self._change(now, workers, target, f"{why} (worker start {started}, CPU {cpu})")

    def _consider_scale_down(self, sample: ScalingInputs) -> ScalingDecision | None:
        c = self.config
        now, workers = sample.now, sample.workers
        utilization = sample.in_flight / max(1, workers * sample.concurrency)
        if utilization > c.idle_utilization:
            self._idle_since = None
            return None
        if self._idle_since is None:
            self._idle_since = now
        if (
            now - self._idle_since >= c.idle_sustain
            and now - self._last_change >= c.scale_down_cooldown
            and workers > self.min_workers
        ):
            return self._change(
                now,
                workers,
                workers - 1,
                f"idle for {now - self._idle_since:.1f}s (nothing queued, {utilization:.0%} of handler slots busy)",
            )
        return None

    def _change(self, now: float, old: int, new: int, reason: str) -> ScalingDecision:
        self.note_change(now)
        self._pressure_since = None
        self._idle_since = None
        return ScalingDecision(at=now, old=old, new=new, reason=reason)
