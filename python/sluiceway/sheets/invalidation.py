"""How an invalidation made in one process reaches the caches of every other process.

A write must invalidate the overlapping ranges in *every* worker's cache before the
write call returns, or a read that starts after the write could still see the old
value elsewhere. The cache talks to a small :class:`InvalidationChannel`:

* :class:`EngineInvalidation` (the default) sends it through the engine's worker
  broadcast, whose ``broadcast`` returns only once every live worker has applied it;
  outside an engine worker the engine's context is process-local, so it reaches the
  caches of this process;
* :class:`LocalInvalidation` keeps invalidations among the caches that share it, in this
  process, whatever the engine does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

#: The engine broadcast topic carrying Sheets cache invalidations.
ENGINE_TOPIC = "sluiceway.sheets.invalidate"


class Invalidation(msgspec.Struct, frozen=True, array_like=True):
    """Drop ``cell_range`` (every range when ``None``) of ``spreadsheet_id``, or every entry tagged ``tag``."""

    spreadsheet_id: str | None = None
    cell_range: str | None = None
    tag: str | None = None


Apply = Callable[[Invalidation], object]


class InvalidationChannel(Protocol):
    """Carries invalidations to every cache that subscribed, in this process or others."""

    def subscribe(self, apply: Apply) -> None:
        """Call ``apply`` for every invalidation published from now on, from any process."""

    async def publish(self, invalidation: Invalidation) -> None:
        """Deliver ``invalidation`` to every subscriber; returns once all have applied it."""


class LocalInvalidation:
    """Delivers invalidations to the subscribers of this process only.

    Warning: with several worker processes each holding its own cache, a write in one
    does not reach the others; use :class:`EngineInvalidation` there.
    """

    def __init__(self) -> None:
        self._subscribers: list[Apply] = []

    def subscribe(self, apply: Apply) -> None:
        self._subscribers.append(apply)

    async def publish(self, invalidation: Invalidation) -> None:
        for apply in self._subscribers:
            apply(invalidation)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Invalidation)


class EngineInvalidation:
    """Delivers invalidations to every live worker of the engine through its broadcast.

    Warning: subscriptions are per process and bound when this is created, so create it
    (and the cache using it) inside the worker, e.g. in the engine's ``worker_setup``
    hook; a cache created before the workers start hears only its own process.
    """

    def __init__(self, topic: str = ENGINE_TOPIC) -> None:
        # Imported here: the engine (uvloop, process management) loads only when used.
        from sluiceway.engine import current_worker

        self._worker = current_worker()
        self._topic = topic

    def subscribe(self, apply: Apply) -> None:
        def on_message(payload: bytes) -> None:
            apply(_decoder.decode(payload))

        self._worker.subscribe(self._topic, on_message)

    async def publish(self, invalidation: Invalidation) -> None:
        await self._worker.broadcast(self._topic, _encoder.encode(invalidation))


def default_channel() -> InvalidationChannel:
    """The engine's broadcast: every worker's caches inside an engine worker, this process's elsewhere."""
    return EngineInvalidation()
