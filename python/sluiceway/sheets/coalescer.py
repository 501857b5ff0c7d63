"""Coalescing concurrent reads of one spreadsheet into a single ``values.batchGet``.

Each ``values.batchGet`` costs one read request against the quota whatever the number
of ranges, so misses on one spreadsheet arriving within a short window share a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

#: Fetches ``ranges`` of one spreadsheet in one request; results in the order asked, an
#: exception instance standing for a range that failed on its own.
FetchMany = Callable[[str, list[str]], Awaitable[list[Any]]]


class _Batch:
    __slots__ = ("futures", "timer")

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[Any]] = {}
        self.timer: asyncio.TimerHandle | None = None


class BatchCoalescer:
    """Gathers the ranges asked of one spreadsheet for ``window`` seconds, then fetches them at once.

    Warning: every first miss waits up to ``window`` seconds for company; a small window
    (the default is 5 ms) is far below one API round trip.
    """

    def __init__(self, fetch_many: FetchMany, window: float, max_ranges: int) -> None:
        self._fetch_many = fetch_many
        self._window = window
        self._max_ranges = max_ranges
        self._pending: dict[str, _Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def load(self, spreadsheet_id: str, cell_range: str) -> Any:
        """The value of ``cell_range``, fetched together with the other ranges asked meanwhile."""
        batch = self._pending.get(spreadsheet_id)
        if batch is None:
            batch = self._pending[spreadsheet_id] = _Batch()
            batch.timer = asyncio.get_running_loop().call_later(self._window, self._flush, spreadsheet_id, batch)
        future = batch.futures.get(cell_range)
        if future is None:
            future = batch.futures[cell_range] = asyncio.get_running_loop().create_future()
            if len(batch.futures) >= self._max_ranges:
                self._flush(spreadsheet_id, batch)
        return await asyncio.shield(future)

    def _flush(self, spreadsheet_id: str, batch: _Batch) -> None:
        if self._pending.get(spreadsheet_id) is not batch:
            return  # already sent because it filled up
        del self._pending[spreadsheet_id]
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.ensure_future(self._send(spreadsheet_id, batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, spreadsheet_id: str, batch: _Batch) -> None:
        ranges = list(batch.futures)
        try:
            results = await self._fetch_many(spreadsheet_id, ranges)
        except Exception as exc:
            for future in batch.futures.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for cell_range, value in zip(ranges, results, strict=True):
            future = batch.futures[cell_range]
            if future.done():
                continue
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)
