"""The awaitable face: futures resolve from the commit pipe, in order, with results and errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from sluiceway._core import PayloadBatch
from sluiceway.journal import Journal, JournalError, seq_runs


def test_queued_operations_apply_in_order_and_resolve_with_their_results(tmp_path: Path) -> None:
    async def main() -> None:
        journal = Journal.open(tmp_path / "j.db")
        aio = journal.aio
        batch = PayloadBatch(msgspec.msgpack.encode([{"n": i} for i in range(100)]))
        # Not awaited one by one: the writer applies them in submission order anyway.
        futures = [
            aio.insert_batch(batch, 0, 60, 0, 1, 5.0),
            aio.insert_batch(batch, 60, 100, 60, 0, 6.0, "+15550001"),
            aio.dispatch(seq_runs(range(80))),
            aio.complete([(0, 49)]),
            aio.requeue([(50, 59)]),
            aio.stats(),
        ]
        results = await asyncio.gather(*futures)
        assert results[:5] == [None, None, 80, 50, 10]
        stats = results[5]
        assert (stats.pending, stats.dispatched, stats.next_seq) == (50, 20, 100)
        recovery = await aio.recover()
        assert [m.seq for m in recovery.suspects] == list(range(60, 80))
        assert recovery.messages[10].payload == msgspec.msgpack.encode({"n": 60})
        assert recovery.messages[10].ordering_key == "+15550001"
        await aio.aclose()
        assert journal.closed

    asyncio.run(main())


def test_a_failed_operation_raises_in_its_awaiter_only(tmp_path: Path) -> None:
    async def main() -> None:
        journal = Journal.open(tmp_path / "j.db")
        aio = journal.aio
        good = aio.insert_payloads(0, [b"a"], 1, 0.0)
        bad = aio.dead_letter(41, "poison")
        after = aio.outbox_add("+1", b"reply")
        await good
        with pytest.raises(ValueError, match="no journaled message has seq 41"):
            await bad
        assert await after == 1
        journal.close()

    asyncio.run(main())


def test_closing_fails_what_never_committed_and_resolves_what_did(tmp_path: Path) -> None:
    async def main() -> None:
        journal = Journal.open(tmp_path / "j.db")
        aio = journal.aio
        committed = aio.insert_payloads(0, [b"a"], 1, 0.0)
        await aio.aclose()
        assert committed.done() and committed.result() is None
        with pytest.raises(JournalError, match="is closed"):
            journal.aio.stats()

    asyncio.run(main())


def test_accept_webhook_reports_duplicates_with_the_injected_clock(tmp_path: Path) -> None:
    now = [1_000.0]

    async def main() -> None:
        journal = Journal.open(tmp_path / "j.db", clock=lambda: now[0], dedup_window=60)
        aio = journal.aio
        assert await aio.accept_webhook("wamid.A", 0, b"hi", 1) is False
        assert await aio.accept_webhook("wamid.A", 1, b"hi", 1) is True
        now[0] += 61
        assert await aio.expire() == 1
        assert await aio.accept_webhook("wamid.A", 1, b"hi again", 1) is False
        assert [m.enqueued_at for m in (await aio.recover()).messages] == [1_000.0, 1_061.0]
        journal.close()

    asyncio.run(main())


def test_seq_runs_covers_exactly_the_given_seqs() -> None:
    assert seq_runs([]) == []
    assert seq_runs([5, 1, 2, 3, 3, 9, 10]) == [(1, 3), (5, 5), (9, 10)]


def test_the_file_stays_bounded_under_steady_load_and_the_wal_is_truncated_when_idle(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db", sync="normal", idle_interval=0.05) as journal:
        seq = 0
        sizes = []
        for _ in range(30):
            journal.insert_payloads(seq, [bytes(200)] * 500, 1, 0.0)
            journal.dispatch([(seq, seq + 499)])
            journal.complete([(seq, seq + 499)])
            seq += 500
            sizes.append(journal.stats().file_bytes)
        # 15,000 messages of 200 bytes went through; the file holds about one round's worth.
        assert max(sizes[10:]) <= 2 * max(sizes[:10])
        deadline = time.monotonic() + 10
        while journal.stats().wal_bytes > 0:
            assert time.monotonic() < deadline, "the idle checkpoint never truncated the WAL"
            time.sleep(0.05)
        assert journal.stats().db_bytes < 1_000_000


def test_a_blocking_close_commits_and_resolves_what_the_loop_queued(tmp_path: Path) -> None:
    async def main() -> None:
        journal = Journal.open(tmp_path / "j.db")
        aio = journal.aio
        inserted = aio.insert_payloads(0, [b"a", b"b"], 1, 0.0)
        dispatched = aio.dispatch([(0, 1)])
        journal.close()
        assert inserted.result() is None
        assert dispatched.result() == 2

    asyncio.run(main())
    with Journal.open(tmp_path / "j.db") as journal:
        assert [m.attempt for m in journal.recover().messages] == [1, 1]
