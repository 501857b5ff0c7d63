"""Accepting messages: checking and encoding them, backpressure, and handing them to the ledger.

Backpressure switches on when the messages not in a worker's hands reach the high-water
mark and off when dispatch brings them down to the low one; producers that wait
(``enqueue_message``, ``submit``, ``enqueue_many``) block in between, the ``_nowait``
variants raise ``Backpressure``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from sluiceway._core import PayloadBatch
from sluiceway.engine.config import ParallelizerConfig
from sluiceway.engine.dedup import DedupWindow
from sluiceway.engine.errors import Backpressure, DuplicateMessage, EngineNotRunning, UnencodablePayload
from sluiceway.engine.ledger import Ledger
from sluiceway.engine.message import Accepted, MessageIds, Priority

if TYPE_CHECKING:
    from sluiceway.engine.redis_broker import RedisBroker

_payload_encoder = msgspec.msgpack.Encoder()
#: Accepted priority values (ints or Priority members), mapped to plain ints.
_PRIORITY_VALUES = {int(p): int(p) for p in Priority}
_LEVELS = len(Priority)


class Intake:
    """The accepting side of the engine: ``open`` while running and not closing."""

    def __init__(
        self,
        config: ParallelizerConfig,
        ledger: Ledger,
        engine_id: str,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._ledger = ledger
        self._engine_id = engine_id
        self._clock = clock
        self._high_water_mark = config.queue_high_water_mark
        #: ``dedup_key`` values seen, without a journal (the journal keeps its own).
        self._dedup = DedupWindow(config.dedup_window, config.dedup_max_entries)
        self.open = False
        #: Set in ``start``: stopped producers must not wait forever.
        self.running = False
        self.backpressure = False
        #: Set while producers may go on (backpressure off, or the engine stopped).
        self._room = asyncio.Event()
        self._room.set()
        #: Adds to the clock to get wall-clock time (``Message.enqueued_at``).
        self.wall_offset = 0.0
        #: With a broker, accepts go to Redis (any node may run them) instead of the ledger.
        self.broker: RedisBroker | None = None

    def start(self, started_at: float) -> None:
        self.wall_offset = time.time() - started_at
        self.open = self.running = True

    def close(self) -> None:
        """Refuse new messages (pending ones may still be drained)."""
        self.open = False

    def stop(self) -> None:
        """Refuse new messages and wake blocked producers so they see the engine is closed."""
        self.open = self.running = False
        self._room.set()

    # -- one message -----------------------------------------------------------------------

    def accept(
        self, payload: Any, priority: Priority | int, key: str | None, future: asyncio.Future[Any] | None
    ) -> str:
        """Accept one message now (backpressure already dealt with; no journal); returns its id."""
        level = self.check(priority, key)
        encoded = encode(payload)
        now = self._clock()
        ledger = self._ledger
        seq = ledger.accept(level, now + self.wall_offset, now, encoded, key, future)
        if not self.backpressure and ledger.unfinished - ledger.in_flight >= self._high_water_mark:
            self._backpressure_on()
        return f"{self._engine_id}-{seq}"

    def admit(
        self, payload: Any, priority: Priority | int, key: str | None, future: asyncio.Future[Any] | None
    ) -> tuple[str, asyncio.Future[Any] | None]:
        """Accept one message (backpressure dealt with): its id, and with a journal its commit to
        await (it raises ``JournalError`` if the message could not be committed)."""
        if self._ledger.journal is None:
            return self.accept(payload, priority, key, future), None
        return self.accept_journaled(payload, priority, key, future, None)

    def accept_once(
        self,
        payload: Any,
        priority: Priority | int,
        key: str | None,
        dedup_key: str | None,
        loop: asyncio.AbstractEventLoop,
    ) -> Accepted:
        """``MessageParallelizer.accept``: unless ``dedup_key`` was accepted within the window."""
        if dedup_key is not None and not isinstance(dedup_key, str):
            raise ValueError(f"dedup_key must be a str or None, got {type(dedup_key).__name__}")
        result: asyncio.Future[Any] = loop.create_future()
        committed: asyncio.Future[bool] = loop.create_future()
        if self.broker is not None:  # the handler's result reaches on_recovered on the node that runs it
            level = self.check(priority, key)
            encoded = encode(payload)
            wall = self._clock() + self.wall_offset
            op = self.broker.accept(encoded, level, wall, key, dedup_key)
            op.add_done_callback(functools.partial(_settle_committed_by_broker, committed))
            return Accepted("", committed, result)
        if self._ledger.journal is not None:  # the journal keeps the dedup record, in the message's transaction
            message_id, op = self.accept_journaled(payload, priority, key, result, dedup_key)
            op.add_done_callback(functools.partial(_settle_committed, committed))
            return Accepted(message_id, committed, result)
        if dedup_key is not None and not self._dedup.first_time(dedup_key, self._clock()):
            self.check(priority, key)
            result.set_exception(DuplicateMessage(f"dedup_key {dedup_key!r} was already accepted"))
            result.exception()  # retrieved: a caller may only look at ``committed``
            committed.set_result(False)
            return Accepted("", committed, result)
        message_id = self.accept(payload, priority, key, result)
        committed.set_result(True)
        return Accepted(message_id, committed, result)

    def accept_journaled(
        self,
        payload: Any,
        priority: Priority | int,
        key: str | None,
        future: asyncio.Future[Any] | None,
        dedup_key: str | None,
    ) -> tuple[str, asyncio.Future[Any]]:
        """Journal one message (backpressure already dealt with); its id and its commit (see
        ``Ledger.accept_journaled``)."""
        level = self.check(priority, key)
        encoded = encode(payload)
        now = self._clock()
        ledger = self._ledger
        seq, committed = ledger.accept_journaled(level, now + self.wall_offset, now, encoded, key, future, dedup_key)
        if not self.backpressure and ledger.unfinished - ledger.in_flight >= self._high_water_mark:
            self._backpressure_on()
        return f"{self._engine_id}-{seq}", committed

    def check(self, priority: Priority | int, key: str | None) -> int:
        """The priority level, after checking the engine is open and the arguments are valid."""
        if not self.open:
            raise EngineNotRunning("the engine is not running (call start() first; shutdown() stops it)")
        level = _PRIORITY_VALUES.get(priority) if isinstance(priority, int) else None
        if level is None:
            raise ValueError(f"priority must be a Priority (0..{_LEVELS - 1}), got {priority!r}")
        if key is not None:
            if not isinstance(key, str):
                raise ValueError(f"ordering_key must be a str or None, got {type(key).__name__}")
            if not key.isascii():
                try:
                    key.encode()
                except UnicodeEncodeError as exc:
                    raise ValueError(f"ordering_key must be encodable as UTF-8, got {key!r}: {exc.reason}") from None
        return level

    # -- batches -----------------------------------------------------------------------------

    async def accept_many(self, payloads: Iterable[Any], priority: Priority | int, key: str | None) -> MessageIds:
        """Accept every payload in slices that fill the queue up to the high-water mark, waiting between them."""
        level = self.check(priority, key)
        batch = encode_batch(payloads)
        first = self._ledger.last_seq + 1
        start = 0
        commits: list[asyncio.Future[None]] = []
        try:
            while start < len(batch):
                if self.backpressure:
                    await self.wait_for_room()
                    level = self.check(priority, key)  # the engine may have closed meanwhile
                room = max(1, self._high_water_mark - self._ledger.queued)
                end = min(len(batch), start + room)
                batch_first = self._accept_slice(batch, start, end, level, key, commits)
                if start == 0:
                    first = batch_first
                start = end
        finally:
            if commits:  # reported accepted only once committed (the slices share transactions)
                await asyncio.gather(*commits)
        return MessageIds(self._engine_id, first, len(batch))

    def accept_many_nowait(self, payloads: Iterable[Any], priority: Priority | int, key: str | None) -> MessageIds:
        """Accept the whole batch now, or raise ``Backpressure`` if it is on."""
        level = self.check(priority, key)
        if self.backpressure:
            raise self.backpressure_error()
        batch = encode_batch(payloads)
        return MessageIds(self._engine_id, self._accept_slice(batch, 0, len(batch), level, key), len(batch))

    def _accept_slice(
        self,
        batch: PayloadBatch,
        start: int,
        end: int,
        level: int,
        key: str | None,
        commits: list[asyncio.Future[None]] | None = None,
    ) -> int:
        now = self._clock()
        if self._ledger.journal is not None and commits is not None:
            first, commit = self._ledger.accept_batch_journaled(
                batch, start, end, level, now + self.wall_offset, now, key
            )
            commits.append(commit)
        else:
            first = self._ledger.accept_batch(batch, start, end, level, now + self.wall_offset, now, key)
        if not self.backpressure and self._ledger.queued >= self._high_water_mark:
            self._backpressure_on()
        return first

    # -- backpressure --------------------------------------------------------------------------

    def _backpressure_on(self) -> None:
        self.backpressure = True
        self._room.clear()

    def relieve(self) -> None:
        """Switch backpressure off once dispatch has brought the waiting messages down to the low-water mark."""
        if self.backpressure and self._ledger.queued <= self._config.queue_low_water_mark:
            self.backpressure = False
            self._room.set()

    async def wait_for_room(self) -> None:
        """Wait while backpressure is on (returns at once if the engine stops meanwhile)."""
        while self.backpressure and self.running:
            await self._room.wait()

    def backpressure_error(self) -> Backpressure:
        return Backpressure(
            f"{self._ledger.queued} messages queued: over the high-water mark "
            f"({self._config.queue_high_water_mark}), not yet back at the low one ({self._config.queue_low_water_mark})"
        )


def _settle_committed(committed: asyncio.Future[bool], op: asyncio.Future[Any]) -> None:
    """``Accepted.committed`` from the journal's answer: True accepted, False a duplicate."""
    if committed.done():
        return
    if op.cancelled():
        committed.cancel()
    elif op.exception() is not None:
        committed.set_exception(op.exception())  # type: ignore[arg-type]
    else:
        committed.set_result(op.result() is not True)


def _settle_committed_by_broker(committed: asyncio.Future[bool], op: asyncio.Future[bool]) -> None:
    """``Accepted.committed`` from the broker's answer: True in Redis, False a duplicate."""
    if committed.done():
        return
    if op.cancelled():
        committed.cancel()
    elif op.exception() is not None:
        committed.set_exception(op.exception())  # type: ignore[arg-type]
    else:
        committed.set_result(op.result())


def encode(payload: Any) -> bytes:
    """The payload as msgpack; ``UnencodablePayload`` if msgpack cannot encode it."""
    try:
        return _payload_encoder.encode(payload)
    except (TypeError, ValueError, OverflowError) as exc:
        raise UnencodablePayload(
            f"payload of type {type(payload).__name__} cannot be encoded with msgpack: {exc}"
        ) from exc


def encode_batch(payloads: Iterable[Any]) -> PayloadBatch:
    """The payloads as one msgpack array, split; ``UnencodablePayload`` naming the first that cannot be encoded."""
    payloads = payloads if isinstance(payloads, list) else list(payloads)
    try:
        return PayloadBatch(_payload_encoder.encode(payloads))
    except (TypeError, ValueError, OverflowError) as batch_error:
        for index, payload in enumerate(payloads):
            try:
                _payload_encoder.encode(payload)
            except (TypeError, ValueError, OverflowError) as exc:
                raise UnencodablePayload(
                    f"payload {index} of type {type(payload).__name__} cannot be encoded with msgpack: {exc}"
                ) from exc
        raise UnencodablePayload(
            f"the payloads cannot be encoded with msgpack together: {batch_error}"
        ) from batch_error
