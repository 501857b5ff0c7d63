"""Priority holds end to end, and messages sharing an ordering key run one at a time in order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sluiceway.engine import MessageParallelizer, ParallelizerConfig, Priority
from sluiceway.testing import wait_until
from sluiceway.testing.handlers import read_log

SCRIPTED = "sluiceway.testing.handlers:scripted"

Run = Callable[[Any], Any]
Config = Callable[..., ParallelizerConfig]


def test_high_priority_overtakes_a_low_priority_backlog(run: Run, config: Config, tmp_path: Path) -> None:
    """A HIGH message enqueued behind a LOW backlog starts before every LOW message not yet prefetched."""
    log, gate = str(tmp_path / "log"), tmp_path / "gate"
    prefetch = 2

    async def scenario() -> None:
        cfg = config(default_worker_count=1, worker_concurrency=1, worker_prefetch=prefetch)
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            await engine.enqueue_message({"log": log, "tag": "blocker", "gate": str(gate)})
            await wait_until(lambda: engine.get_statistics().in_flight == 1, what="the blocker dispatched")
            for i in range(20):
                await engine.enqueue_message({"log": log, "tag": f"low{i}"}, Priority.LOW)
            await engine.enqueue_message({"log": log, "tag": "normal"}, Priority.NORMAL)
            await engine.enqueue_message({"log": log, "tag": "high"}, Priority.HIGH)
            gate.touch()
            await engine.wait_for_completion(timeout=60)

    run(scenario())
    tags = [fields[0] for fields in read_log(log)]
    # The worker may already hold (prefetch - 1) LOW messages besides the blocker; nothing more.
    assert tags.index("high") <= prefetch
    assert tags.index("high") < tags.index("normal") <= prefetch + 1
    assert [t for t in tags if t.startswith("low")] == [f"low{i}" for i in range(20)]


def test_same_key_runs_in_enqueue_order_while_keys_run_in_parallel(run: Run, config: Config, tmp_path: Path) -> None:
    """Per ordering key, handlers run one at a time in enqueue order, across several workers."""
    log = str(tmp_path / "log")
    keys = ["+15550100", "+15550101", "+15550102", "+15550103"]

    async def scenario() -> None:
        async with MessageParallelizer(SCRIPTED, config(worker_concurrency=8)) as engine:
            for i in range(25):
                for key in keys:
                    await engine.enqueue_message({"log": log, "tag": f"{key}/{i}", "sleep": 0.001}, ordering_key=key)
            await engine.wait_for_completion(timeout=120)

    run(scenario())
    seen: dict[str, list[int]] = defaultdict(list)
    for fields in read_log(log):
        key, i = fields[0].split("/")
        seen[key].append(int(i))
    assert seen == {key: list(range(25)) for key in keys}


def test_a_failing_key_does_not_hold_up_other_keys(run: Run, config: Config, tmp_path: Path) -> None:
    """While one key's message waits out a long retry backoff, other keys' messages all complete; its own wait behind
    it.
    """
    log = str(tmp_path / "log")

    async def scenario() -> None:
        cfg = config(retry_initial_backoff=3600.0, retry_max_backoff=3600.0, retry_jitter=0.0)
        async with MessageParallelizer(SCRIPTED, cfg) as engine:
            await engine.enqueue_message({"log": log, "tag": "a0", "fail_until": 2}, ordering_key="a")
            await engine.enqueue_message({"log": log, "tag": "a1"}, ordering_key="a")
            for i in range(10):
                await engine.enqueue_message({"log": log, "tag": f"b{i}"}, ordering_key="b")
            await wait_until(lambda: engine.get_statistics().completed == 10, what="key b's messages")
            stats = engine.get_statistics()
            assert (stats.retried, stats.queued, stats.in_flight) == (1, 2, 0)
            summary = await engine.shutdown(drain=False)
            assert sorted(m.payload["tag"] for m in summary.remaining) == ["a0", "a1"]

    run(scenario())
    assert "a1" not in [fields[0] for fields in read_log(log)]
