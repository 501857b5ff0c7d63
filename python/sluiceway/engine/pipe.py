"""Framed msgpack over pipes between the supervisor and its workers.

A frame is a 4-byte little-endian length and a msgpack array whose first item is the
frame kind. Messages travel in batches (one DISPATCH frame carries many, one REPORT
frame acknowledges many), so the per-message cost is a few hundred nanoseconds of
encoding rather than a system call (``python -m bench engine`` measures this floor).
Pipes rather than a shared-memory ring: once frames are batched the kernel copy is cheap
next to msgpack, and an event loop can wait on a pipe without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
from collections.abc import Callable
from typing import Any

import msgspec

# Supervisor → worker frames.
#: ``[INIT, settings]``: the first frame a worker reads.
INIT = 1
#: ``[DISPATCH, [[seq, attempt, priority, enqueued_at, key, want_result, payload, enqueued], ...]]``
#: (written by the Rust ``EntryQueue``; ``want_result`` is ``true`` or nil, ``enqueued`` unread).
DISPATCH = 2
#: ``[RETIRE]``: finish what you hold, report it, run teardown and exit.
RETIRE = 3
#: ``[APPLY, token, topic, payload]``: run this broadcast's subscribers, then answer APPLIED.
APPLY = 4
#: ``[BROADCAST_DONE, token]``: every live worker has applied the broadcast you sent.
BROADCAST_DONE = 5

# Worker → supervisor frames.
#: ``[READY, pid]``: setup done, send messages.
READY = 10
#: ``[STARTUP_FAILED, text]``: the handler or setup hook failed; the worker exits.
STARTUP_FAILED = 11
#: ``[REPORT, done, results, failures, histogram_wire | None, rss_bytes | None]``.
REPORT = 12
#: ``[BROADCAST, token, topic, payload]``: apply this on every live worker.
BROADCAST = 13
#: ``[APPLIED, token]``.
APPLIED = 14

#: Kernel pipe buffer requested per direction: a full DISPATCH frame fits in one write.
PIPE_BUFFER_BYTES = 1 << 20

_log = logging.getLogger("sluiceway.engine")
_HEADER = struct.Struct("<I")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def encode_frame(frame: Any) -> bytearray:
    """The bytes of one frame: header and msgpack body."""
    buffer = bytearray(4)
    _encoder.encode_into(frame, buffer, 4)
    _HEADER.pack_into(buffer, 0, len(buffer) - 4)
    return buffer


def make_pipe() -> tuple[int, int]:
    """A pipe ``(read_fd, write_fd)`` with an enlarged kernel buffer where Linux allows it."""
    read_fd, write_fd = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        # Over /proc/sys/fs/pipe-max-size for this user: keep the default.
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BUFFER_BYTES)
    return read_fd, write_fd


class FrameReader(asyncio.Protocol):
    """Splits a byte stream into frames and hands each decoded one to ``on_frame``."""

    def __init__(self, on_frame: Callable[[Any], None], on_closed: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_closed = on_closed
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        view = memoryview(buffer)
        start = 0
        end = len(buffer)
        frames = []
        while end - start >= 4:
            (size,) = _HEADER.unpack_from(buffer, start)
            if end - start - 4 < size:
                break
            frames.append(_decoder.decode(view[start + 4 : start + 4 + size]))
            start += 4 + size
        view.release()
        if start:
            del buffer[:start]
        for frame in frames:
            try:
                self._on_frame(frame)
            except Exception:  # a bug handling one frame must not close the pipe
                _log.exception("failed to handle frame kind %r", frame[0] if frame else None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_closed()


class FrameWriter:
    """Writes frames to a pipe through the loop's buffered transport (never blocks)."""

    def __init__(self, transport: asyncio.WriteTransport, protocol: _DrainProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def send(self, frame: Any) -> None:
        self.send_encoded(encode_frame(frame))

    def send_encoded(self, frame: bytes | bytearray) -> None:
        """Write a frame that is already encoded (header included)."""
        if not self._transport.is_closing():
            self._transport.write(frame)

    def close(self) -> None:
        self._transport.close()

    async def aclose(self) -> None:
        """Close after every buffered frame has been written (or the reader went away)."""
        self._transport.close()
        await self._protocol.closed


async def open_reader(fd: int, on_frame: Callable[[Any], None], on_closed: Callable[[], None]) -> asyncio.ReadTransport:
    """Start reading frames from ``fd`` (which the transport then owns)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(
        lambda: FrameReader(on_frame, on_closed), os.fdopen(fd, "rb", buffering=0)
    )
    return transport


class _DrainProtocol(asyncio.Protocol):
    """The write side needs a protocol; a closed peer shows up as ``connection_lost``."""

    def __init__(self, on_closed: Callable[[], None]) -> None:
        self._on_closed = on_closed
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._on_closed()


async def open_writer(fd: int, on_closed: Callable[[], None] = lambda: None) -> FrameWriter:
    """A ``FrameWriter`` on ``fd`` (which the transport then owns)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        lambda: _DrainProtocol(on_closed), os.fdopen(fd, "wb", buffering=0)
    )
    return FrameWriter(transport, protocol)
