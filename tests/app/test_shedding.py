"""The load-shedding policy on a manual clock with synthetic signals, against a reference model."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.app.settings import Settings, load_settings
from sluiceway.app.shedding import LoadShedder, LoopLag
from sluiceway.testing import ManualClock


class Backlog:
    """The synthetic signal: how many messages are outstanding."""

    def __init__(self) -> None:
        self.outstanding = 0

    def __call__(self) -> int:
        return self.outstanding


def shedder(backlog: Backlog, clock: ManualClock, **options: float) -> LoadShedder:
    options.setdefault("max_delay", 2.0)
    options.setdefault("min_outstanding", 10)
    options.setdefault("window", 1.0)
    return LoadShedder(backlog, clock=clock, **options)  # type: ignore[arg-type]


def serve(policy: LoadShedder, clock: ManualClock, backlog: Backlog, per_second: int, seconds: float) -> None:
    """The engine finishes ``per_second`` messages a second for ``seconds``, in steps of 10 ms."""
    for _ in range(round(seconds * 100)):
        clock.advance(0.01)
        done = min(backlog.outstanding, per_second // 100)
        backlog.outstanding -= done
        if done:
            policy.record_handled(done)


def test_sheds_when_the_expected_wait_passes_the_bound_and_resumes_below_half() -> None:
    """At 100 messages/s, 201+ outstanding (over 2 s of wait) sheds; it stops below 100 (1 s), not before."""
    clock, backlog = ManualClock(), Backlog()
    policy = shedder(backlog, clock)
    backlog.outstanding = 1_000
    serve(policy, clock, backlog, per_second=100, seconds=2.0)  # the rate is now measured: 100/s
    assert backlog.outstanding == 800
    assert policy.overloaded() and policy.expected_delay() == pytest.approx(8.0, rel=0.05)
    serve(policy, clock, backlog, per_second=100, seconds=6.5)  # 150 left: 1.5 s, between the thresholds
    assert backlog.outstanding == 150 and policy.overloaded()
    serve(policy, clock, backlog, per_second=100, seconds=0.6)  # 90 left: 0.9 s, under half the bound
    assert not policy.overloaded()
    backlog.outstanding = 190  # 1.9 s: under the bound, so it does not start again
    assert not policy.overloaded()
    backlog.outstanding = 210
    assert policy.overloaded() and policy.episodes == 2


def test_never_sheds_a_small_backlog_or_before_any_message_finished() -> None:
    """Under min_outstanding nothing is shed; a burst with no completion yet has an unknown rate and is taken."""
    clock, backlog = ManualClock(), Backlog()
    policy = shedder(backlog, clock)
    backlog.outstanding = 9
    policy.record_handled(1)
    clock.advance(0.5)
    # 2 messages/s would make 9 outstanding a 4.5 s wait, but under the floor the engine's part does not count.
    assert policy.rate() == pytest.approx(2.0) and policy.expected_delay() == 0.0 and not policy.overloaded()
    clock.advance(60.0)  # idle: the completion has left the window
    backlog.outstanding = 5_000
    assert policy.rate() is None and policy.expected_delay() is None
    assert not policy.overloaded()


def test_a_burst_after_idle_is_measured_from_its_first_completion() -> None:
    """After an idle minute, the rate counts only the time since work resumed, not the idle window."""
    clock, backlog = ManualClock(), Backlog()
    policy = shedder(backlog, clock, window=5.0)
    clock.advance(60.0)
    backlog.outstanding = 100
    serve(policy, clock, backlog, per_second=200, seconds=0.3)  # 60 done in 0.3 s: 200/s, not 12/s
    assert policy.rate() == pytest.approx(200.0, rel=0.25)
    assert not policy.overloaded()


def test_the_reply_queue_alone_can_trigger_shedding_and_is_sampled_sparingly() -> None:
    """A sender backlog over the bound sheds with an idle engine; backlog_delay is read at most every window/20."""
    clock, backlog = ManualClock(), Backlog()
    reply_queue = [0.0]
    reads = []

    def backlog_delay() -> float:
        reads.append(clock())
        return reply_queue[0]

    policy = shedder(backlog, clock, backlog_delay=backlog_delay)  # type: ignore[arg-type]
    assert not policy.overloaded()
    reply_queue[0] = 5.0
    assert not policy.overloaded()  # the last sample (0 s) is still fresh
    clock.advance(0.05)
    assert policy.overloaded() and policy.expected_delay() == 5.0
    for _ in range(100):
        policy.overloaded()
    assert len(reads) == 2
    reply_queue[0] = 1.5  # between half the bound and the bound: shedding goes on
    clock.advance(0.05)
    assert policy.overloaded()
    reply_queue[0] = 0.5
    clock.advance(0.05)
    assert not policy.overloaded()


def test_bad_settings_are_refused_by_name() -> None:
    """Non-positive bounds and windows, and a resume fraction outside (0, 1], raise ValueError naming them."""
    for name, value in (("max_delay", 0.0), ("resume_below", 1.5), ("min_outstanding", 0), ("window", -1.0)):
        with pytest.raises(ValueError, match=name):
            LoadShedder(Backlog(), **{name: value})  # type: ignore[arg-type]


def test_shed_after_is_a_setting_validated_by_name() -> None:
    """A negative shed_after is refused by name; 0 (shedding off) is taken from the environment."""
    with pytest.raises(ValueError, match="shed_after"):
        Settings(shed_after=-1.0)
    assert load_settings(environ={"SLUICEWAY_SHED_AFTER": "0"}, config_file=None).shed_after == 0.0


class Reference:
    """The policy spelled out over every completion's time (no buckets kept incrementally)."""

    def __init__(self, max_delay: float, resume_below: float, min_outstanding: int, window: float) -> None:
        self.max_delay, self.resume_below, self.min_outstanding = max_delay, resume_below, min_outstanding
        self.width = window / 20
        self.window = window
        self.done: list[tuple[float, int]] = []
        self.shedding = False

    def decide(self, now: float, outstanding: int) -> bool:
        if outstanding < self.min_outstanding:
            self.shedding = False  # the engine's part is 0 and there is no reply queue here
            return False
        current = int(now // self.width)
        recent = [(int(t // self.width), n) for t, n in self.done if int(t // self.width) > current - 20]
        if not recent:
            return self.shedding
        span = min(self.window, max(now - min(b for b, _ in recent) * self.width, self.width))
        delay = outstanding / (sum(n for _, n in recent) / span)
        if self.shedding:
            self.shedding = delay >= self.resume_below * self.max_delay
        elif delay > self.max_delay:
            self.shedding = True
        return self.shedding


steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.01, 0.05, 0.2, 1.0, 7.0]),  # time passing
        st.integers(0, 50),  # completions
        st.integers(0, 400),  # outstanding after them
    ),
    max_size=60,
)


@given(steps, st.floats(0.5, 5.0), st.sampled_from([0.25, 0.5, 1.0]))
def test_decisions_match_the_reference_model(
    script: list[tuple[float, int, int]], max_delay: float, resume_below: float
) -> None:
    """Any sequence of time, completions and backlog gets the reference model's decision at every step."""
    clock, backlog = ManualClock(), Backlog()
    policy = LoadShedder(backlog, max_delay=max_delay, resume_below=resume_below, min_outstanding=20, clock=clock)
    reference = Reference(max_delay, resume_below, 20, policy.window)
    for elapsed, done, outstanding in script:
        clock.advance(elapsed)
        if done:
            policy.record_handled(done)
            reference.done.append((clock(), done))
        backlog.outstanding = outstanding
        assert policy.overloaded() == reference.decide(clock(), outstanding)


def test_a_runtime_behind_on_replies_sheds_new_messages_and_answers_every_accepted_one(stack: Any) -> None:
    """With the sender far behind (5 replies/s), new messages get 503 at once; each accepted one is answered once."""

    async def scenario() -> None:
        async with stack(rate=5) as s:
            assert s.runtime.shedder is not None
            s.runtime.shedder.max_delay = 1.0  # five unsent replies are a second's wait at 5/s
            await s.reply("15550009999", "wamid.warm", "is 3D available?")  # workers and caches ready
            statuses: list[int] = []
            while 503 not in statuses:  # tenants post far faster than 5 replies/s go out
                assert len(statuses) < 500, "never shed"
                await asyncio.sleep(0.01)  # paced, so the shedder's 0.25 s samples of the reply queue see it grow
                statuses.append(await s.say(f"1555000{len(statuses):04d}", f"wamid.load.{len(statuses)}", "hi"))
            accepted = [f"wamid.load.{i}" for i, status in enumerate(statuses) if status == 200]
            shed = [f"wamid.load.{i}" for i, status in enumerate(statuses) if status == 503]
            assert len(accepted) + len(shed) == len(statuses) and s.runtime.ingress.stats.shed == len(shed) == 1
            await s.until(lambda: all(s.replies_to(w) for w in accepted))
            assert all(len(s.replies_to(w)) == 1 for w in accepted) and not s.replies_to(shed[0])
            # Once the replies are out, Meta's re-delivery of the shed message is taken and answered.
            await s.until(lambda: not s.runtime.shedder.overloaded())
            assert await s.reply("15550009999", shed[0], "is 3D available?")

    asyncio.run(scenario())


class Lag:
    """The synthetic event-loop lag, in seconds."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


@given(st.lists(st.floats(0.0, 0.1), max_size=200), st.sampled_from([0.01, 0.02, 0.05]))
def test_the_loop_lag_refuses_its_share_of_messages_spread_evenly(lags: list[float], max_lag: float) -> None:
    """Each message is refused with the lag's share (0 up to half max_lag, 1 from max_lag): after every
    message, the refusals are within one of the sum of the shares so far, so they come evenly, not in bursts."""
    lag, backlog = Lag(), Backlog()
    policy = LoadShedder(backlog, loop_lag=lag, max_lag=max_lag, min_outstanding=10, clock=ManualClock())
    backlog.outstanding = 10  # no completion yet, so the expected delay is unknown and plays no part
    total, refused = 0.0, 0
    for seconds in lags:
        lag.seconds = seconds
        share = min(1.0, max(0.0, (seconds - max_lag / 2) / (max_lag / 2)))
        assert policy.lag_share() == pytest.approx(share)
        total += share
        refused += policy.overloaded()
        assert total - 1 - 1e-9 <= refused <= total + 1e-9
    assert policy.lag_refused == refused


def test_the_expected_delay_sheds_whatever_the_lag() -> None:
    """A backlog over the bound refuses every message on an idle loop; a lag refuses its share once
    min_outstanding messages are outstanding."""
    clock, backlog, lag = ManualClock(), Backlog(), Lag()
    policy = LoadShedder(backlog, loop_lag=lag, max_delay=1.0, max_lag=0.02, min_outstanding=10, clock=clock)
    backlog.outstanding = 500
    serve(policy, clock, backlog, per_second=100, seconds=1.0)  # 400 left at 100/s: 4 s
    assert all(policy.overloaded() for _ in range(10))
    backlog.outstanding = 9
    lag.seconds = 0.016  # 6 ms past half of max_lag, 10 ms wide: 60%, but a handful outstanding is no backlog
    assert not any(policy.overloaded() for _ in range(10))
    backlog.outstanding = 10  # at min_outstanding, 0.1 s of expected delay: only the lag refuses, evenly
    assert [policy.overloaded() for _ in range(4)] == [False, True, False, True]


def test_loop_lag_measures_a_blocked_loop_and_smooths_single_timers() -> None:
    """A loop blocked for 200 ms reads as late by a good part of that; one late timer moves the mean by its weight."""

    async def scenario() -> None:
        lag = LoopLag(interval=0.01)
        lag.start()
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # noqa: ASYNC251 - blocking the loop is the point: the timer due in 10 ms fires late
        assert lag() >= 0.1  # overdue counts before the timer has even fired
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert lag.lag >= 0.2 * lag.smoothing * 0.9
        lag.stop()

    asyncio.run(scenario())
    lag = LoopLag(smoothing=0.25)
    lag.record(0.1)
    lag.record(0.0)
    assert lag.lag == pytest.approx(0.25 * 0.1 * 0.75)
    with pytest.raises(ValueError, match="smoothing"):
        LoopLag(smoothing=0.0)
