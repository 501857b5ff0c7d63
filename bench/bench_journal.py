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
import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec

from bench.harness import RESULTS_DIR, Comparison, Report, header, interleaved_rates, scaled
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


def journal_run(journal: CoreJournal, batch: PayloadBatch, next_seq: list[int], cycle: bool) -> Callable[[], int]:
    """One timed run: ``MESSAGES`` inserted (and with ``cycle`` dispatched and completed)."""

    def run() -> int:
        seq = next_seq[0]
        end = seq + MESSAGES
        while seq < end:
            count = min(BATCH, end - seq)
            journal.insert_batch(batch, 0, count, seq, 1, 0.0)
            if cycle:
                frames = [(first, min(first + FRAME, seq + count) - 1) for first in range(seq, seq + count, FRAME)]
                for run in frames:
                    journal.dispatch([run])
                for run in frames:
                    journal.complete([run])
            seq += count
        journal.wait(journal.synchronous(True))
        next_seq[0] = seq
        return MESSAGES

    return run


def ledger_run(batch: PayloadBatch) -> Callable[[], int]:
    """The same batches into the engine's in-memory ledger."""

    def run() -> int:
        queue = EntryQueue(3)
        for start in range(0, MESSAGES, BATCH):
            queue.accept_batch(batch, 0, min(BATCH, MESSAGES - start), start, 1, 0.0, 0.0)
        return MESSAGES

    return run


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
    try:
        runs: dict[str, Callable[[], int]] = {"ledger": ledger_run(batch)}
        for sync, journal in journals.items():
            seqs = [0]
            runs[f"insert {sync}"] = journal_run(journal, batch, seqs, cycle=False)
            runs[f"cycle {sync}"] = journal_run(journal, batch, seqs, cycle=True)
        rates = interleaved_rates(runs)
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
                    f"journal {what}, sync={sync}", "EntryQueue.accept_batch", rate, ledger, "msg/s", True, None,
                    samples, ledger_samples,
                )
            )
            if engine is not None and mode == "cycle":
                report.add(
                    Comparison(
                        f"journal {what}, sync={sync}", "engine enqueue_many (engine.json)", rate, engine, "msg/s",
                        True, TARGET, samples, [engine],
                    )
                )
    if engine is not None:
        report.figure("engine no-op enqueue_many, from engine.json [msg/s]", engine)
    report.write()


if __name__ == "__main__":
    main()
