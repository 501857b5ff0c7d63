"""How cached values are stored: msgpack, lz4-compressed above a size threshold.

The first byte of a stored value says how the rest is encoded, so compressed and
plain entries can share one store.
"""

from __future__ import annotations

from typing import Any

import lz4.block
import msgspec

_PLAIN = b"\x00"
_LZ4 = b"\x01"


class ValueCodec:
    """Encodes values to bytes for ``ByteLRU`` and back; counts what compression saved."""

    def __init__(self, compression_threshold_bytes: int) -> None:
        self._threshold = compression_threshold_bytes
        self._encoder = msgspec.msgpack.Encoder()
        self._decode = msgspec.msgpack.Decoder().decode
        #: Values stored compressed so far, and their sizes before and after.
        self.compressed = 0
        self.raw_bytes = 0
        self.stored_bytes = 0

    def encode(self, value: Any) -> bytes:
        """The stored form of ``value``; ``TypeError`` naming the type when msgpack cannot hold it."""
        try:
            packed = self._encoder.encode(value)
        except TypeError as exc:
            raise TypeError(
                f"a cached value must be msgpack-encodable (lists, dicts, str, numbers...): {exc}"
            ) from None
        if len(packed) > self._threshold:
            squeezed = lz4.block.compress(packed, store_size=True)
            if len(squeezed) < len(packed):
                self.compressed += 1
                self.raw_bytes += len(packed)
                self.stored_bytes += len(squeezed)
                return _LZ4 + bytes(squeezed)
        return _PLAIN + packed

    def decode(self, stored: bytes) -> Any:
        """The value ``encode`` was given (a fresh copy every time)."""
        body = memoryview(stored)[1:]
        if stored[:1] == _LZ4:
            return self._decode(lz4.block.decompress(body))
        return self._decode(body)

    @property
    def compression_ratio(self) -> float:
        """Uncompressed ÷ compressed size over every value stored compressed (1.0 when none)."""
        return self.raw_bytes / self.stored_bytes if self.stored_bytes else 1.0
