"""Frames between the supervisor (where the PerformanceMonitor lives) and the monitor process.

Once per collection interval, at most: the supervisor publishes a snapshot, the monitor
process answers with a resource sample. Nothing here is per message. A frame is a
4-byte big-endian length followed by a msgpack-encoded tagged struct.
"""

from __future__ import annotations

import asyncio
import struct

import msgspec

from sluiceway.monitor.config import MonitorConfig
from sluiceway.monitor.report import Report, ResourceSample

_LENGTH = struct.Struct(">I")
#: Largest frame accepted; a snapshot is a few kilobytes.
MAX_FRAME_BYTES = 16 * 1024 * 1024


class Hello(msgspec.Struct, tag=True):
    """First frame to the monitor process: how to run."""

    config: MonitorConfig
    supervisor_pid: int


class Publish(msgspec.Struct, tag=True):
    """The supervisor's state after a collection, for the HTTP endpoints."""

    report: Report
    #: Worker pids to sample (the supervisor is always sampled).
    worker_pids: list[int]
    #: The newest point of each dashboard series, at ``report.at``.
    points: dict[str, float]
    #: Cumulative handler-latency histogram (``LatencyHistogram.to_wire()``), for ``/metrics``.
    latency: tuple[list[tuple[int, int]], int, int, float, float, float]
    #: Cumulative reply-latency histogram (webhook in → reply taken), when replies are timed.
    reply_latency: tuple[list[tuple[int, int]], int, int, float, float, float] | None = None


class Ready(msgspec.Struct, tag=True):
    """The monitor process serves HTTP at ``url``."""

    url: str


class Sample(msgspec.Struct, tag=True):
    """A psutil sample from the monitor process."""

    sample: ResourceSample


ToMonitor = Hello | Publish
FromMonitor = Ready | Sample

_encoder = msgspec.msgpack.Encoder()


def encode(message: ToMonitor | FromMonitor) -> bytes:
    body = _encoder.encode(message)
    return _LENGTH.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next frame's body; ``asyncio.IncompleteReadError`` at end of stream."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"monitor frame of {length} bytes exceeds MAX_FRAME_BYTES ({MAX_FRAME_BYTES})")
    return await reader.readexactly(length)


to_monitor_decoder = msgspec.msgpack.Decoder(ToMonitor)
from_monitor_decoder = msgspec.msgpack.Decoder(FromMonitor)
