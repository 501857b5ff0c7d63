"""The engine's dead letters in Redis (the ``<namespace>:dead`` stream): list, replay, purge.

Any process may do this while nodes run: a replay moves letters back into their partition
streams in one script (attempts start over), and the nodes holding those partitions run them.
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis

from sluiceway.engine import redis_scripts as scripts

_decode = msgspec.msgpack.Decoder().decode
_decode_entry = msgspec.msgpack.Decoder(tuple[int, float, str | None, bytes]).decode


class RedisDeadLetter(msgspec.Struct, frozen=True):
    """One dead letter: its stream id, the payload, why it died and when (wall-clock seconds)."""

    id: str
    payload: Any
    priority: int
    ordering_key: str | None
    error: str
    dead_at: float


class RedisDeadLetters:
    """``async with RedisDeadLetters(url, namespace) as dead: await dead.letters()``."""

    def __init__(self, url: str, namespace: str = "sluiceway") -> None:
        self.redis = aioredis.Redis.from_url(url, socket_connect_timeout=2.0)
        self._stream = f"{namespace}:dead"
        self._namespace = namespace
        self._replay = self.redis.register_script(scripts.REPLAY)

    async def letters(self) -> list[RedisDeadLetter]:
        """Every dead letter, oldest first."""
        letters = []
        entries: Any = await self.redis.xrange(self._stream)
        for entry_id, fields in entries:
            level, _, key, payload = _decode_entry(fields[scripts.ENTRY_FIELD])
            letters.append(
                RedisDeadLetter(
                    entry_id.decode(),
                    _decode(payload),
                    level,
                    key,
                    fields[b"error"].decode(),
                    float(fields[b"dead_at"]),
                )
            )
        return letters

    async def replay(self, ids: list[str] | None = None) -> int:
        """Queue the letters (all, or those with ``ids``) again; how many were."""
        return int(await self._replay(keys=[self._stream], args=[self._namespace, *(ids or [])]))

    async def purge(self, ids: list[str] | None = None) -> int:
        """Delete the letters (all, or those with ``ids``) for good; how many went."""
        if ids is None:
            count = int(await self.redis.xlen(self._stream))
            await self.redis.delete(self._stream)
            return count
        return int(await self.redis.xdel(self._stream, *ids)) if ids else 0

    async def __aenter__(self) -> RedisDeadLetters:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.redis.aclose()
