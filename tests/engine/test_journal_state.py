"""The engine's journal across restarts in one process: dead letters, what a shutdown leaves,
dedup keys, refusals (a held lock, a corrupt file, the ``_nowait`` forms), figures and config."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.engine import MessageParallelizer, ParallelizerConfig
from sluiceway.engine.dedup import DedupWindow
from sluiceway.engine.errors import DuplicateMessage
from sluiceway.journal import Journal, JournalError, JournalLocked

SCRIPTED = "sluiceway.testing.handlers:scripted"
Run = Callable[[Coroutine[Any, Any, Any]], Any]
Config = Callable[..., ParallelizerConfig]


def test_dead_letters_replay_and_purge_survive_restarts(run: Run, config: Config, tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    log = str(tmp_path / "log")

    async def first() -> list[str]:
        async with MessageParallelizer(SCRIPTED, config(max_attempts=2), journal=path) as engine:
            ids = [await engine.enqueue_message({"fail": f"no {n}", "log": log, "tag": str(n)}) for n in range(3)]
            await engine.wait_for_completion(30)
            assert sorted(letter.id for letter in engine.dead_letters()) == sorted(ids)
            return ids

    ids = run(first())

    async def second() -> None:
        async with MessageParallelizer(SCRIPTED, config(max_attempts=2), journal=path) as engine:
            letters = engine.dead_letters()
            assert [letter.id for letter in letters] == ids  # the same ids: they are stable across restarts
            assert [letter.payload["fail"] for letter in letters] == ["no 0", "no 1", "no 2"]
            assert {(letter.attempts, letter.reason) for letter in letters} == {(2, "error")}
            assert engine.purge_dead_letters([ids[0]]) == 1

    run(second())

    async def third() -> list[str]:
        async with MessageParallelizer(SCRIPTED, config(max_attempts=1), journal=path) as engine:
            assert [letter.id for letter in engine.dead_letters()] == ids[1:]
            replayed = engine.replay_dead_letters()
            assert len(replayed) == 2 and engine.dead_letters() == []
            await engine.wait_for_completion(30)  # they fail again: dead letters with new ids
            return replayed

    replayed = run(third())

    async def fourth() -> None:
        async with MessageParallelizer(SCRIPTED, config(), journal=path) as engine:
            assert sorted(letter.id for letter in engine.dead_letters()) == sorted(replayed)
            assert engine.purge_dead_letters() == 2

    run(fourth())
    with Journal.open(path) as journal:
        assert journal.dead_letters() == [] and journal.recover().messages == []


def test_what_a_shutdown_leaves_queued_runs_after_the_restart_with_its_priority_key_and_attempts(
    run: Run, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "journal.db"
    log = tmp_path / "log"
    gate = tmp_path / "gate"

    async def first() -> list[tuple[str, int, str | None]]:
        engine = MessageParallelizer(SCRIPTED, config(default_worker_count=1, worker_prefetch=1), journal=path)
        await engine.start()
        await engine.enqueue_message({"gate": str(gate), "log": str(log), "tag": "held"})
        sent = []
        for n in range(6):
            key = "k" if n % 2 else None
            message_id = await engine.enqueue_message({"log": str(log), "tag": "left"}, n % 3, ordering_key=key)
            sent.append((message_id, n % 3, key))
        gate.touch()  # the held message may finish; the rest stays queued
        summary = await engine.shutdown(drain=False)
        left = {message.id for message in summary.remaining}
        return [item for item in sent if item[0] in left]

    left = run(first())
    assert left, "nothing was left queued"
    log.write_text("")

    async def second() -> None:
        async with MessageParallelizer(SCRIPTED, config(default_worker_count=1), journal=path) as engine:
            await engine.wait_for_completion(30)
            assert engine.get_statistics().completed == len(left)

    run(second())
    runs = [line.split() for line in log.read_text().splitlines()]
    assert sorted(fields[1] for fields in runs) == sorted(item[0] for item in left)
    assert {int(fields[2]) for fields in runs} == {1}  # first attempt: never handed over before
    keyed = [fields[1] for fields in runs if any(item[0] == fields[1] and item[2] for item in left)]
    assert keyed == [item[0] for item in left if item[2]]


def test_a_dedup_key_is_accepted_once_within_the_window_and_durably_with_a_journal(
    run: Run, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "journal.db"

    async def accept_twice(journal: Path | None) -> list[bool]:
        async with MessageParallelizer(SCRIPTED, config(), journal=journal) as engine:
            first = engine.accept({"result": 1}, dedup_key="wamid.A")
            second = engine.accept({"result": 2}, dedup_key="wamid.A")
            other = engine.accept({"result": 3}, dedup_key="wamid.B")
            outcomes = [await first.committed, await second.committed, await other.committed]
            results = [await accepted.result for accepted, ok in zip((first, other), outcomes[::2], strict=True) if ok]
            assert results == [n for n, ok in zip((1, 3), outcomes[::2], strict=True) if ok]
            with pytest.raises(DuplicateMessage):
                await second.result
            await engine.wait_for_completion(30)
            return outcomes

    assert run(accept_twice(None)) == [True, False, True]
    assert run(accept_twice(path)) == [True, False, True]
    assert run(accept_twice(path)) == [False, False, False]  # remembered across the restart


@given(
    events=st.lists(st.tuples(st.sampled_from("abcde"), st.floats(0.0, 5.0)), max_size=60),
    window=st.floats(0.5, 10.0),
    max_entries=st.integers(1, 4),
)
def test_dedup_window_matches_a_reference_model(
    events: list[tuple[str, float]], window: float, max_entries: int
) -> None:
    seen = DedupWindow(window, max_entries)
    model: list[tuple[str, float]] = []  # (key, first seen), oldest first
    now = 0.0
    for key, step in events:
        now += step
        model = [(k, at) for k, at in model if now - at < window]
        expected = key not in {k for k, _ in model}
        if expected:
            model.append((key, now))
            model = model[-max_entries:]
        assert seen.first_time(key, now) == expected
        assert len(seen) == len(model)


def test_a_second_engine_on_the_same_journal_is_refused_naming_the_holder(
    run: Run, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "journal.db"

    async def main() -> None:
        async with MessageParallelizer(SCRIPTED, config(), journal=path):
            second = MessageParallelizer(SCRIPTED, config(), journal=path)
            with pytest.raises(JournalLocked, match=rf"\b{os.getpid()}\b"):
                await second.start()
            assert second.worker_pids() == []  # refused before any worker started

    run(main())


def test_a_corrupt_journal_is_refused_at_start_with_its_path(run: Run, config: Config, tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(b"this is not a database at all" * 200)

    async def main() -> None:
        engine = MessageParallelizer(SCRIPTED, config(), journal=path)
        with pytest.raises(JournalError, match=re.escape(str(path))):
            await engine.start()

    run(main())
    assert path.read_bytes() == b"this is not a database at all" * 200


@pytest.mark.parametrize("level", ["full", "normal"])
def test_journal_sync_is_what_sqlite_runs_with(run: Run, config: Config, tmp_path: Path, level: str) -> None:
    async def main() -> str | None:
        async with MessageParallelizer(SCRIPTED, config(journal_sync=level), journal=tmp_path / "j.db") as engine:
            return await engine.journal_synchronous()

    assert run(main()) == level


def test_the_nowait_forms_that_cannot_wait_for_the_commit_are_refused_with_a_journal(
    run: Run, config: Config, tmp_path: Path
) -> None:
    async def main() -> None:
        async with MessageParallelizer(SCRIPTED, config(), journal=tmp_path / "j.db") as engine:
            with pytest.raises(ValueError, match="accept"):
                engine.enqueue_nowait({})
            with pytest.raises(ValueError, match="accept"):
                engine.enqueue_many_nowait([{}])
            assert await engine.submit_nowait({"result": 7}) == 7  # reports no accept: allowed
            ids = await engine.enqueue_many([{"result": n} for n in range(50)])
            assert len(ids) == 50
            await engine.wait_for_completion(30)
            stats = engine.get_statistics()
            assert stats.enqueued == 51 and stats.completed == 51

    run(main())


def test_statistics_carry_the_journal_figures(run: Run, config: Config, tmp_path: Path) -> None:
    async def main() -> None:
        async with MessageParallelizer(SCRIPTED, config(), journal=tmp_path / "j.db") as engine:
            gate = tmp_path / "gate"
            await engine.enqueue_many([{"gate": str(gate)} for _ in range(5)])
            await wait_until(lambda: engine.get_statistics().journal_pending == 5)
            assert engine.get_statistics().journal_bytes > 0
            gate.touch()
            await engine.wait_for_completion(30)
            await wait_until(lambda: engine.get_statistics().journal_pending == 0)
        async with MessageParallelizer(SCRIPTED, config()) as engine:
            stats = engine.get_statistics()
            assert (stats.journal_bytes, stats.journal_pending) == (0, 0)

    run(main())


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("field", "value"),
    [("journal_sync", "off"), ("dedup_window", 0.0), ("dedup_window", float("inf")), ("dedup_max_entries", 0)],
)
def test_journal_config_fields_are_validated(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ParallelizerConfig(**{field: value})


def test_a_journal_must_be_a_path(config: Config) -> None:
    with pytest.raises(ValueError, match="journal must be a path"):
        MessageParallelizer(SCRIPTED, config(), journal=3)  # type: ignore[arg-type]


def test_a_full_disk_fails_the_accept_and_nothing_uncommitted_runs(run: Run, config: Config, tmpfs: Path) -> None:
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"journal-full-{os.getpid()}.log"
    log.unlink(missing_ok=True)

    async def main() -> tuple[list[str], int]:
        accepted: list[str] = []
        async with MessageParallelizer(SCRIPTED, config(), journal=tmpfs / "j.db") as engine:
            with pytest.raises(JournalError, match=r"j\.db"):
                for n in range(10_000):
                    accepted.append(await engine.enqueue_message({"log": str(log), "pad": "x" * 4000, "n": n}))
            await engine.wait_for_completion(30)
            return accepted, engine.get_statistics().completed

    accepted, completed = run(main())
    ran = {line.split()[0] for line in log.read_text().splitlines()}  # no tag: "<id> <attempt> <pid>"
    log.unlink()
    assert ran == set(accepted) and completed == len(accepted)


def test_a_retry_waiting_out_its_backoff_keeps_its_attempt_and_due_time_across_a_restart(
    run: Run, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "journal.db"
    log = tmp_path / "log"

    async def first() -> tuple[str, float]:
        engine = MessageParallelizer(
            SCRIPTED, config(retry_initial_backoff=60.0, retry_max_backoff=60.0, retry_jitter=0.0), journal=path
        )
        await engine.start()
        message_id = await engine.enqueue_message({"fail_until": 2, "log": str(log)}, 0, ordering_key="k")
        await wait_until(lambda: engine.get_statistics().retried == 1)
        failed_at = time.time()
        summary = await engine.shutdown(drain=False)
        assert [message.id for message in summary.remaining] == [message_id]
        return message_id, failed_at

    message_id, failed_at = run(first())
    with Journal.open(path) as journal:
        (message,) = journal.recover().messages
    assert (message.attempt, message.priority, message.ordering_key, message.dispatched) == (1, 0, "k", False)
    assert message.not_before is not None and failed_at + 55 < message.not_before < failed_at + 61

    async def second() -> None:
        # Due now: the restart runs it at once, as its second attempt.
        with Journal.open(path) as journal:
            journal.retry([(message.seq, message.attempt, 0.0)])
        async with MessageParallelizer(SCRIPTED, config(), journal=path) as engine:
            await engine.wait_for_completion(30)

    run(second())
    runs = [line.split()[:2] for line in log.read_text().splitlines()]  # "<id> <attempt> <pid>"
    assert runs == [[message_id, "1"], [message_id, "2"]]  # the same id across the restart


def test_the_monitor_exposes_the_journal_gauges(run: Run, config: Config, tmp_path: Path) -> None:
    import aiohttp

    from sluiceway import MonitorConfig, PerformanceMonitor

    async def main() -> None:
        monitor = PerformanceMonitor(
            MonitorConfig(metric_collection_interval=0.1, performance_check_interval=0.2, http_port=0)
        )
        gate = tmp_path / "gate"
        async with (
            MessageParallelizer(SCRIPTED, config(), monitor=monitor, journal=tmp_path / "j.db") as engine,
            aiohttp.ClientSession() as http,
        ):
            await engine.enqueue_many([{"gate": str(gate)} for _ in range(3)])

            async def metrics() -> str:
                if monitor.http_url is None:  # its process is still starting
                    return ""
                async with http.get(monitor.http_url + "/metrics") as response:
                    return await response.text()

            deadline = time.monotonic() + 60
            text = await metrics()
            while "sluiceway_journal_pending_messages 3.0" not in text:
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.05)
                text = await metrics()
            size = next(line for line in text.splitlines() if line.startswith("sluiceway_journal_bytes "))
            assert float(size.split()[1]) > 0
            gate.touch()
            await engine.wait_for_completion(30)

    run(main())
