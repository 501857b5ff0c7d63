"""A sampling profiler: which functions a process spends its time in, without stopping it.

A background thread reads the target thread's stack (``sys._current_frames``) every
``SAMPLE_INTERVAL`` seconds and counts, per function, the samples where it was running
(self) and those where it was on the stack (total). Unlike cProfile it adds no cost
to each call, so it is safe on a production worker.

Workers opt in with ``install_worker_profiler()`` (e.g. in the engine's per-worker
setup): it starts a thread that listens on a Unix socket named after the pid in
``PROFILER_DIR``; ``PerformanceMonitor.profile(worker=pid)`` connects there.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec

#: Seconds between two stack samples.
SAMPLE_INTERVAL = 0.005
#: Functions listed in a profile, busiest first.
TOP_FUNCTIONS = 25
#: Where workers' profiler sockets live (one per pid).
PROFILER_DIR = Path(tempfile.gettempdir()) / f"sluiceway-profilers-{os.getuid()}"

_LENGTH = struct.Struct(">I")


class FunctionStat(msgspec.Struct, kw_only=True, frozen=True):
    """One function's share of the samples."""

    function: str
    file: str
    line: int
    self_samples: int
    total_samples: int
    self_fraction: float
    total_fraction: float


class Profile(msgspec.Struct, kw_only=True, frozen=True):
    """The top functions of process ``pid`` over ``seconds`` (``samples`` stacks read)."""

    pid: int
    started_at: float
    seconds: float
    samples: int
    top: list[FunctionStat]


def sample_stacks(seconds: float, thread_id: int | None = None, interval: float = SAMPLE_INTERVAL) -> Profile:
    """Sample ``thread_id``'s stack (default: the main thread) for ``seconds``; blocks the caller.

    Call it from another thread than the one sampled (``profile_in_thread`` does).

    Example::

        profile = await asyncio.to_thread(sample_stacks, 2.0)
        profile.top[0].function
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    target = threading.main_thread().ident if thread_id is None else thread_id
    if target is None:
        raise ValueError("the thread to sample has not started")
    own: collections.Counter[tuple[str, str, int]] = collections.Counter()
    total: collections.Counter[tuple[str, str, int]] = collections.Counter()
    samples = 0
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(target)
        if frame is not None:
            samples += 1
            seen: set[tuple[str, str, int]] = set()
            top = True
            while frame is not None:
                code = frame.f_code
                key = (code.co_qualname, code.co_filename, code.co_firstlineno)
                if top:
                    own[key] += 1
                    top = False
                if key not in seen:
                    seen.add(key)
                    total[key] += 1
                frame = frame.f_back
        time.sleep(interval)
    ranked = sorted(total, key=lambda k: (own[k], total[k]), reverse=True)[:TOP_FUNCTIONS]
    n = max(samples, 1)
    return Profile(
        pid=os.getpid(),
        started_at=started,
        seconds=seconds,
        samples=samples,
        top=[
            FunctionStat(
                function=name,
                file=path,
                line=line,
                self_samples=own[(name, path, line)],
                total_samples=total[(name, path, line)],
                self_fraction=own[(name, path, line)] / n,
                total_fraction=total[(name, path, line)] / n,
            )
            for name, path, line in ranked
        ],
    )


def socket_path(pid: int) -> Path:
    """Where worker ``pid``'s profiler listens."""
    return PROFILER_DIR / f"{pid}.sock"


def install_worker_profiler() -> Path:
    """Let the monitor profile this process on request; returns the socket path. Idempotent.

    Example::

        async def setup() -> None:          # the engine's per-worker setup hook
            install_worker_profiler()
    """
    path = socket_path(os.getpid())
    if path.exists():
        return path
    PROFILER_DIR.mkdir(mode=0o700, exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(2)
    main_thread = threading.main_thread().ident

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            with conn:
                try:
                    (seconds,) = struct.unpack(">d", _recv_exactly(conn, 8))
                    body = msgspec.msgpack.encode(sample_stacks(seconds, main_thread))
                except (OSError, ValueError) as exc:
                    body = msgspec.msgpack.encode(str(exc))
                conn.sendall(_LENGTH.pack(len(body)) + body)

    threading.Thread(target=serve, name="sluiceway-profiler", daemon=True).start()
    import atexit

    atexit.register(lambda: path.unlink(missing_ok=True))
    return path


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ValueError("profiler request cut short")
        data += chunk
    return data


def has_profiler(pid: int) -> bool:
    """Whether worker ``pid`` called ``install_worker_profiler()``."""
    return socket_path(pid).exists()


async def profile_process(pid: int, seconds: float) -> Profile:
    """Ask worker ``pid``'s profiler for ``seconds`` of samples."""
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    if pid == os.getpid():
        return await asyncio.to_thread(sample_stacks, seconds)
    if not has_profiler(pid):
        raise ValueError(
            f"process {pid} has no profiler: call sluiceway.monitor.install_worker_profiler() in its setup"
        )
    reader, writer = await asyncio.open_unix_connection(str(socket_path(pid)))
    try:
        writer.write(struct.pack(">d", seconds))
        await writer.drain()
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        result = msgspec.msgpack.decode(await reader.readexactly(length), type=Profile | str)
    finally:
        writer.close()
    if isinstance(result, str):
        raise ValueError(f"profiler of process {pid} failed: {result}")
    return result
