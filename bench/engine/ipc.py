"""The raw floor of the engine's transport: messages/s one process can push to another over a pipe.

The writer encodes small messages with msgspec msgpack and writes them to a pipe; a child
process reads and decodes every frame and reports how many messages it saw. Measured one
message per write and in frames of ``FRAME`` messages, the engine's own framing.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import msgspec

from sluiceway.engine.pipe import encode_frame, make_pipe

#: Messages per frame in the batched case.
FRAME = 256


def _reader(fd: int, expected: int, done: multiprocessing.connection.Connection) -> None:
    decoder = msgspec.msgpack.Decoder()
    buffer = bytearray()
    seen = 0
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while seen < expected:
            chunk = pipe.read(1 << 20)
            if not chunk:
                break
            buffer += chunk
            start = 0
            while len(buffer) - start >= 4:
                size = int.from_bytes(buffer[start : start + 4], "little")
                if len(buffer) - start - 4 < size:
                    break
                frame = decoder.decode(memoryview(buffer)[start + 4 : start + 4 + size])
                seen += len(frame[1])
                start += 4 + size
            del buffer[:start]
    done.send(seen)


def rate(messages: int, per_frame: int) -> float:
    """Messages per second from this process to a child, ``per_frame`` messages per write."""
    context = multiprocessing.get_context("fork")  # the child inherits the pipe
    read_fd, write_fd = make_pipe()
    parent_end, child_end = context.Pipe(duplex=False)
    child = context.Process(target=_reader, args=(read_fd, messages, child_end))
    child.start()
    os.close(read_fd)
    item = (1, 1, 1, 1700000000.0, None, False, msgspec.Raw(msgspec.msgpack.encode({"text": "hello"})))
    started = time.perf_counter()
    with os.fdopen(write_fd, "wb", buffering=0) as pipe:
        sent = 0
        while sent < messages:
            batch = [item] * min(per_frame, messages - sent)
            pipe.write(encode_frame([2, batch]))
            sent += len(batch)
        seen = parent_end.recv()
    elapsed = time.perf_counter() - started
    child.join()
    return float(seen) / elapsed
