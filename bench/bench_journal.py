"""The durable journal's raw throughput: ``python -m bench journal``.

No-op messages go through the journal as the engine will journal them: one insert per
``enqueue_many`` batch (a ``PayloadBatch`` range), one dispatch per DISPATCH frame and one
completion per ack frame, each a seq run. Nothing waits for a commit but the last
operation, as the engine awaits only what it must (the writer groups the rest). Measured
for ``sync="full"`` and ``"normal"``, beside the in-memory ledger the engine uses without
a journal (``EntryQueue.accept_batch``, interleaved in the same run) and beside the
engine's no-op ``enqueue_many`` rate recorded in ``bench/results/engine.json`` (the
issue's target: journaled >= 0.3x of it).

Then the engine itself (``MessageParallelizer(journal=path)``, 2 workers, no-op handler):
``enqueue_many`` with the journal at ``full`` and ``normal`` beside the same engine in
memory (target: ``full`` >= 0.3x), ``enqueue_message`` from 64 concurrent producers (each
awaits its commit; concurrent commits share transactions), and, when ``redis-server`` and
dramatiq are installed, dramatiq on a Redis with ``appendonly yes, appendfsync everysec``
(the issue's peer target: >= 25x). Writes ``bench/results/journal.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from bench.harness import REPEAT, RESULTS_DIR, Comparison, Report, header, interleaved_rates, scaled, write_merged
from sluiceway._core import EntryQueue, PayloadBatch
from sluiceway._core import Journal as CoreJournal
from sluiceway.engine import MessageParallelizer, ParallelizerConfig

#: Messages per timed run.
MESSAGES = scaled(200_000)
#: Payloads per insert: the engine bench's ``enqueue_many`` batch.
BATCH = 10_000
#: Messages per DISPATCH frame and per ack frame.
FRAME = 256
#: Target from the issue: journaled throughput >= 0.3x the engine's in-memory enqueue_many.
TARGET = 0.3
#: Target from the issue: the journaled engine (sync=full) >= 25x dramatiq on Redis with AOF everysec.
TARGET_VS_DRAMATIQ_AOF = 25.0
#: Messages per engine run (``enqueue_many`` and the 64 producers).
ENGINE_MESSAGES = scaled(100_000)
#: Concurrent ``enqueue_message`` producers.
PRODUCERS = 64
#: Messages per dramatiq run (it is far slower).
DRAMATIQ_MESSAGES = scaled(5_000)
#: Redis AOF fsync policies dramatiq is measured with: once a second, and on every write (as durable as ours).
AOF_POLICIES = ("everysec", "always")
#: The soak (``--soak SECONDS``): messages/s, and seconds between size samples.
SOAK_RATE, SOAK_SAMPLE = 500, 30.0
#: The soak's figures start with this (a new soak replaces them all).
SOAK_FIGURES = f"soak at {SOAK_RATE} msg/s"
#: Messages per persist-queue run (a commit per call).
PERSIST_QUEUE_MESSAGES = scaled(5_000)
#: The engine bench's configuration: 2 workers, a high-water mark that lets producers run ahead.
ENGINE_CONFIG = ParallelizerConfig(
    default_worker_count=2, min_workers=1, max_workers=2, queue_high_water_mark=20_000, queue_low_water_mark=10_000
)
NOOP = "sluiceway.testing.handlers:noop"


def journal_run(
    journal: CoreJournal, batch: PayloadBatch, next_seq: list[int], submitted: list[int], cycle: bool
) -> Callable[[], int]:
    """One timed run: ``MESSAGES`` inserted (and with ``cycle`` dispatched and completed).

    ``next_seq[0]`` carries the seqs on from run to run; ``submitted[0]`` counts operations.
    """

    def run() -> int:
        seq = next_seq[0]
        end = seq + MESSAGES
        while seq < end:
            count = min(BATCH, end - seq)
            journal.insert_batch(batch, 0, count, seq, 1, 0.0)
            if cycle:
                frames = [(first, min(first + FRAME, seq + count) - 1) for first in range(seq, seq + count, FRAME)]
                for frame in frames:
                    journal.dispatch([frame])
                for frame in frames:
                    journal.complete([frame])
                submitted[0] += 2 * len(frames)
            submitted[0] += 1
            seq += count
        journal.wait(journal.synchronous(True))
        submitted[0] += 1
        next_seq[0] = seq
        return MESSAGES

    return run


def check_all_applied(journal: CoreJournal, sync: str) -> None:
    """Fail the bench if any operation failed: a fast figure for work not done is worthless."""
    _, results, _ = journal.drain()
    failed = [value for _, value in results if isinstance(value, BaseException)]
    if failed:
        raise RuntimeError(f"sync={sync}: {len(failed)} journal operations failed, first: {failed[0]!r}")
    # Only the insert-only runs leave messages behind.
    pending = journal.wait(journal.stats(True))["pending"]
    if pending != REPEAT * MESSAGES:
        raise RuntimeError(f"sync={sync}: {pending} messages pending, expected {REPEAT * MESSAGES}")


def ledger_run(batch: PayloadBatch) -> Callable[[], int]:
    """The same batches into the engine's in-memory ledger."""

    def run() -> int:
        queue = EntryQueue(3)
        for start in range(0, MESSAGES, BATCH):
            queue.accept_batch(batch, 0, min(BATCH, MESSAGES - start), start, 1, 0.0, 0.0)
        return MESSAGES

    return run


def commit_round_trips(journal: CoreJournal, next_seq: list[int]) -> float:
    """Commits per second when each waits for the last: the fsync-bound latency regime."""
    count = scaled(200)
    start = time.perf_counter()
    for seq in range(next_seq[0], next_seq[0] + count):
        journal.wait(journal.insert_payloads(seq, [b"\x80"], 1, 0.0, None, True))
    next_seq[0] += count
    return count / (time.perf_counter() - start)


def engine_enqueue_many_rate() -> float | None:
    """The engine's no-op ``enqueue_many`` msg/s from its last bench run, if recorded."""
    try:
        doc = json.loads((RESULTS_DIR / "engine.json").read_text())
    except (OSError, ValueError):
        return None
    for row in doc.get("rows", []):
        if row.get("case") == "no-op throughput, enqueue_many":
            return float(row["ours"])
    return None


class Engine:
    """One started engine (journaled at ``sync`` under ``workdir``, or in memory) on its own loop."""

    def __init__(self, sync: str | None, workdir: Path) -> None:
        self.loop = uvloop.new_event_loop()
        config = ENGINE_CONFIG if sync is None else msgspec.structs.replace(ENGINE_CONFIG, journal_sync=sync)
        journal = None if sync is None else workdir / f"engine-{sync}.db"
        self.engine = MessageParallelizer(NOOP, config, journal=journal)
        self.loop.run_until_complete(self.engine.start())

    def enqueue_many(self) -> int:
        payloads = [None] * BATCH

        async def run() -> None:
            for start in range(0, ENGINE_MESSAGES, BATCH):
                await self.engine.enqueue_many(payloads[: min(BATCH, ENGINE_MESSAGES - start)])
            await self.engine.wait_for_completion()

        self.loop.run_until_complete(run())
        return ENGINE_MESSAGES

    def producers(self) -> int:
        per_producer = ENGINE_MESSAGES // PRODUCERS

        async def produce() -> None:
            enqueue = self.engine.enqueue_message
            for _ in range(per_producer):
                await enqueue(None)

        async def run() -> None:
            await asyncio.gather(*(produce() for _ in range(PRODUCERS)))
            await self.engine.wait_for_completion()

        self.loop.run_until_complete(run())
        return per_producer * PRODUCERS

    def close(self) -> None:
        summary = self.loop.run_until_complete(self.engine.shutdown())
        self.loop.close()
        if summary.remaining or summary.dead_lettered:
            raise RuntimeError(f"engine run left work behind: {summary}")


@contextmanager
def redis_with_aof(appendfsync: str) -> Iterator[str]:
    """A private redis-server with ``appendonly yes`` and ``appendfsync`` as given; yields its URL."""
    import redis

    from bench.engine import redis_peers

    with redis_peers.redis_server(appendonly=True, appendfsync=appendfsync) as url:
        if redis.Redis.from_url(url).config_get("appendfsync")["appendfsync"] != appendfsync:
            raise RuntimeError(f"redis-server did not take appendfsync {appendfsync}")
        yield url


def dramatiq_aof_rates() -> dict[str, list[float]] | None:
    """dramatiq no-op msg/s on Redis with AOF, per ``appendfsync`` policy (REPEAT runs each); None if it cannot run."""
    if shutil.which("redis-server") is None:
        print("  (redis-server not installed: the dramatiq rows are skipped)")
        return None
    try:
        import dramatiq  # noqa: F401
    except ImportError:
        print("  (dramatiq not installed: pip install '.[bench]'; the dramatiq rows are skipped)")
        return None
    from bench.engine import redis_peers

    rates: dict[str, list[float]] = {}
    for appendfsync in AOF_POLICIES:
        with redis_with_aof(appendfsync) as url:
            os.environ[redis_peers.URL_VARIABLE] = url
            peers: Any = importlib.reload(redis_peers)
            rates[appendfsync] = [peers.dramatiq_rate(url, DRAMATIQ_MESSAGES) for _ in range(REPEAT)]
    return rates


def persist_queue_rates(workdir: Path) -> list[float] | None:
    """persist-queue's ``SQLiteAckQueue`` (WAL, synchronous=FULL, a commit per call): put, get and ack
    ``PERSIST_QUEUE_MESSAGES`` no-op messages in one thread, msg/s per run; None if it is not installed."""
    try:
        import persistqueue
    except ImportError:
        print("  (persist-queue not installed: pip install '.[bench]'; its row is skipped)")
        return None
    rates = []
    for run in range(REPEAT):
        queue = persistqueue.SQLiteAckQueue(str(workdir / f"persist-queue-{run}"), auto_commit=True)
        start = time.perf_counter()
        for n in range(PERSIST_QUEUE_MESSAGES):
            queue.put({"n": n})
        for _ in range(PERSIST_QUEUE_MESSAGES):
            queue.ack(queue.get(block=False))
        rates.append(PERSIST_QUEUE_MESSAGES / (time.perf_counter() - start))
        if queue.size:
            raise RuntimeError(f"persist-queue left {queue.size} messages")
    return rates


def engine_rows(report: Report, workdir: Path) -> None:
    header(f"engine: no-op messages, {ENGINE_MESSAGES:,} per run, 2 workers")
    engines = {name: Engine(sync, workdir) for name, sync in (("memory", None), ("full", "full"), ("normal", "normal"))}
    try:
        runs: dict[str, Callable[[], int]] = {}
        for name, engine in engines.items():
            runs[f"many {name}"] = engine.enqueue_many
            runs[f"producers {name}"] = engine.producers
        rates = interleaved_rates(runs)
    finally:
        for engine in engines.values():
            engine.close()
    memory, memory_samples = rates["many memory"]
    for sync in ("full", "normal"):
        rate, samples = rates[f"many {sync}"]
        report.add(
            Comparison(
                f"engine enqueue_many, journal sync={sync}",
                "engine enqueue_many in memory",
                rate,
                memory,
                "msg/s",
                True,
                TARGET if sync == "full" else None,
                samples,
                memory_samples,
            )
        )
    producers_memory, producers_memory_samples = rates["producers memory"]
    for sync in ("full", "normal"):
        rate, samples = rates[f"producers {sync}"]
        report.add(
            Comparison(
                f"engine enqueue_message x{PRODUCERS} producers, journal sync={sync}",
                f"engine enqueue_message x{PRODUCERS} in memory",
                rate,
                producers_memory,
                "msg/s",
                True,
                None,
                samples,
                producers_memory_samples,
            )
        )
    full, full_samples = rates["many full"]
    producers_full, producers_full_samples = rates["producers full"]
    dramatiq = dramatiq_aof_rates()
    for appendfsync, samples in (dramatiq or {}).items():
        peer = f"dramatiq (redis, appendonly {appendfsync})"
        target = TARGET_VS_DRAMATIQ_AOF if appendfsync == "everysec" else None
        report.add(
            Comparison(
                "engine enqueue_many, journal sync=full",
                peer,
                full,
                statistics.median(samples),
                "msg/s",
                True,
                target,
                full_samples,
                samples,
            )
        )
        report.add(
            Comparison(
                f"engine enqueue_message x{PRODUCERS} producers, journal sync=full",
                peer,
                producers_full,
                statistics.median(samples),
                "msg/s",
                True,
                None,
                producers_full_samples,
                samples,
            )
        )
    persist_queue = persist_queue_rates(workdir)
    if persist_queue is not None:
        report.add(
            Comparison(
                "engine enqueue_many, journal sync=full",
                "persist-queue SQLiteAckQueue",
                full,
                statistics.median(persist_queue),
                "msg/s",
                True,
                None,
                full_samples,
                persist_queue,
            )
        )


def journal_bytes(path: Path) -> int:
    """The journal's size on disk: the database and its write-ahead log."""
    return sum(file.stat().st_size for file in (path, Path(f"{path}-wal")) if file.exists())


def soak(report: Report, seconds: float) -> None:
    """The engine journaling (sync=full) ``SOAK_RATE`` no-op msg/s for ``seconds``: its size every ``SOAK_SAMPLE`` s.

    Finished messages are deleted from the journal, so its pages are reused and its size should
    stay flat. (The runtime also keeps each webhook's wamid for ``dedup_window``, about 100 bytes
    each: that part grows by design until the window or ``dedup_max_entries`` ends it.)
    """
    header(f"journal soak: {SOAK_RATE} no-op msg/s for {seconds:g} s, engine with 2 workers, sync=full")
    workdir = Path(tempfile.mkdtemp(prefix="bench-journal-soak-"))
    path = workdir / "soak.db"
    engine = MessageParallelizer(NOOP, msgspec.structs.replace(ENGINE_CONFIG, journal_sync="full"), journal=path)
    series: list[tuple[float, int]] = []

    async def run() -> None:
        await engine.start()
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        while (elapsed := loop.time() - start) < seconds:
            due = int(elapsed * SOAK_RATE) - sent
            if due:
                await engine.enqueue_many([None] * due)
                sent += due
            if elapsed >= len(series) * SOAK_SAMPLE:
                series.append((elapsed, journal_bytes(path)))
                print(f"  {elapsed:6.0f} s  {sent:>9,} messages  journal {series[-1][1]:>12,} bytes", flush=True)
            await asyncio.sleep(0.01)
        await engine.wait_for_completion()
        series.append((loop.time() - start, journal_bytes(path)))
        print(f"  {series[-1][0]:6.0f} s  {sent:>9,} messages  journal {series[-1][1]:>12,} bytes (all handled)")
        summary = await engine.shutdown()
        if summary.remaining or summary.dead_lettered:
            raise RuntimeError(f"the soak left work behind: {summary}")

    try:
        uvloop.run(run())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for at, size in series:
        report.figure(f"{SOAK_FIGURES}: journal bytes at {round(at)} s", size)
    # Past the first sample (the journal's first pages): how much it still grew.
    settled = [size for _, size in series[1:]] or [series[0][1]]
    report.figure(
        f"soak at {SOAK_RATE} msg/s: largest / smallest size after {SOAK_SAMPLE:g} s", max(settled) / min(settled)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench journal", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--soak",
        type=float,
        nargs="?",
        const=600.0,
        metavar="SECONDS",
        help="only the soak: the journal's size every 30 s at 500 msg/s (default 600 s); kept with the other rows",
    )
    args = parser.parse_args(argv or [])
    if args.soak is not None:
        report = Report("journal")
        soak(report, args.soak)
        write_merged(report, replaces=(SOAK_FIGURES,))
        return
    report = Report("journal")
    batch = PayloadBatch(msgspec.msgpack.encode([{"n": i} for i in range(BATCH)]))
    workdir = Path(tempfile.mkdtemp(prefix="bench-journal-"))
    journals = {sync: CoreJournal(str(workdir / f"{sync}.db"), sync=sync) for sync in ("full", "normal")}
    submitted = {sync: [0] for sync in journals}
    seqs = {sync: [0] for sync in journals}
    try:
        runs: dict[str, Callable[[], int]] = {"ledger": ledger_run(batch)}
        for sync, journal in journals.items():
            runs[f"insert {sync}"] = journal_run(journal, batch, seqs[sync], submitted[sync], cycle=False)
            runs[f"cycle {sync}"] = journal_run(journal, batch, seqs[sync], submitted[sync], cycle=True)
        rates = interleaved_rates(runs)
        for sync, journal in journals.items():
            check_all_applied(journal, sync)
        per_transaction = {
            sync: submitted[sync][0] / journal.wait(journal.stats(True))["transactions"]
            for sync, journal in journals.items()
        }
        round_trips = {
            sync: statistics.median(commit_round_trips(journal, seqs[sync]) for _ in range(REPEAT))
            for sync, journal in journals.items()
        }
    finally:
        for journal in journals.values():
            journal.close()
        shutil.rmtree(workdir, ignore_errors=True)

    header("journal: no-op messages, batches of 10,000, frames of 256")
    ledger, ledger_samples = rates["ledger"]
    engine = engine_enqueue_many_rate()
    for sync in ("full", "normal"):
        for mode, what in (("insert", "insert"), ("cycle", "insert+dispatch+complete")):
            rate, samples = rates[f"{mode} {sync}"]
            report.add(
                Comparison(
                    f"journal {what}, sync={sync}",
                    "EntryQueue.accept_batch",
                    rate,
                    ledger,
                    "msg/s",
                    True,
                    None,
                    samples,
                    ledger_samples,
                )
            )
            if engine is not None and mode == "cycle":
                report.add(
                    Comparison(
                        f"journal {what}, sync={sync}",
                        "engine enqueue_many (engine.json)",
                        rate,
                        engine,
                        "msg/s",
                        True,
                        TARGET,
                        samples,
                        [engine],
                    )
                )
    for sync, ops in per_transaction.items():
        report.figure(f"operations per transaction (group commit), sync={sync}", ops)
    for sync, rate in round_trips.items():
        report.figure(f"one-at-a-time awaited commits/s (fsync-bound), sync={sync}", rate)
    if engine is not None:
        report.figure("engine no-op enqueue_many, from engine.json [msg/s]", engine)
    engine_dir = Path(tempfile.mkdtemp(prefix="bench-journal-engine-"))
    try:
        engine_rows(report, engine_dir)
    finally:
        shutil.rmtree(engine_dir, ignore_errors=True)
    write_merged(report)  # keeps the last soak's series


if __name__ == "__main__":
    main()
