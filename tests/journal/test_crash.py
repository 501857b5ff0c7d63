"""kill -9 at random moments: every operation reported committed is there, none half-applied."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sluiceway.journal import Journal

BATCH = 50

# The child journals batch after batch (a few in flight at once, so commits group), and
# completes each batch two behind. It prints "I n" once insert n is committed, "S n" just
# before it submits the completion of batch n, "C n" once that is committed. Per batch it
# also records a reply: "O n" once it is in the outbox, "P n" once it is marked sending.
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from sluiceway.journal import Journal

    BATCH = {batch}

    def say(line):
        sys.stdout.write(line + "\\n")
        sys.stdout.flush()

    async def main(path, sync):
        journal = Journal.open(path, sync=sync)
        aio = journal.aio
        n = journal.recover().next_seq // BATCH
        in_flight = []

        async def insert(n):
            payloads = [f"{{n}}:{{k}}".encode() for k in range(BATCH)]
            await aio.insert_payloads(n * BATCH, payloads, n % 3, float(n))
            say(f"I {{n}}")
            reply = await aio.outbox_add("+15550000", str(n).encode(), None, n * BATCH)
            say(f"O {{n}}")
            await aio.outbox_sending(reply)
            say(f"P {{n}}")

        async def complete(n):
            say(f"S {{n}}")
            await aio.complete([(n * BATCH, n * BATCH + BATCH - 1)])
            say(f"C {{n}}")

        inserts = {{}}
        while True:
            inserts[n] = asyncio.ensure_future(insert(n))
            if n - 2 in inserts:
                await inserts.pop(n - 2)
                in_flight.append(asyncio.ensure_future(complete(n - 2)))
            in_flight = [f for f in in_flight if not f.done()]
            if len(in_flight) > 8:
                await in_flight[0]
            n += 1

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
).format(batch=BATCH)


def run_and_kill(path: Path, sync: str, delay: float) -> list[str]:
    """Start the child, let it write for `delay` after its first commit, SIGKILL it; its report."""
    lines: list[str] = []
    first = threading.Event()
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), sync], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        stdout, stderr = child.stdout, child.stderr

        def read() -> None:
            for line in stdout:
                lines.append(line.strip())
                first.set()

        reader = threading.Thread(target=read)
        reader.start()
        try:
            if not first.wait(60):
                child.kill()
                pytest.fail(f"the child reported nothing: {stderr.read()}")
            time.sleep(delay)  # the random moment of the crash, not a wait for a condition
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        finally:
            child.kill()
            reader.join(30)
    assert child.returncode == -signal.SIGKILL
    return lines


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_sigkill_loses_nothing_reported_and_leaves_nothing_half_done(tmp_path: Path, sync: str) -> None:
    path = tmp_path / "journal.db"
    chance = random.Random(f"crash-{sync}")
    inserted: set[int] = set()
    submitted_completions: set[int] = set()
    completed: set[int] = set()
    replies: set[int] = set()
    sending: set[int] = set()
    for _ in range(5):
        for line in run_and_kill(path, sync, chance.uniform(0.02, 0.4)):
            kind, n = line.split()
            reported = {"I": inserted, "S": submitted_completions, "C": completed, "O": replies, "P": sending}
            reported[kind].add(int(n))
        with Journal.open(path, sync=sync) as journal:
            recovery = journal.recover()
            outbox = journal.outbox_unsent()
        states = {int(item.body): item.state for item in outbox}
        assert len(states) == len(outbox), "a reply was recorded twice"
        assert replies <= set(states), "a reply reported committed was lost"
        assert all(states[n] == "sending" for n in sending), "a reply reported sending was not"
        by_batch: dict[int, list[bytes]] = {}
        for m in recovery.messages:
            batch, k = divmod(m.seq, BATCH)
            assert m.payload == f"{batch}:{k}".encode()
            assert (m.priority, m.enqueued_at, m.attempt, m.dispatched) == (batch % 3, float(batch), 0, False)
            by_batch.setdefault(batch, []).append(m.payload)
        # Each insert and each completion is one transaction: a batch is whole or gone.
        assert all(len(rows) == BATCH for rows in by_batch.values())
        assert not completed & set(by_batch), "a completion reported committed was undone"
        assert inserted - submitted_completions <= set(by_batch), "an insert reported committed was lost"
        assert recovery.next_seq % BATCH == 0
        assert recovery.next_seq // BATCH > max(inserted)
    assert len(inserted) > 10, "the child barely ran; the test proved little"
