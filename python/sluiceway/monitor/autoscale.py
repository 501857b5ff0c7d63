"""The autoscaling policy: how many workers should run, given what the engine looks like now.

Fed one ``ScalingInputs`` per collection, ``AutoscalePolicy.decide`` returns a
``ScalingDecision`` (with its reason) or ``None``. It is pure apart from its own memory
of the recent past, so scripted metric streams test it without an engine or a clock.

The policy, in order:

1. Out of bounds: a worker count outside ``min_workers..max_workers`` is brought back.
2. Pressure: the backlog exceeds ``backlog_per_worker`` per worker and is not draining
   fast enough to clear within ``target_drain_time`` (its least-squares trend over the
   last ``trend_samples`` samples), or the p95 latency is at the warning threshold
   while messages wait. Pressure that lasts ``scale_up_sustain`` seconds adds
   ``ceil(workers * scale_up_step)`` workers, unless the machine's CPU is at
   ``cpu_ceiling_percent`` (more processes would only share the same saturated cores)
   or the last change is younger than ``scale_up_cooldown``.
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
    """Decides worker counts from backlog, its trend, latency and CPU headroom.

    Example::

        policy = AutoscalePolicy(AutoscaleConfig(), min_workers=2, max_workers=16, latency_warning=0.5)
        decision = policy.decide(ScalingInputs(now=t, workers=2, backlog=5000, in_flight=16))

    Warning:
        Scaling up needs pressure to last ``scale_up_sustain`` seconds and scaling down
        needs ``idle_sustain`` seconds of idleness: a short burst is absorbed by the
        queue instead of paying for process start-ups that would arrive after it ends.
    """

    def __init__(
        self, config: AutoscaleConfig, *, min_workers: int, max_workers: int, latency_warning: float
    ) -> None:
        if not 1 <= min_workers <= max_workers:
            raise ValueError(f"need 1 <= min_workers <= max_workers, got {min_workers}..{max_workers}")
        self.config = config
        self.min_workers, self.max_workers = min_workers, max_workers
        self.latency_warning = latency_warning
        self._backlog: deque[tuple[float, float]] = deque(maxlen=config.trend_samples)
        self._pressure_since: float | None = None
        self._idle_since: float | None = None
        self._last_change = -math.inf

    def note_change(self, at: float) -> None:
        """Record a worker-count change made elsewhere (it restarts the cooldowns)."""
        self._last_change = at

    def decide(self, sample: ScalingInputs) -> ScalingDecision | None:
        """The change to make for ``sample``, or ``None`` to keep the current count."""
        c = self.config
        now, workers = sample.now, sample.workers
        self._backlog.append((now, float(sample.backlog)))

        if workers < self.min_workers or workers > self.max_workers:
            target = min(max(workers, self.min_workers), self.max_workers)
            return self._change(now, workers, target, f"{workers} workers is outside {self.min_workers}..{self.max_workers}")

        trend = slope(list(self._backlog))
        drains_in_time = trend < 0 and sample.backlog / -trend <= c.target_drain_time
        backlogged = sample.backlog >= c.backlog_per_worker * workers and not drains_in_time
        slow = (
            sample.backlog > 0
            and sample.latency_p95 is not None
            and sample.latency_p95 >= self.latency_warning
        )
        if backlogged or slow:
            self._idle_since = None
            if self._pressure_since is None:
                self._pressure_since = now
            cpu_bound = sample.cpu_percent is not None and sample.cpu_percent >= c.cpu_ceiling_percent
            if (
                now - self._pressure_since >= c.scale_up_sustain
                and now - self._last_change >= c.scale_up_cooldown
                and workers < self.max_workers
                and not cpu_bound
            ):
                target = min(self.max_workers, workers + max(1, math.ceil(workers * c.scale_up_step)))
                why = (
                    f"backlog {sample.backlog} (trend {trend:+.1f}/s) over {c.backlog_per_worker:g} per worker"
                    if backlogged
                    else f"p95 latency {sample.latency_p95:.3f}s at warning {self.latency_warning:g}s with {sample.backlog} queued"
                )
                cpu = "unknown" if sample.cpu_percent is None else f"{sample.cpu_percent:.0f}%"
                return self._change(now, workers, target, f"{why} for {now - self._pressure_since:.1f}s, CPU {cpu}")
            return None
        self._pressure_since = None

        utilization = sample.in_flight / max(1, workers * sample.concurrency)
        if sample.backlog == 0 and utilization <= c.idle_utilization:
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
        else:
            self._idle_since = None
        return None

    def _change(self, now: float, old: int, new: int, reason: str) -> ScalingDecision:
        self._last_change = now
        self._pressure_since = None
        self._idle_since = None
        return ScalingDecision(at=now, old=old, new=new, reason=reason)
