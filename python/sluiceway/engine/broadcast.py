"""The supervisor's side of ``current_worker().broadcast``: fan a control message out, collect the answers.

A broadcast goes to every worker that is ready or retiring when it starts; it is complete
when each of them has answered APPLIED or exited (a dead worker has nothing left to
update). The origin, a worker or the supervisor itself, is then told.
"""

from __future__ import annotations

import asyncio

from sluiceway.engine import pipe
from sluiceway.engine.worker_handle import EXITED, WorkerHandle


class _Pending:
    __slots__ = ("done", "origin", "origin_token", "waiting_on")

    def __init__(
        self, origin: WorkerHandle | None, origin_token: int, waiting_on: set[int], done: asyncio.Future[None] | None
    ) -> None:
        self.origin = origin
        self.origin_token = origin_token
        self.waiting_on = waiting_on
        self.done = done


class BroadcastRelay:
    """Broadcasts in progress, by token."""

    def __init__(self) -> None:
        self._pending: dict[int, _Pending] = {}
        self._next_token = 0

    def start(
        self,
        targets: list[WorkerHandle],
        topic: str,
        payload: bytes,
        origin: WorkerHandle | None = None,
        origin_token: int = 0,
        done: asyncio.Future[None] | None = None,
    ) -> None:
        """Send APPLY to every target; ``origin`` gets BROADCAST_DONE and ``done`` resolves once all answered."""
        self._next_token += 1
        token = self._next_token
        self._pending[token] = _Pending(origin, origin_token, {w.index for w in targets}, done)
        for worker in targets:
            worker.send([pipe.APPLY, token, topic, payload])
        self._settle(token)

    def applied(self, worker: WorkerHandle, token: int) -> None:
        """``worker`` answered APPLIED for ``token``."""
        pending = self._pending.get(token)
        if pending is not None:
            pending.waiting_on.discard(worker.index)
            self._settle(token)

    def worker_exited(self, worker: WorkerHandle) -> None:
        """``worker`` is gone: no broadcast waits for it any longer."""
        for token in list(self._pending):
            self.applied(worker, token)

    def _settle(self, token: int) -> None:
        pending = self._pending[token]
        if pending.waiting_on:
            return
        del self._pending[token]
        if pending.origin is not None and pending.origin.state != EXITED:
            pending.origin.send([pipe.BROADCAST_DONE, pending.origin_token])
        if pending.done is not None and not pending.done.done():
            pending.done.set_result(None)
