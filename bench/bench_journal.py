"""The durable journal's raw throughput: ``python -m bench journal``.

No-op messages go through the journal as the engine will journal them: one insert per
``enqueue_many`` batch (a ``PayloadBatch`` range), one dispatch per DISPATCH frame and one
completion per ack frame, each a seq run. Nothing waits for a commit but the last
operation, as the engine awaits only what it must (the writer groups the rest). Measured
for ``sync="full"`` and ``"normal"``, beside the in-memory ledger the engine uses without
a journal (``EntryQueue.accept_batch``, interleaved in the same run) and beside the
engine's no-op ``enqueue_many`` rate recorded in ``bench/results/engine.json`` (the
issue's target: journaled >= 0.3x of it). Writes ``bench/results/journal.json``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from bench.harness import REPEAT, RESULTS_DIR, Comparison, Report, header, interleaved_rates, scaled
from sluiceway._core import EntryQueue, PayloadBatch
from sluiceway._core import Journal as CoreJournal

#: Messages per timed run.
MESSAGES = scaled(200_000)
#: Payloads per insert: the engine bench's ``enqueue_many`` batch.
BATCH = 10_000
#: Messages per DISPATCH frame and per ack frame.
FRAME = 256
#: Target from the issue: journaled throughput >= 0.3x the engine's in-memory enqueue_many.
TARGET = 0.3


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


def main() -> None:
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
    report.write()


if __name__ == "__main__":
    main()
