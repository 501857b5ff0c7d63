"""How an invalidation made in one process reaches the caches of every other process.

A write must invalidate the overlapping ranges in *every* worker's cache before the
write call returns, or a read that starts after the write could still see the old
value elsewhere. The cache talks to a small :class:`InvalidationChannel`:

* :class:`LocalInvalidation` (the default outside the engine) applies an
  invalidation to the caches of this process only;
* :class:`EngineInvalidation` sends it through the engine's worker broadcast, whose
  ``broadcast`` returns only once every live worker has applied it.

:func:`default_channel` picks the engine channel when the code runs inside an engine
worker, the local one otherwise.
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

    Create it (and the cache using it) inside the worker process, e.g. in the
    worker's startup: subscriptions are per process.
    """

    def __init__(self, topic: str = ENGINE_TOPIC) -> None:
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
    """The engine's broadcast inside an engine worker, else a process-local channel."""
    try:
        return EngineInvalidation()
    except (ImportError, LookupError, RuntimeError):
        # Not inside a worker (or no engine installed): only this process has caches.
        return LocalInvalidation()
