"""InlineRunner (Rust) against a pure-Python model of the worker's inline loop."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway import histogram
from sluiceway._core import InlineRunner
from sluiceway.engine.message import Message, Priority
from sluiceway.histogram import LatencyHistogram

PRIORITIES = tuple(Priority)
BEHAVIOURS = ("return", "value", "raise", "suspend", "plain")


class Stop(BaseException):
    """A BaseException that is not an Exception: it must propagate, not be reported."""


def make_handler(seen: list[Message], pending: asyncio.Future[Any]) -> Any:
    async def handler(message: Message) -> Any:
        seen.append(message)
        what = message.payload
        if what == "raise":
            raise ValueError(f"boom {message.id}")
        if what == "stop":
            raise Stop()
        if what == "suspend":
            return await pending
        return [message.id, message.attempt] if what == "value" else None

    def dispatch(message: Message) -> Any:
        if message.payload == "plain":  # a plain function result, not a coroutine
            seen.append(message)
            return "plain result"
        return handler(message)

    return dispatch


def runner_for(handler: Any) -> InlineRunner:
    return InlineRunner(handler, Message, PRIORITIES, "e1-", types.CoroutineType, histogram.RELATIVE_ERROR, histogram.MIN_VALUE)


items_strategy = st.lists(
    st.tuples(st.sampled_from(BEHAVIOURS), st.booleans(), st.integers(0, 2), st.integers(1, 5), st.one_of(st.none(), st.text(max_size=3))),
    max_size=30,
)


@given(specs=items_strategy, slots=st.integers(0, 8))
def test_run_matches_the_python_model(specs: list[tuple[str, bool, int, int, str | None]], slots: int) -> None:
    """run() starts items until `slots` suspended and sorts each outcome exactly as the Python loop would."""
    loop = asyncio.new_event_loop()
    try:
        pending: asyncio.Future[Any] = loop.create_future()
        seen: list[Message] = []
        items = [[seq, attempt, priority, 1000.0 + seq, key, True if want else None, what, 0.0]
                 for seq, (what, want, priority, attempt, key) in enumerate(specs, start=10)]
        done: list[int] = [7]
        h = LatencyHistogram()
        consumed, returned, raised, suspended = runner_for(make_handler(seen, pending)).run(items, slots, done, h)
        # The model.
        m_done, m_returned, m_raised, m_suspended, m_consumed = [7], [], [], [], 0
        for item in items:
            if len(m_suspended) >= slots:
                break
            m_consumed += 1
            seq, attempt, what, want = item[0], item[1], item[6], item[5]
            if what == "raise":
                m_raised.append((seq, f"boom e1-{seq}"))
            elif what == "suspend":
                m_suspended.append(seq)
            elif want:
                m_returned.append((seq, "plain result" if what == "plain" else [f"e1-{seq}", attempt] if what == "value" else None))
            else:
                m_done.append(seq)
        assert consumed == m_consumed and done == m_done
        assert [(item[0], value) for item, value in returned] == m_returned
        assert [(item[0], str(exc)) for item, exc in raised] == m_raised
        assert all(isinstance(exc, ValueError) and exc.__traceback__ is not None for _, exc in raised)
        assert [item[0] for item, *_ in suspended] == m_suspended
        assert all(awaited is pending and isinstance(started, float) for _, _, awaited, started in suspended)
        assert h.count == m_consumed - len(m_suspended)
        assert [(m.id, m.attempt, m.priority, m.enqueued_at, m.ordering_key, m.payload) for m in seen] == [
            (f"e1-{item[0]}", item[1], PRIORITIES[item[2]], item[3], item[4], item[6]) for item in items[:m_consumed]
        ]
        for _, coro, _, _ in suspended:
            coro.close()
    finally:
        loop.close()


def test_a_base_exception_propagates_after_counting_what_ran() -> None:
    """A handler raising a BaseException that is not an Exception stops the run and propagates it."""
    loop = asyncio.new_event_loop()
    try:
        seen: list[Message] = []
        items = [[1, 1, 1, 0.0, None, None, "return", 0.0], [2, 1, 1, 0.0, None, None, "stop", 0.0], [3, 1, 1, 0.0, None, None, "return", 0.0]]
        done: list[int] = []
        h = LatencyHistogram()
        with pytest.raises(Stop):
            runner_for(make_handler(seen, loop.create_future())).run(items, 4, done, h)
        assert done == [1] and len(seen) == 2 and h.count == 1
    finally:
        loop.close()


def test_handlers_of_one_batch_may_await_the_same_future() -> None:
    """Two handlers in one DISPATCH batch awaiting one shared future both finish once it resolves."""
    from sluiceway.engine import pipe
    from sluiceway.engine.worker import Worker

    class Writer:
        def __init__(self) -> None:
            self.frames: list[Any] = []

        def send(self, frame: Any) -> None:
            self.frames.append(frame)

    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        shared = loop.create_future()

        async def handler(message: Message) -> Any:
            return await shared

        writer = Writer()
        worker = Worker({"engine_id": "e1", "concurrency": 4, "timeout": 30.0, "heartbeat_interval": 1.0, "index": 0}, writer)  # type: ignore[arg-type]
        worker.handler = handler
        worker.runner = runner_for(handler)
        worker.receive([[1, 1, 1, 0.0, None, None, "a", 0.0], [2, 1, 1, 0.0, None, None, "b", 0.0]])
        assert worker.running == 2
        shared.set_result("ok")
        while worker.running:
            await asyncio.sleep(0)
        worker.flush()
        reports = [frame for frame in writer.frames if frame[0] == pipe.REPORT]
        assert all(not frame[3] for frame in reports)  # no failures
        return sorted(seq for frame in reports for seq in frame[1])

    assert asyncio.run(scenario()) == [1, 2]
