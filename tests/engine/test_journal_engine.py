"""The engine with a journal, in real processes: a child process owns the engine (supervisor and
workers in one process group) and is killed with SIGKILL; a new child opens the same journal.

The child writes a message's id to a file only after the accept returned, so the file holds
exactly what was reported accepted; the handler appends each run to a log (O_APPEND lines,
atomic across processes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluiceway.journal import Journal

HANDLERS = textwrap.dedent(
    """
    import os, signal

    def _line(path, text):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (text + "\\n").encode())
        finally:
            os.close(fd)

    async def handle(message):
        script = message.payload
        if script.get("poison"):
            _line(script["log"], f"poison {message.id} {message.attempt}")
            os.killpg(0, signal.SIGKILL)  # the supervisor and every worker with it
        _line(script["log"], f"{message.id} {message.attempt} {int(message.priority)} {message.ordering_key}")
    """
)

# argv: journal, log, accepted file, mode ("produce N" or "drain"), max_attempts.
CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    import uvloop
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from sluiceway.engine import MessageParallelizer, ParallelizerConfig

    journal, log, accepted, mode, count, max_attempts = sys.argv[1:7]

    def note(text):
        fd = os.open(accepted, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (text + "\\n").encode())
        finally:
            os.close(fd)

    async def produce(engine, start, count):
        async def one(n):
            priority, key = n % 3, (f"k{n % 4}" if n % 2 else None)
            payload = {"log": log, "poison": n == 0 and mode == "poison"}
            message_id = await engine.enqueue_message(payload, priority, ordering_key=key)
            note(f"{message_id} {priority} {key}")
        for low in range(start, start + count, 16):
            await asyncio.gather(*(one(n) for n in range(low, min(low + 16, start + count))))

    async def main():
        config = ParallelizerConfig(
            default_worker_count=2, min_workers=1, worker_concurrency=8, max_attempts=int(max_attempts),
            retry_initial_backoff=0.0, retry_max_backoff=0.0, heartbeat_interval=0.25, worker_timeout=20.0,
        )
        engine = MessageParallelizer("jhandlers:handle", config, journal=journal)
        await engine.start()
        if mode in ("produce", "poison"):
            start = sum(1 for _ in open(accepted)) if os.path.exists(accepted) else 0
            await produce(engine, start, int(count))
        await engine.wait_for_completion(120)
        letters = engine.dead_letters()
        await engine.shutdown()
        print("DEAD", " ".join(letter.id for letter in letters), flush=True)

    uvloop.run(main())
    """
)


class Child:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        (tmp / "jhandlers.py").write_text(HANDLERS)
        (tmp / "child.py").write_text(CHILD)
        self.journal = tmp / "journal.db"
        self.log = tmp / "log"
        self.accepted = tmp / "accepted"

    def start(self, mode: str, count: int = 0, max_attempts: int = 4) -> subprocess.Popen[str]:
        args = [str(self.journal), str(self.log), str(self.accepted), mode, str(count), str(max_attempts)]
        # Its own session: killing its process group kills the supervisor and its workers.
        return subprocess.Popen(
            [sys.executable, str(self.tmp / "child.py"), *args],
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, mode: str, count: int = 0, max_attempts: int = 4) -> tuple[int, str, str]:
        process = self.start(mode, count, max_attempts)
        out, err = process.communicate(timeout=180)
        return process.returncode, out, err

    def lines(self, path: Path) -> list[list[str]]:
        return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it finished first
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kills=st.lists(st.tuples(st.integers(1, 15000), st.floats(0.0, 0.3)), min_size=1, max_size=3))
def test_every_reported_accept_survives_sigkill_of_the_whole_process_group(
    tmp_path_factory: pytest.TempPathFactory, kills: list[tuple[int, float]]
) -> None:
    child = Child(tmp_path_factory.mktemp("crash"))
    for accepted_before_kill, extra in kills:
        process = child.start("produce", 20000)
        wait_until(
            lambda process=process, at_least=accepted_before_kill: (
                len(child.lines(child.accepted)) >= at_least or process.poll() is not None
            )
        )
        time.sleep(extra)  # the kill moment: hypothesis picks how far past the threshold
        kill_group(process)
    code, out, err = child.run("drain")
    assert code == 0, err

    accepted = {fields[0]: fields for fields in child.lines(child.accepted)}
    runs: dict[str, list[list[str]]] = defaultdict(list)
    for fields in child.lines(child.log):
        runs[fields[0]].append(fields)
    assert out.split() == ["DEAD"]  # the handler never fails: nothing is dead-lettered
    for message_id, (_, priority, key) in accepted.items():
        assert runs[message_id], f"{message_id} was reported accepted and never ran"
        attempts = [int(run[1]) for run in runs[message_id]]
        assert attempts == sorted(attempts), f"{message_id}: attempts went back {attempts}"
        assert {(run[2], run[3]) for run in runs[message_id]} == {(priority, key)}
    # Per ordering key, messages first ran in the order they were accepted.
    seq = {message_id: int(message_id.rsplit("-", 1)[1]) for message_id in runs}
    first_runs: dict[str, list[int]] = defaultdict(list)
    for message_id, *_rest, key in (fields for fields in child.lines(child.log)):
        if key != "None" and seq[message_id] not in first_runs[key]:
            first_runs[key].append(seq[message_id])
    for key, order in first_runs.items():
        assert order == sorted(order), f"key {key} ran out of order: {order}"
    with Journal.open(child.journal) as journal:
        assert journal.recover().messages == []


def test_a_message_that_kills_the_whole_process_is_dead_lettered_after_max_attempts_starts(tmp_path: Path) -> None:
    child = Child(tmp_path)
    max_attempts = 3
    starts = 0
    code = None
    out = err = ""
    while code != 0:
        starts += 1
        assert starts <= max_attempts + 2, f"still not through after {starts} starts: {err}"
        code, out, err = child.run("poison" if starts == 1 else "drain", 40, max_attempts)
        assert code in (0, -signal.SIGKILL), err
    poison_runs = [fields for fields in child.lines(child.log) if fields[0] == "poison"]
    poison_id = poison_runs[0][1]
    # Its starts count, except one it may have shared with other messages in flight (then
    # nobody was to blame yet: refunded, as when a worker dies holding several).
    attempts = [int(fields[2]) for fields in poison_runs]
    assert attempts in (list(range(1, max_attempts + 1)), [1, *range(1, max_attempts + 1)])
    assert out.split() == ["DEAD", poison_id]
    ran = {fields[0] for fields in child.lines(child.log)}
    for message_id, *_ in child.lines(child.accepted):
        assert message_id == poison_id or message_id in ran
    with Journal.open(child.journal) as journal:
        assert journal.recover().messages == []
        (letter,) = journal.dead_letters()
        assert letter.reason == "crashed" and letter.attempts == max_attempts


PROGRAM = textwrap.dedent(
    """
    import asyncio, sys
    from sluiceway.engine import MessageParallelizer, ParallelizerConfig, run

    journal, log, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

    async def main(engine):
        await engine.enqueue_many([{"sleep": 0.01, "log": log} for _ in range(count)])
        print("enqueued", flush=True)
        await asyncio.Event().wait()

    config = ParallelizerConfig(default_worker_count=2, min_workers=1, worker_concurrency=4)
    summary = run(MessageParallelizer("sluiceway.testing.handlers:scripted", config, journal=journal), main)
    print("completed", summary.completed, "remaining", len(summary.remaining), flush=True)
    """
)


def test_sigterm_drains_a_journaled_engine_and_leaves_the_journal_empty(tmp_path: Path) -> None:
    (tmp_path / "program.py").write_text(PROGRAM)
    journal, log, count = tmp_path / "journal.db", tmp_path / "log", 200
    program = subprocess.Popen(
        [sys.executable, str(tmp_path / "program.py"), str(journal), str(log), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert program.stdout is not None
        assert program.stdout.readline().strip() == "enqueued"
        program.send_signal(signal.SIGTERM)
        out, _ = program.communicate(timeout=120)
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()
    assert program.returncode == 0
    assert out.strip() == f"completed {count} remaining 0"
    with Journal.open(journal) as opened:
        assert opened.recover().messages == []
