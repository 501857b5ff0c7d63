"""``current_worker()``: per-process state and cross-worker broadcast for handler code.

Inside a worker process, ``current_worker()`` is that worker's context; anywhere else
(the supervisor, a script, a test) it is a process-local context whose broadcasts reach
only the subscribers of that process. Code written against it, such as a cache that
must drop an entry in every worker after a write, runs unchanged in both.

Example::

    from sluiceway.engine import current_worker

    def setup() -> None:                      # MessageParallelizer(..., worker_setup=setup)
        cache = current_worker().state["cache"] = {}
        current_worker().subscribe("invalidate", lambda key: cache.pop(key.decode(), None))

    async def handle(message: Message) -> None:
        ...                                   # a write made the cached row stale:
        await current_worker().broadcast("invalidate", b"row:42")   # every worker dropped it
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

#: Broadcast subscriber: called with the payload; may be sync or async.
Subscriber = Callable[[bytes], "Awaitable[None] | None"]

_log = logging.getLogger("sluiceway.engine")


class WorkerContext:
    """What code running in a worker (or any process) can reach: ``state``, ``broadcast``, ``subscribe``.

    Attributes:
        pid: this process's id.
        index: the worker's slot number (0 outside a worker).
        in_worker: whether this process is an engine worker.
        state: a per-process dict for clients and caches opened by a setup hook.
    """

    def __init__(self, index: int = 0, in_worker: bool = False) -> None:
        self.pid = os.getpid()
        self.index = index
        self.in_worker = in_worker
        self.state: dict[str, Any] = {}
        self._subscribers: dict[str, list[Subscriber]] = {}

    def subscribe(self, topic: str, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(payload)`` for every broadcast on ``topic``; returns an unsubscribe function.

        Callbacks run on the worker's event loop, in subscription order; an exception in one
        is logged and does not stop the others or the broadcast.
        """
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"topic must be a non-empty str, got {topic!r}")
        callbacks = self._subscribers.setdefault(topic, [])
        callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    async def broadcast(self, topic: str, payload: bytes) -> None:
        """Apply ``payload`` on ``topic`` in every live worker; returns once all of them have.

        Outside a worker this runs this process's subscribers only.

        Warning:
            A worker started after the broadcast (a replacement or a scale-up) never sees it:
            broadcasts suit invalidations (a fresh worker starts empty), not state to replay.
        """
        check_broadcast(topic, payload)
        await self.apply(topic, payload)

    async def apply(self, topic: str, payload: bytes) -> None:
        """Run this process's subscribers of ``topic`` (the receiving side of a broadcast)."""
        for callback in list(self._subscribers.get(topic, ())):
            try:
                outcome = callback(payload)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                _log.exception("broadcast subscriber %r failed on topic %r", callback, topic)


def check_broadcast(topic: str, payload: bytes) -> None:
    """``ValueError`` for an empty or non-str topic, ``TypeError`` for a payload that is not bytes."""
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"topic must be a non-empty str, got {topic!r}")
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"a broadcast payload must be bytes, got {type(payload).__name__}")


class RemoteWorkerContext(WorkerContext):
    """The context of an engine worker: broadcasts go through the supervisor to every worker."""

    def __init__(self, index: int, send_broadcast: Callable[[int, str, bytes], None]) -> None:
        super().__init__(index, in_worker=True)
        self._send_broadcast = send_broadcast
        self._next_token = 0
        self._waiting: dict[int, asyncio.Future[None]] = {}

    async def broadcast(self, topic: str, payload: bytes) -> None:
        check_broadcast(topic, payload)
        self._next_token += 1
        token = self._next_token
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[token] = done
        self._send_broadcast(token, topic, bytes(payload))
        try:
            await done
        finally:
            self._waiting.pop(token, None)

    def broadcast_done(self, token: int) -> None:
        """The supervisor says every live worker applied broadcast ``token``."""
        done = self._waiting.get(token)
        if done is not None and not done.done():
            done.set_result(None)


_current: WorkerContext | None = None


def current_worker() -> WorkerContext:
    """This process's ``WorkerContext`` (a worker's own inside a worker, a local one elsewhere)."""
    global _current
    if _current is None:
        _current = WorkerContext()
    return _current


def install(context: WorkerContext) -> None:
    """Make ``context`` this process's current one (called once by the worker's entry point)."""
    global _current
    _current = context
