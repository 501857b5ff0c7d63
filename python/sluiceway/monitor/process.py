"""The monitor process: psutil sampling and the HTTP endpoints, away from the supervisor's loop.

The supervisor starts it with ``MonitorProcess.start()`` and talks to it over a Unix
socket pair in length-prefixed msgpack frames (``sluiceway.monitor.wire``): one
``Publish`` per collection down, one ``Sample`` per collection up. Blocking ``/proc``
reads and Prometheus rendering thus never stall the supervisor, and no per-message
work crosses the boundary. The process exits when the supervisor closes the socket
(or dies).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Callable

from sluiceway.monitor.config import MonitorConfig
from sluiceway.monitor.report import ResourceSample
from sluiceway.monitor.wire import (
    Hello,
    Publish,
    Ready,
    Sample,
    encode,
    from_monitor_decoder,
    read_frame,
    to_monitor_decoder,
)

#: Seconds the monitor process may take to import, bind and report ready.
START_TIMEOUT = 60.0
#: Seconds to wait for the process to exit after the socket closes, before killing it.
STOP_TIMEOUT = 10.0
#: Snapshots not yet read by a stalled monitor process beyond which new ones are dropped.
MAX_PENDING_BYTES = 4 * 1024 * 1024

log = logging.getLogger("sluiceway.monitor")


class MonitorProcess:
    """Handle on the monitor process, from the supervisor's side.

    Example::

        process = MonitorProcess(config, on_sample=print)
        url = await process.start()
        process.publish(snapshot)
        await process.stop()
    """

    def __init__(self, config: MonitorConfig, on_sample: Callable[[ResourceSample], None]) -> None:
        self._config = config
        self._on_sample = on_sample
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.url: str | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self, supervisor_pid: int) -> str:
        """Spawn the process and wait until it serves HTTP; returns its base URL."""
        ours, theirs = socket.socketpair()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sluiceway.monitor", str(theirs.fileno()), pass_fds=(theirs.fileno(),)
            )
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        self._writer.write(encode(Hello(config=self._config, supervisor_pid=supervisor_pid)))
        try:
            ready = from_monitor_decoder.decode(await asyncio.wait_for(read_frame(reader), START_TIMEOUT))
        except asyncio.IncompleteReadError:
            await self.stop()
            address = f"{self._config.http_host}:{self._config.http_port}"
            raise RuntimeError(
                f"the monitor process exited while starting (is {address} free?); see its stderr"
            ) from None
        except BaseException:
            await self.stop()
            raise
        if not isinstance(ready, Ready):
            await self.stop()
            raise RuntimeError(f"monitor process sent {type(ready).__name__} before Ready")
        self.url = ready.url
        self._reader_task = asyncio.get_running_loop().create_task(self._read_samples(reader))
        return ready.url

    async def _read_samples(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                message = from_monitor_decoder.decode(await read_frame(reader))
                if isinstance(message, Sample):
                    self._on_sample(message.sample)
        log.info("monitor process closed its socket")

    def publish(self, snapshot: Publish) -> None:
        """Send a snapshot without waiting; dropped if the process has fallen behind."""
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        if writer.transport.get_write_buffer_size() > MAX_PENDING_BYTES:
            log.warning("monitor process is not reading; snapshot dropped")
            return
        writer.write(encode(snapshot))

    async def stop(self) -> None:
        """Close the socket and wait for the process to exit (killing it after ``STOP_TIMEOUT``)."""
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            self._reader_task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
            self._writer = None
        if self._process is not None:
            try:
                await asyncio.wait_for(self._process.wait(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                self._process.kill()
                await self._process.wait()
            self._process = None


async def serve(sock: socket.socket) -> None:
    """The monitor process's main loop: sample, serve HTTP, apply snapshots until the socket closes."""
    # Imported here, in the monitor process only: prometheus_client would add time to
    # every process that merely imports sluiceway.
    from sluiceway.http import HttpServer
    from sluiceway.monitor.exposition import ExpositionState, build_routes
    from sluiceway.monitor.sampling import ResourceSampler

    reader, writer = await asyncio.open_unix_connection(sock=sock)
    hello = to_monitor_decoder.decode(await read_frame(reader))
    if not isinstance(hello, Hello):
        raise RuntimeError(f"expected Hello first, got {type(hello).__name__}")
    config = hello.config
    state = ExpositionState()
    sampler = ResourceSampler(hello.supervisor_pid)
    server = HttpServer(build_routes(state).handle)
    await server.start(config.http_host, config.http_port)
    port = server.port  # the real port when http_port is 0
    host = f"[{config.http_host}]" if ":" in config.http_host else config.http_host
    writer.write(encode(Ready(url=f"http://{host}:{port}")))
    worker_pids: list[int] = []

    async def sample_forever() -> None:
        while True:
            state.sample = sampler.sample(worker_pids)
            writer.write(encode(Sample(sample=state.sample)))
            await asyncio.sleep(config.metric_collection_interval)

    sampling = asyncio.get_running_loop().create_task(sample_forever())
    try:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                message = to_monitor_decoder.decode(await read_frame(reader))
                if isinstance(message, Publish):
                    state.update(message)
                    worker_pids = message.worker_pids
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sampling
        await server.stop()


def main(argv: list[str]) -> None:
    """Entry point: ``python -m sluiceway.monitor FD`` with the socket's file descriptor."""
    if len(argv) != 1 or not argv[0].isdigit():
        raise SystemExit("usage: python -m sluiceway.monitor FD")
    sock = socket.socket(fileno=int(argv[0]))
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # Windows has no uvloop
        runner = asyncio.run  # type: ignore[assignment]
    runner(serve(sock))
