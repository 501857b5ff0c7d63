"""Test doubles: engine handlers that tests (and the benchmark) run in real worker processes.

Each takes a ``Message`` whose payload is a dict saying what to do, so one handler module
serves every scenario: record to a file (the order handlers ran in, across processes),
fail, crash, hang, block the loop, or wait for a file to appear. Never used by library code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from sluiceway.engine.context import current_worker
from sluiceway.engine.message import Message

#: Seconds between checks of a gate file (a test double's condition wait, not a timing guess).
GATE_POLL_INTERVAL = 0.005


async def noop(message: Message) -> None:
    """Does nothing: measures the engine's own cost."""


async def imported_modules(message: Message) -> list[str]:
    """Returns the names of the modules this worker has imported: what starting a worker loads."""
    return sorted(sys.modules)


async def sleep_5ms(message: Message) -> None:
    """Awaits 5 ms: an I/O-bound handler."""
    await asyncio.sleep(0.005)


def _record(path: str, line: str) -> None:
    # O_APPEND writes of one short line are atomic, so concurrent workers never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


async def _wait_for_file(path: str) -> None:
    while not os.path.exists(path):
        await asyncio.sleep(GATE_POLL_INTERVAL)


async def scripted(message: Message) -> Any:
    """Runs the payload's script, a dict with any of these keys, in this order.

    - ``gate``: wait until this file exists;
    - ``sleep``: await ``asyncio.sleep`` for this many seconds;
    - ``log``: append ``"<tag> <id> <attempt> <pid>"`` to this file (``tag`` defaults to "");
    - ``fail_until``: raise ``ValueError`` while ``message.attempt`` is below this;
    - ``fail``: always raise ``ValueError`` with this text;
    - ``crash``: SIGKILL this worker process (on every attempt);
    - ``hang``: await forever (cancelled by ``worker_timeout``);
    - ``block``: block the event loop forever (the worker stops answering heartbeats);
    - ``broadcast``: ``[topic, payload_str]`` to broadcast to every worker and await;
    - ``result``: return this value (``"pid"`` returns this worker's pid).
    """
    script = message.payload
    if "gate" in script:
        await _wait_for_file(script["gate"])
    if "sleep" in script:
        await asyncio.sleep(script["sleep"])
    if "log" in script:
        _record(script["log"], f"{script.get('tag', '')} {message.id} {message.attempt} {os.getpid()}")
    if message.attempt < script.get("fail_until", 0):
        raise ValueError(f"failing attempt {message.attempt} on purpose")
    if "fail" in script:
        raise ValueError(script["fail"])
    if script.get("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    if script.get("hang"):
        await asyncio.Event().wait()
    if script.get("block"):
        while True:
            time.sleep(3600)
    if "broadcast" in script:
        topic, payload = script["broadcast"]
        await current_worker().broadcast(topic, payload.encode())
    result = script.get("result")
    return os.getpid() if result == "pid" else result


def sync_scripted(message: Message) -> Any:
    """A synchronous handler (run in a worker thread): sleeps ``sleep`` seconds, returns ``result``."""
    time.sleep(message.payload.get("sleep", 0))
    return message.payload.get("result")


def subscribe_recorder() -> None:
    """A worker setup hook: appends every broadcast on "note" to the file it names, with this pid."""

    def on_note(payload: bytes) -> None:
        path, text = payload.decode().split("|", 1)
        _record(path, f"{os.getpid()} {text}")

    current_worker().subscribe("note", on_note)


def failing_setup() -> None:
    """A worker setup hook that fails, so that the engine's start must report it."""
    raise RuntimeError("setup failed on purpose")


def read_log(path: str | Path) -> list[list[str]]:
    """The lines a ``scripted`` handler logged, split into fields."""
    p = Path(path)
    return [line.split(" ") for line in p.read_text().splitlines()] if p.exists() else []
