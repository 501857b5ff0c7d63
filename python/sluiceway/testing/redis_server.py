"""A private ``redis-server`` for tests and benchmarks: a free port on 127.0.0.1, its own directory.

It can be stopped and started again on the same port and directory (a Redis restart mid-run,
with its append-only file replayed), and killed with SIGKILL. The Debian package ``redis-server``
must be installed; :func:`available` says whether it is.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer", "available"]


def available() -> bool:
    """Whether a ``redis-server`` executable is on PATH."""
    return shutil.which("redis-server") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; ``with RedisServer() as server: server.url``.

    ``appendonly`` turns AOF on (``appendfsync`` says how often it syncs); ``maxmemory_policy``
    sets the eviction policy (the runtime refuses an evicting one). ``extra`` appends raw
    ``redis-server`` arguments.
    """

    def __init__(
        self,
        *,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        maxmemory_policy: str = "noeviction",
        directory: Path | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port = _free_port()
        self._owned_directory = tempfile.TemporaryDirectory(prefix="sluiceway-redis-") if directory is None else None
        self.directory = Path(self._owned_directory.name) if self._owned_directory else directory
        assert self.directory is not None
        self._arguments = [
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--appendfsync",
            appendfsync,
            "--maxmemory-policy",
            maxmemory_policy,
            *extra,
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start (or start again, on the same port and directory) and wait until it answers PING."""
        if self.running:
            return
        self._process = subprocess.Popen(
            ["redis-server", *self._arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode} on port {self.port}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"redis-server on port {self.port} did not answer PING within {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM and wait: Redis flushes its append-only file on the way out."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
            self._process.wait()
            self._process = None

    def kill(self) -> None:
        """SIGKILL: whatever the append-only file has not synced is lost, as in a crash."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self._process = None

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._owned_directory is not None:
            self._owned_directory.cleanup()
