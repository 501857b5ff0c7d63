"""HookSet: every hook hears every event, in order, and one failing hook harms neither the engine nor the others."""

from __future__ import annotations

import asyncio

import pytest

from sluiceway.engine import EngineHooks, LatencyDelta, Scaled, WorkerExited, WorkerStarted
from sluiceway.engine.hooks import HookSet
from sluiceway.histogram import LatencyHistogram


class Failing(EngineHooks):
    def on_scaled(self, event: Scaled) -> None:
        raise RuntimeError("broken hook")

    async def on_stop(self) -> None:
        raise RuntimeError("broken stop")


class Recording(EngineHooks):
    def __init__(self) -> None:
        self.events: list[object] = []

    def on_scaled(self, event: Scaled) -> None:
        self.events.append(event)

    def on_latencies(self, delta: LatencyDelta) -> None:
        self.events.append(delta)

    def on_worker_started(self, event: WorkerStarted) -> None:
        self.events.append(event)

    def on_worker_exited(self, event: WorkerExited) -> None:
        self.events.append(event)

    async def on_stop(self) -> None:
        self.events.append("stop")


def test_a_failing_hook_is_logged_and_the_next_still_hears_the_event(caplog: pytest.LogCaptureFixture) -> None:
    """Each event reaches every hook as its typed struct; a hook that raises is logged with the event's name."""
    recording = Recording()
    hooks = HookSet([Failing(), recording])
    delta = LatencyDelta(7, LatencyHistogram())
    hooks.scaled(Scaled(1, 2, "scale_to"))
    hooks.latencies(delta)
    hooks.worker_started(WorkerStarted(7, 0, 0.5))
    hooks.worker_exited(WorkerExited(7, 0, -9, "crashed"))
    asyncio.run(hooks.stop())
    assert recording.events == [
        Scaled(1, 2, "scale_to"),
        delta,
        WorkerStarted(7, 0, 0.5),
        WorkerExited(7, 0, -9, "crashed"),
        "stop",
    ]
    failures = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(failures) == 2 and "on_scaled" in failures[0] and "on_stop" in failures[1]


def test_an_empty_hook_set_is_false() -> None:
    """Without hooks the engine skips building the periodic statistics snapshot (it tests the set's truth)."""
    assert not HookSet([]) and HookSet([EngineHooks()])
