"""enqueue_many / enqueue_many_nowait: batches through real worker processes, and MessageIds."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.engine import (
    Backpressure,
    EngineNotRunning,
    MessageIds,
    MessageParallelizer,
    ParallelizerConfig,
    Priority,
    UnencodablePayload,
)
from sluiceway.testing import wait_until
from sluiceway.testing.handlers import read_log

SCRIPTED = "sluiceway.testing.handlers:scripted"

Run = Callable[[Any], Any]
Config = Callable[..., ParallelizerConfig]


def test_enqueue_many_runs_every_payload_once_and_returns_their_ids(run: Run, config: Config, tmp_path: Path) -> None:
    """Every payload of a batch runs exactly once, under the id enqueue_many returned for it."""
    log = str(tmp_path / "log")

    async def scenario() -> MessageIds:
        async with MessageParallelizer(SCRIPTED, config()) as engine:
            ids = await engine.enqueue_many([{"log": log, "tag": str(i)} for i in range(300)])
            await engine.wait_for_completion(timeout=60)
            assert engine.get_statistics().completed == 300
            return ids

    ids = run(scenario())
    lines = read_log(log)
    assert Counter(fields[1] for fields in lines) == Counter(ids)
    assert {fields[1]: fields[0] for fields in lines} == {ids[i]: str(i) for i in range(300)}


def test_enqueue_many_with_a_key_runs_the_batch_in_order(run: Run, config: Config, tmp_path: Path) -> None:
    """A batch with an ordering key runs one at a time in batch order, after the key's earlier messages."""
    log = str(tmp_path / "log")

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config(worker_concurrency=8)) as engine:
            await engine.enqueue_message({"log": log, "tag": "first", "sleep": 0.05}, ordering_key="+1555")
            await engine.enqueue_many(
                [{"log": log, "tag": str(i)} for i in range(30)], Priority.HIGH, ordering_key="+1555"
            )
            await engine.wait_for_completion(timeout=60)

    run(scenario())
    assert [fields[0] for fields in read_log(log)] == ["first"] + [str(i) for i in range(30)]


def test_enqueue_many_refuses_a_batch_with_an_unencodable_payload_whole(run: Run, config: Config) -> None:
    """One payload msgpack cannot encode refuses the whole batch, naming its index, and nothing is accepted."""

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config()) as engine:
            with pytest.raises(UnencodablePayload, match="payload 2 of type object"):
                await engine.enqueue_many([{}, {}, object(), {}])
            with pytest.raises(UnencodablePayload, match="payload 1"):
                engine.enqueue_many_nowait(iter([{}, 1j]))
            with pytest.raises(ValueError, match="priority"):
                await engine.enqueue_many([{}], priority=7)
            with pytest.raises(ValueError, match="ordering_key"):
                engine.enqueue_many_nowait([{}], ordering_key=5)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="ordering_key must be encodable"):
                await engine.enqueue_many([{}], ordering_key="\udfff")
            assert engine.get_statistics().enqueued == 0
            assert len(await engine.enqueue_many([])) == 0

    run(scenario())


def test_enqueue_many_before_start_is_refused(run: Run, config: Config) -> None:
    """A batch for an engine that is not running raises EngineNotRunning."""

    async def scenario() -> None:
        engine = MessageParallelizer(SCRIPTED, config())
        with pytest.raises(EngineNotRunning):
            await engine.enqueue_many([{}])

    run(scenario())


def test_enqueue_many_waits_between_slices_while_backpressure_is_on(run: Run, config: Config, tmp_path: Path) -> None:
    """A batch larger than the high-water mark fills the queue to the mark, waits, and goes on as it drains."""
    gate = tmp_path / "gate"

    async def scenario() -> None:
        cfg = config(
            default_worker_count=1,
            worker_concurrency=1,
            worker_prefetch=1,
            queue_high_water_mark=10,
            queue_low_water_mark=4,
        )
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            batch = asyncio.ensure_future(engine.enqueue_many([{"gate": str(gate)} for _ in range(25)]))
            await wait_until(lambda: engine.get_statistics().backpressure, what="backpressure on")
            stats = engine.get_statistics()
            assert not batch.done() and stats.queued + stats.in_flight <= 11
            with pytest.raises(Backpressure):
                engine.enqueue_many_nowait([{}])
            gate.touch()
            ids = await asyncio.wait_for(batch, 60)
            await engine.wait_for_completion(timeout=60)
            assert len(ids) == 25 and engine.get_statistics().completed == 25

    run(scenario())


def test_enqueue_many_nowait_accepts_the_whole_batch_past_the_mark(run: Run, config: Config, tmp_path: Path) -> None:
    """enqueue_many_nowait takes a whole batch even past the high-water mark, then backpressure is on."""
    gate = tmp_path / "gate"

    async def scenario() -> None:
        cfg = config(
            default_worker_count=1,
            worker_concurrency=1,
            worker_prefetch=1,
            queue_high_water_mark=10,
            queue_low_water_mark=4,
        )
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            ids = engine.enqueue_many_nowait([{"gate": str(gate)} for _ in range(30)], Priority.LOW)
            assert len(ids) == 30 and engine.get_statistics().backpressure
            with pytest.raises(Backpressure):
                engine.enqueue_many_nowait([{}])
            gate.touch()
            await engine.wait_for_completion(timeout=60)
            assert engine.get_statistics().completed == 30

    run(scenario())


@given(first=st.integers(1, 10**12), count=st.integers(0, 50), index=st.integers(-60, 60), cut=st.slices(60))
def test_message_ids_behave_like_the_list_of_ids(first: int, count: int, index: int, cut: slice) -> None:
    """MessageIds indexes, slices, iterates and compares exactly like the list of '<engine>-<seq>' strings."""
    ids = MessageIds("e1", first, count)
    model = [f"e1-{seq}" for seq in range(first, first + count)]
    assert len(ids) == len(model) and list(ids) == model and ids == model
    assert ids[cut] == model[cut]
    if -count <= index < count:
        assert ids[index] == model[index]
    else:
        with pytest.raises(IndexError):
            ids[index]


def test_enqueue_many_waiting_when_the_engine_shuts_down_raises_and_keeps_what_it_accepted(
    run: Run, config: Config, tmp_path: Path
) -> None:
    """A batch waiting on backpressure when shutdown comes raises EngineNotRunning; its accepted slices are reported."""
    gate = tmp_path / "gate"

    async def scenario() -> None:
        cfg = config(
            default_worker_count=1,
            worker_concurrency=1,
            worker_prefetch=1,
            queue_high_water_mark=10,
            queue_low_water_mark=4,
        )
        engine = MessageParallelizer(SCRIPTED, cfg)
        await engine.start()
        batch = asyncio.ensure_future(engine.enqueue_many([{"gate": str(gate)} for _ in range(25)]))
        await wait_until(lambda: engine.get_statistics().backpressure, what="backpressure on")
        accepted = engine.get_statistics().enqueued
        assert 0 < accepted < 25
        shutdown = asyncio.ensure_future(engine.shutdown(drain=False))
        with pytest.raises(EngineNotRunning):
            await asyncio.wait_for(batch, 60)
        gate.touch()
        summary = await asyncio.wait_for(shutdown, 60)
        assert summary.completed + len(summary.remaining) == accepted
        assert engine.get_statistics().enqueued == accepted

    run(scenario())
