"""``MessageParallelizer``: the supervisor that queues, dispatches, tracks and settles messages.

Every message accepted is held by exactly one of: the priority queue, its ordering key's
parking line, a retry timer, the crash-suspect line, or one worker's ``held`` table, until a
worker reports it done or it is dead-lettered. A worker's exit (any exit: SIGKILL, a crash,
being killed as unresponsive) puts everything it held back in line, which is what makes
delivery at-least-once.

The queue and the ``held`` tables are Rust (``EntryQueue``, ``InFlight``): a batch goes
from accept to DISPATCH frame to settled ack with no Python object per message, because
this one process serves every worker and its per-message cost caps the engine's rate.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from sluiceway._core import Entry, EntryQueue, PayloadBatch
from sluiceway.engine import transport
from sluiceway.engine.broadcast import BroadcastRelay
from sluiceway.engine.config import ParallelizerConfig
from sluiceway.engine.context import check_broadcast
from sluiceway.engine.dead_letters import DeadLetter, DeadLetterQueue
from sluiceway.engine.errors import (
    Backpressure,
    EngineNotRunning,
    HandlerError,
    MessageDeadLettered,
    UnencodablePayload,
    WorkerStartupError,
)
from sluiceway.engine.handler import spec_of
from sluiceway.engine.hooks import EngineHooks, call_all
from sluiceway.engine.message import Message, MessageIds, Priority
from sluiceway.engine.prefetch import Prefetch
from sluiceway.engine.retry import RetryPolicy
from sluiceway.engine.statistics import (
    LatencyWindow,
    Statistics,
    ThroughputMeter,
    WorkerStatistics,
)
from sluiceway.engine.worker_handle import EXITED, READY, RETIRING, STARTING, STARTUP_TIMEOUT, WorkerHandle
from sluiceway.histogram import LatencyHistogram

_log = logging.getLogger("sluiceway.engine")
_payload_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()
_PRIORITIES = tuple(Priority)
#: Accepted priority values (ints or Priority members), mapped to plain ints.
_PRIORITY_VALUES = {int(p): int(p) for p in Priority}

Handler = Callable[[Message], Any]

#: Tries to start a replacement for a worker that died before giving up on that slot.
REPLACEMENT_ATTEMPTS = 3


class ShutdownSummary(msgspec.Struct, frozen=True):
    """What ``shutdown()`` leaves behind: totals, and the messages it did not run (``drain=False``)."""

    completed: int
    failed_attempts: int
    retried: int
    dead_lettered: int
    remaining: list[Message]


class MessageParallelizer:
    """Runs an async handler over messages in N uvloop worker processes, in priority order.

    Example::

        async def handle(message: Message) -> None:          # in module bot.handlers
            await reply(message.payload["from"], "Got it")

        async with MessageParallelizer("bot.handlers:handle", ParallelizerConfig(default_worker_count=4)) as engine:
            await engine.enqueue_message({"from": "+15550100", "text": "hi"}, ordering_key="+15550100")
            await engine.wait_for_completion()

    ``worker_setup`` / ``worker_teardown`` (importable callables, sync or async, no arguments)
    run once per worker process, before its first message and after its last; they open and
    close clients, kept in ``current_worker().state``.

    Warning:
        Delivery is at-least-once: a message whose worker dies after running it but before
        reporting it runs again, so handlers with external side effects should be idempotent
        (``message.id`` is stable across deliveries).
    """

    def __init__(
        self,
        handler: str | Handler,
        config: ParallelizerConfig | None = None,
        *,
        monitor: EngineHooks | None = None,
        hooks: Iterable[EngineHooks] = (),
        worker_setup: str | Callable[[], Any] | None = None,
        worker_teardown: str | Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config if config is not None else ParallelizerConfig()
        if not isinstance(self.config, ParallelizerConfig):
            raise ValueError(f"config must be a ParallelizerConfig, got {type(config).__name__}")
        self._handler_spec = spec_of(handler, "handler")
        self._setup_spec = spec_of(worker_setup, "worker_setup") if worker_setup is not None else None
        self._teardown_spec = spec_of(worker_teardown, "worker_teardown") if worker_teardown is not None else None
        self._hooks: list[EngineHooks] = ([monitor] if monitor is not None else []) + list(hooks)
        self._clock = clock
        self._retry = RetryPolicy(self.config)
        self._engine_id = uuid.uuid4().hex[:12]
        self._queue = EntryQueue(len(_PRIORITIES))
        self._wall_offset = 0.0
        self._suspects: deque[Entry] = deque()
        self._keys: dict[str, deque[Entry]] = {}
        self._retry_timers: dict[int, tuple[asyncio.TimerHandle, Entry]] = {}
        self._workers: list[WorkerHandle] = []
        #: Every worker whose process has not been reaped yet (``_workers`` drops them earlier).
        self._spawned: set[WorkerHandle] = set()
        self._next_worker_index = 0
        self._dead_letters = DeadLetterQueue()
        self._next_seq = 0
        self._completed = 0
        self._failed_attempts = 0
        self._retried = 0
        self._dead_lettered = 0
        self._unfinished = 0
        self._in_flight = 0
        self._backpressure = False
        self._running = False
        self._closing = False
        #: Accepting messages: running and not closing.
        self._open = False
        self._high_water_mark = self.config.queue_high_water_mark
        self._started_at = 0.0
        self._summary: ShutdownSummary | None = None
        self._dispatch_scheduled = False
        self._broadcasts = BroadcastRelay()
        self._throughput = ThroughputMeter()
        self._latency: LatencyWindow | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        # Created in start(), on the loop that runs the engine.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> MessageParallelizer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown(drain=exc_info[0] is None)

    async def start(self) -> None:
        """Start ``default_worker_count`` workers and wait until each is ready.

        ``WorkerStartupError`` (with the worker's traceback) if the handler or setup hook fails
        to import or run; no worker is left running then.
        """
        if self._running or self._closing:
            raise EngineNotRunning("start() may be called once")
        self._loop = asyncio.get_running_loop()
        self._accepting = asyncio.Event()
        self._accepting.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._started_at = self._clock()
        self._wall_offset = time.time() - self._started_at
        self._latency = LatencyWindow(self._started_at)
        self._throughput.sample(self._started_at, 0)
        try:
            await self._add_workers(self.config.default_worker_count)
        except BaseException:
            self._workers.clear()
            spawned = list(self._spawned)
            for worker in spawned:
                worker.exit_reason = "retired"
                worker.kill()
            await asyncio.gather(*(w.wait_exit() for w in spawned if w.process), return_exceptions=True)
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            raise
        self._running = True
        self._open = True
        self._every(self.config.heartbeat_interval, self._check_liveness)
        self._every(self.config.statistics_interval, self._publish_statistics)
        call_all(self._hooks, "on_start", self)
        for worker in self._workers:
            call_all(self._hooks, "on_worker_started", worker.pid)

    async def shutdown(self, drain: bool = True, timeout: float | None = None) -> ShutdownSummary:
        """Stop accepting, then stop the workers; a second call returns the first one's summary.

        With ``drain`` it first waits (up to ``timeout`` seconds, ``None`` = as long as it takes)
        until everything accepted is done or dead-lettered; without it, or once ``timeout``
        passes, workers finish only what they hold, and the messages still queued are
        returned in ``ShutdownSummary.remaining`` (pending ``submit`` calls get
        ``EngineNotRunning``).
        """
        if self._summary is not None:
            return self._summary  # already shut down (e.g. inside ``async with``)
        if not self._running:
            raise EngineNotRunning("shutdown() needs a started engine")
        self._closing = True
        self._open = False
        if drain:
            try:
                await self.wait_for_completion(timeout)
            except TimeoutError:
                _log.warning("drain did not finish within %s s; stopping with work queued", timeout)
        self._running = False
        assert self._accepting is not None
        self._accepting.set()  # wake blocked producers so they see the engine is closed
        for timer in self._timers:
            timer.cancel()
        remaining_entries = self._take_waiting()
        await asyncio.gather(*(self._retire(w, "retired") for w in list(self._workers)))
        # Workers re-queue what they held if they died while retiring: collect that too.
        remaining_entries += self._take_waiting()
        remaining = []
        for entry in remaining_entries:
            remaining.append(self._message_of(entry))
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(EngineNotRunning("the engine shut down before this message ran"))
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        # A process whose start was cancelled above is not left running.
        leftover = list(self._spawned)
        for worker in leftover:
            worker.kill()
        await asyncio.gather(*(w.wait_exit() for w in leftover if w.process), return_exceptions=True)
        summary = self._summary = ShutdownSummary(
            self._completed, self._failed_attempts, self._retried, self._dead_lettered, remaining
        )
        _log.info(
            "shutdown ◆ %d completed ◆ %d failed attempts ◆ %d retried ◆ %d dead-lettered ◆ %d left queued",
            summary.completed, summary.failed_attempts, summary.retried, summary.dead_lettered, len(remaining),
        )
        for hook in self._hooks:
            try:
                await hook.on_stop()
            except Exception:
                _log.exception("hook %r failed in on_stop", hook)
        return summary

    def _take_waiting(self) -> list[Entry]:
        """Remove every accepted message not held by a worker (queued, parked, suspect, awaiting retry)."""
        entries: list[Entry] = self._queue.take_all()
        entries += self._suspects
        self._suspects.clear()
        for line in self._keys.values():
            entries += line
            line.clear()
        for handle, entry in self._retry_timers.values():
            handle.cancel()
            entries.append(entry)
        self._retry_timers.clear()
        self._unfinished -= len(entries)
        return entries

    # -- accepting messages ----------------------------------------------------------------

    async def enqueue_message(
        self, payload: Any, priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> str:
        """Accept ``payload`` (anything msgpack encodes) and return its message id.

        Waits while backpressure is on (from the high-water mark down to the low one).
        ``UnencodablePayload`` for a payload msgpack cannot encode, ``ValueError`` for an
        unknown priority.
        """
        if self._backpressure:
            await self._wait_for_room()
        return self._accept(payload, priority, ordering_key, None)

    def enqueue_nowait(
        self, payload: Any, priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> str:
        """Like ``enqueue_message`` but raises ``Backpressure`` instead of waiting."""
        if self._backpressure:
            raise self._backpressure_error()
        return self._accept(payload, priority, ordering_key, None)

    async def submit(
        self, payload: Any, priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> Any:
        """Run ``payload`` through the handler and return its result (which must be msgpack-encodable).

        Retries like any message; after the last attempt raises the handler's exception (or
        ``HandlerError`` when it cannot cross processes, ``MessageDeadLettered`` when the
        worker died on every try).
        """
        if self._backpressure:
            await self._wait_for_room()
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._accept(payload, priority, ordering_key, future)
        return await future

    def submit_nowait(
        self, payload: Any, priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> asyncio.Future[Any]:
        """Like ``submit`` but accepts now or raises (``Backpressure``, ``UnencodablePayload``...);
        returns the future of the handler's result.

        For callers that track many results with callbacks rather than a task each (the bot
        runtime hands every inbound message to the engine this way).
        """
        if self._backpressure:
            raise self._backpressure_error()
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._accept(payload, priority, ordering_key, future)
        return future

    async def _wait_for_room(self) -> None:
        """Wait while backpressure is on (returns at once if the engine stops meanwhile)."""
        while self._backpressure and self._running:
            assert self._accepting is not None
            await self._accepting.wait()

    def _accept(self, payload: Any, priority: Priority | int, key: str | None, future: asyncio.Future[Any] | None) -> str:
        level = self._check_accept(priority, key)
        try:
            encoded = _payload_encoder.encode(payload)
        except (TypeError, ValueError, OverflowError) as exc:
            raise UnencodablePayload(f"payload of type {type(payload).__name__} cannot be encoded with msgpack: {exc}") from exc
        seq = self._next_seq = self._next_seq + 1
        now = self._clock()
        if key is None:
            self._queue.accept(seq, level, now + self._wall_offset, future, encoded, now)
        else:
            self._stage_keyed(Entry(seq, level, now + self._wall_offset, key, future, encoded, now))
        self._accepted(1)
        return f"{self._engine_id}-{seq}"

    def _check_accept(self, priority: Priority | int, key: str | None) -> int:
        """The priority level, after checking the engine is open and the arguments are valid."""
        if not self._open:
            raise EngineNotRunning("the engine is not running (call start() first; shutdown() stops it)")
        level = _PRIORITY_VALUES.get(priority) if isinstance(priority, int) else None
        if level is None:
            raise ValueError(f"priority must be a Priority (0..{len(_PRIORITIES) - 1}), got {priority!r}")
        if key is not None:
            if not isinstance(key, str):
                raise ValueError(f"ordering_key must be a str or None, got {type(key).__name__}")
            if not key.isascii():
                try:
                    key.encode()
                except UnicodeEncodeError as exc:
                    raise ValueError(f"ordering_key must be encodable as UTF-8, got {key!r}: {exc.reason}") from None
        return level

    def _stage_keyed(self, entry: Entry) -> None:
        """Queue ``entry`` if its key has nothing in flight or queued, else park it behind the key's line."""
        key = entry.key
        assert key is not None
        line = self._keys.get(key)
        if line is not None:
            line.append(entry)
        else:
            self._keys[key] = deque()
            self._queue.push(entry)

    def _accepted(self, count: int) -> None:
        """Account ``count`` newly accepted messages: idle flag, backpressure, and a dispatch soon."""
        was_idle = self._unfinished == 0
        self._unfinished += count
        if was_idle:
            assert self._idle is not None
            self._idle.clear()
        if not self._backpressure and self._unfinished - self._in_flight >= self._high_water_mark:
            self._backpressure = True
            assert self._accepting is not None
            self._accepting.clear()
        if not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._dispatch)

    async def enqueue_many(
        self, payloads: Iterable[Any], priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> MessageIds:
        """Accept every payload, in order, with one priority and key; returns their ids.

        Every payload is encoded before any is accepted, so one that msgpack cannot encode
        refuses the whole batch (``UnencodablePayload`` naming its index). The batch goes in
        in slices that fill the queue up to the high-water mark, waiting while backpressure
        is on between slices, as a loop over ``enqueue_message`` would but at a fraction of
        its per-message cost. If the engine shuts down during such a wait, the slices
        already accepted stay accepted and ``EngineNotRunning`` is raised for the rest.

        Example::

            ids = await engine.enqueue_many([{"n": n} for n in range(10_000)], Priority.LOW)
            ids[0], len(ids)      # ('3f2a9c1d0b7e-1', 10000)
        """
        level = self._check_accept(priority, ordering_key)
        batch = _encode_batch(payloads)
        first = self._next_seq + 1
        start = 0
        while start < len(batch):
            if self._backpressure:
                await self._wait_for_room()
                level = self._check_accept(priority, ordering_key)  # the engine may have closed meanwhile
            room = max(1, self._high_water_mark - self._queued())
            end = min(len(batch), start + room)
            batch_first = self._stage_batch(batch, start, end, level, ordering_key)
            if start == 0:
                first = batch_first
            start = end
        return MessageIds(self._engine_id, first, len(batch))

    def enqueue_many_nowait(
        self, payloads: Iterable[Any], priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> MessageIds:
        """Like ``enqueue_many`` but all or nothing: ``Backpressure`` if it is on, else the whole batch goes in.

        Warning:
            The batch is accepted whole even when it takes the queue past the high-water
            mark (backpressure then switches on for what follows); bound batch sizes if the
            mark must hold exactly.
        """
        level = self._check_accept(priority, ordering_key)
        if self._backpressure:
            raise self._backpressure_error()
        batch = _encode_batch(payloads)
        return MessageIds(self._engine_id, self._stage_batch(batch, 0, len(batch), level, ordering_key), len(batch))

    def _stage_batch(self, batch: PayloadBatch, start: int, end: int, level: int, key: str | None) -> int:
        """Accept ``batch[start:end]`` as consecutive seqs; returns the first seq."""
        first = self._next_seq + 1
        count = end - start
        if not count:
            return first
        self._next_seq += count
        now = self._clock()
        wall = now + self._wall_offset
        if key is None:
            self._queue.accept_batch(batch, start, end, first, level, wall, now)
        else:
            for entry in Entry.batch(batch, start, end, first, level, wall, key, now):
                self._stage_keyed(entry)
        self._accepted(count)
        return first

    def _backpressure_error(self) -> Backpressure:
        return Backpressure(
            f"{self._queued()} messages queued: over the high-water mark "
            f"({self.config.queue_high_water_mark}), not yet back at the low one ({self.config.queue_low_water_mark})"
        )

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Give each ready worker up to its free credit of messages, highest priority first.

        Credit goes out in frames of half a worker's prefetch at most, so that a worker
        has the next frame in its pipe while it runs one: it never idles for the round
        trip of its report. While the queue is long, a frame carries at least a quarter
        of the prefetch: topping a busy worker up a few messages at a time would cost a
        frame (two system calls each side) per few messages.
        """
        self._dispatch_scheduled = False
        queue = self._queue
        for worker in self._workers:
            if worker.state != READY or worker.isolating:
                continue
            held = worker.held
            if self._suspects and not held:
                worker.isolating = True
                self._in_flight += 1
                worker.send_encoded(held.hold(self._suspects.popleft()))
                continue
            prefetch = worker.prefetch
            credit = prefetch.limit - len(held)
            while credit > 0 and queue:
                if credit < prefetch.least_frame <= len(queue):
                    break  # it still holds plenty: top it up in a fuller frame later
                before = len(held)
                frame = queue.dispatch(held, min(credit, prefetch.frame_size))
                assert frame is not None
                worker.send_encoded(frame)
                sent = len(held) - before
                self._in_flight += sent
                credit -= sent
        if self._backpressure and self._unfinished - self._in_flight <= self.config.queue_low_water_mark:
            self._backpressure = False
            assert self._accepting is not None
            self._accepting.set()

    # -- frames from workers ---------------------------------------------------------------

    def _on_frame(self, worker: WorkerHandle, frame: list[Any]) -> None:
        kind = frame[0]
        if kind == transport.REPORT:
            self._on_report(worker, frame)
        elif kind == transport.READY:
            if worker.state == STARTING:  # not if it was retired while starting
                worker.state = READY
            if not worker.ready.done():
                worker.ready.set_result(None)
        elif kind == transport.STARTUP_FAILED:
            if not worker.ready.done():
                worker.ready.set_exception(WorkerStartupError(f"worker {worker.pid} failed to start:\n{frame[1]}"))
        elif kind == transport.BROADCAST:
            self._broadcasts.start(self._broadcast_targets(), frame[2], frame[3], worker, frame[1])
        elif kind == transport.APPLIED:
            self._broadcasts.applied(worker, frame[1])

    def _on_report(self, worker: WorkerHandle, frame: list[Any]) -> None:
        _, done, results, failures, histogram_wire, rss = frame
        held = worker.held
        now = self._clock()
        assert self._latency is not None
        # Plain acks are settled in Rust in one call (pops, latencies, histogram):
        # per-message Python here is the supervisor's serial bottleneck.
        latency = self._latency.current
        settled, keys = held.settle(done, now, latency)
        for key in keys:
            self._release_key(key)
        pop = held.pop
        settled_entries: list[Entry] = []
        for seq, result in results:
            entry = pop(seq)
            if entry is None:
                continue
            settled_entries.append(entry)
            if entry.future is not None and not entry.future.done():
                entry.future.set_result(result)
            if entry.key is not None:
                self._release_key(entry.key)
        if settled_entries:
            latency.record_many([now - entry.enqueued for entry in settled_entries])
            settled += len(settled_entries)
        worker.prefetch.completed(settled + len(failures), now)
        if settled:
            worker.completed += settled
            self._completed += settled
            self._in_flight -= settled
            self._unfinished -= settled
        for seq, reason, error_type, text, traceback_text, pickled in failures:
            entry = held.pop(seq)
            if entry is None:
                continue
            worker.failed_attempts += 1
            self._in_flight -= 1
            self._failed(entry, reason, f"{error_type}: {text}", traceback_text, pickled)
        if worker.isolating and not held:
            worker.isolating = False
        if histogram_wire is not None:
            delta = LatencyHistogram.from_wire(histogram_wire)
            worker.handler_latency.merge(delta)
            call_all(self._hooks, "on_latencies", worker.pid, delta)
        if rss is not None:
            worker.rss_bytes = rss
        if self._unfinished == 0:
            assert self._idle is not None
            self._idle.set()
        if worker.state == READY and self._should_recycle(worker):
            self._background_task(self._recycle(worker))
        if self._queue or self._suspects:
            self._dispatch()
        elif self._backpressure:
            self._dispatch()  # re-checks the low-water mark

    def _release_key(self, key: str) -> None:
        line = self._keys[key]
        if line:
            self._queue.push(line.popleft())
            if not self._dispatch_scheduled:
                self._dispatch_scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self._dispatch)
        else:
            del self._keys[key]

    # -- failures, retries, dead letters ---------------------------------------------------

    def _failed(self, entry: Entry, reason: str, error: str, traceback_text: str, pickled: bytes | None) -> None:
        """One delivery of ``entry`` failed: schedule its retry or dead-letter it."""
        self._failed_attempts += 1
        if self._retry.should_retry(entry.attempt):
            self._retried += 1
            if not self._running:  # shutting down: it goes back to the queue, reported as remaining
                self._queue.push(entry)
                return
            delay = self._retry.delay(entry.attempt)
            assert self._loop is not None
            # A message that killed its worker while alone is retried alone again.
            alone = reason == "crashed"
            self._retry_timers[entry.seq] = (self._loop.call_later(delay, self._requeue, entry, alone), entry)
            return
        letter = DeadLetter(
            id=f"{self._engine_id}-{entry.seq}",
            payload=_decoder.decode(entry.payload),
            priority=_PRIORITIES[entry.priority],
            attempts=entry.attempt,
            enqueued_at=entry.enqueued_at,
            dead_at=time.time(),
            reason=reason,
            error=error,
            traceback=traceback_text,
            ordering_key=entry.key,
        )
        self._dead_letters.add(letter)
        self._dead_lettered += 1
        self._unfinished -= 1
        if entry.future is not None and not entry.future.done():
            entry.future.set_exception(_handler_exception(letter, pickled))
        if entry.key is not None:
            self._release_key(entry.key)
        call_all(self._hooks, "on_dead_letter", letter)
        if self._unfinished == 0:
            assert self._idle is not None
            self._idle.set()

    def _requeue(self, entry: Entry, alone: bool) -> None:
        self._retry_timers.pop(entry.seq, None)
        if alone:
            self._suspects.append(entry)
        else:
            self._queue.push(entry)
        self._dispatch()

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter so far, oldest first (payload, attempts, last error and traceback)."""
        return self._dead_letters.snapshot()

    def replay_dead_letters(self) -> list[str]:
        """Enqueue every dead letter again as a new message (attempts start over); returns the new ids."""
        letters = self._dead_letters.take_all()
        return [self._accept(letter.payload, letter.priority, letter.ordering_key, None) for letter in letters]

    # -- workers ---------------------------------------------------------------------------

    def _settings(self, index: int) -> dict[str, Any]:
        return {
            "engine_id": self._engine_id,
            "index": index,
            "handler": self._handler_spec,
            "setup": self._setup_spec,
            "teardown": self._teardown_spec,
            "concurrency": self.config.worker_concurrency,
            "timeout": self.config.worker_timeout,
            "heartbeat_interval": self.config.heartbeat_interval,
            "sys_path": [entry for entry in sys.path if isinstance(entry, str)],
        }

    async def _add_worker(self) -> WorkerHandle:
        """Start one worker and wait for READY; it joins dispatch from then on."""
        index = self._next_worker_index
        self._next_worker_index += 1
        worker = WorkerHandle(index, self._on_frame, self._clock, Prefetch(self.config, self._clock()))
        self._workers.append(worker)
        self._spawned.add(worker)
        # Spawning runs to its end even if this start is cancelled, so that whatever it
        # opened (process, pipes) is known and can be closed below.
        spawn = asyncio.ensure_future(worker.spawn(self._settings(index)))
        try:
            await asyncio.shield(spawn)
            await asyncio.wait_for(asyncio.shield(worker.ready), STARTUP_TIMEOUT)
        except BaseException:
            await asyncio.gather(spawn, return_exceptions=True)
            if not worker.ready.done():
                worker.exit_reason = worker.exit_reason or "retired"  # stopped on purpose, not failed
            worker.kill()
            if worker in self._workers:
                self._workers.remove(worker)
            if worker.process is not None:
                await worker.wait_exit()
            self._spawned.discard(worker)
            worker.state = EXITED
            if not worker.exited.done():
                worker.exited.set_result(None)
            raise
        worker.last_heard = self._clock()
        self._background_task(self._watch(worker))
        if self._running:  # the first workers are announced after on_start
            call_all(self._hooks, "on_worker_started", worker.pid)
        self._dispatch()
        return worker

    async def _add_workers(self, count: int) -> None:
        """Start ``count`` workers at once; if one fails, cancel (and kill) the others and raise."""
        starts = [asyncio.ensure_future(self._add_worker()) for _ in range(count)]
        try:
            await asyncio.gather(*starts)
        except BaseException:
            for start in starts:
                start.cancel()
            await asyncio.gather(*starts, return_exceptions=True)
            raise

    async def _watch(self, worker: WorkerHandle) -> None:
        """Handle a worker's exit: re-deliver what it held and, unless it was retired, replace it."""
        code = await worker.wait_exit()
        self._spawned.discard(worker)
        was_retiring = worker.state == RETIRING
        worker.state = EXITED
        if worker in self._workers:
            self._workers.remove(worker)
        reason = worker.exit_reason or "crashed"
        if reason == "crashed":
            _log.warning("worker %d exited unexpectedly (code %s); re-delivering %d messages", worker.pid, code, len(worker.held))
        else:
            _log.info("worker %d exited (%s, code %s)", worker.pid, reason, code)
        self._redeliver(worker, reason, code)
        self._broadcasts.worker_exited(worker)
        call_all(self._hooks, "on_worker_exited", worker.pid, code, reason)
        if not worker.exited.done():
            worker.exited.set_result(None)
        for attempt in range(1, REPLACEMENT_ATTEMPTS + 1):
            if was_retiring or not self._running:
                break
            try:
                await self._add_worker()
                break
            except Exception:
                _log.exception("could not replace worker %d (attempt %d of %d)", worker.pid, attempt, REPLACEMENT_ATTEMPTS)

    def _redeliver(self, worker: WorkerHandle, reason: str, code: int | None) -> None:
        entries = worker.held.take_all()
        self._in_flight -= len(entries)
        if len(entries) == 1 and (worker.isolating or reason in ("crashed", "unresponsive")):
            # It ran alone, so its death is its own: count the attempt.
            what = "stopped answering" if reason == "unresponsive" else f"exited with code {code}"
            self._failed(entries[0], "crashed", f"WorkerDied: worker {worker.pid} {what} while running this message alone", "", None)
        else:
            # Shared deaths are nobody's fault yet: refund the attempt and re-run each alone once.
            for entry in entries:
                entry.attempt -= 1
                if reason in ("crashed", "unresponsive"):
                    self._suspects.append(entry)
                else:
                    self._queue.push(entry)
        if entries:
            self._dispatch()

    def _check_liveness(self) -> None:
        """Kill workers that stopped answering (a handler blocking the loop) for ``worker_timeout``."""
        now = self._clock()
        for worker in list(self._workers):
            if worker.state in (READY, RETIRING) and now - worker.last_heard > self.config.worker_timeout:
                _log.warning("worker %d silent for %.1f s: killing it", worker.pid, now - worker.last_heard)
                worker.exit_reason = "unresponsive"
                worker.kill()

    def _should_recycle(self, worker: WorkerHandle) -> bool:
        config = self.config
        return bool(
            (config.max_messages_per_worker and worker.completed >= config.max_messages_per_worker)
            or (config.max_worker_rss_bytes and worker.rss_bytes > config.max_worker_rss_bytes)
        )

    async def _recycle(self, worker: WorkerHandle) -> None:
        """Retire ``worker`` (it drains first) and start a fresh one in its place."""
        worker.state = RETIRING
        await asyncio.gather(self._add_worker(), self._retire(worker, "recycled"))

    async def _retire(self, worker: WorkerHandle, reason: str) -> None:
        """Ask ``worker`` to finish what it holds and exit; kill it if it takes over ``worker_timeout``."""
        if worker.state == EXITED:
            return
        worker.state = RETIRING
        worker.exit_reason = worker.exit_reason or reason
        worker.send([transport.RETIRE])
        try:
            await asyncio.wait_for(asyncio.shield(worker.exited), self.config.worker_timeout + 5.0)
        except TimeoutError:
            worker.exit_reason = "unresponsive"
            worker.kill()
            await worker.exited

    async def scale_to(self, n: int) -> None:
        """Run ``n`` workers (``min_workers <= n <= max_workers``, else ``ValueError``).

        New workers join as soon as they are ready; retiring workers take no new messages,
        finish those they hold, and exit; returns when the count is ``n``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or not self.config.min_workers <= n <= self.config.max_workers:
            raise ValueError(f"scale_to needs min_workers <= n <= max_workers ({self.config.min_workers}..{self.config.max_workers}), got {n!r}")
        if not self._running:
            raise EngineNotRunning("scale_to needs a running engine")
        active = [w for w in self._workers if w.state in (STARTING, READY)]
        old = len(active)
        if n > old:
            await self._add_workers(n - old)
        elif n < old:
            # Retire the least loaded so the fewest messages wait on a leaving worker.
            leaving = sorted(active, key=lambda w: len(w.held))[: old - n]
            await asyncio.gather(*(self._retire(w, "retired") for w in leaving))
        if n != old:
            call_all(self._hooks, "on_scaled", old, n, "scale_to")

    def worker_pids(self) -> list[int]:
        """The pids of the live worker processes (starting, ready or retiring)."""
        return [w.pid for w in self._workers if w.state != EXITED and w.pid]

    # -- broadcast -------------------------------------------------------------------------

    async def broadcast(self, topic: str, payload: bytes) -> None:
        """Apply ``payload`` on ``topic`` in every live worker (see ``current_worker().subscribe``)."""
        check_broadcast(topic, payload)
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        self._broadcasts.start(self._broadcast_targets(), topic, bytes(payload), done=done)
        await done

    def _broadcast_targets(self) -> list[WorkerHandle]:
        return [w for w in self._workers if w.state in (READY, RETIRING)]

    # -- completion and statistics ---------------------------------------------------------

    async def wait_for_completion(self, timeout: float | None = None) -> None:
        """Return once everything accepted so far is done or dead-lettered (``TimeoutError`` after ``timeout`` s)."""
        if self._idle is None:
            return
        await asyncio.wait_for(self._idle.wait(), timeout)

    def _queued(self) -> int:
        return self._unfinished - self._in_flight

    def get_statistics(self) -> Statistics:
        """A snapshot of the engine's counters, queue, workers, throughput and latency."""
        now = self._clock()
        latency = self._latency.merged() if self._latency is not None else LatencyHistogram()
        workers = [
            WorkerStatistics(
                pid=w.pid, index=w.index, state=w.state, in_flight=len(w.held), prefetch=w.prefetch.limit,
                completed=w.completed,
                failed_attempts=w.failed_attempts, rss_bytes=w.rss_bytes,
                handler_p50=w.handler_latency.quantile(0.5), handler_p99=w.handler_latency.quantile(0.99),
            )
            for w in self._workers
        ]
        return Statistics(
            enqueued=self._next_seq,
            completed=self._completed,
            failed_attempts=self._failed_attempts,
            retried=self._retried,
            dead_lettered=self._dead_lettered,
            in_flight=self._in_flight,
            queued=self._queued(),
            queue_depths=self._queue.depths(),
            backpressure=self._backpressure,
            worker_count=sum(1 for w in self._workers if w.state in (STARTING, READY)),
            workers=workers,
            throughput_1s=self._throughput.rate(now, 1.0),
            throughput_10s=self._throughput.rate(now, 10.0),
            throughput_60s=self._throughput.rate(now, 60.0),
            latency_p50=latency.quantile(0.5),
            latency_p95=latency.quantile(0.95),
            latency_p99=latency.quantile(0.99),
            uptime=now - self._started_at,
        )

    def _publish_statistics(self) -> None:
        now = self._clock()
        self._throughput.sample(now, self._completed)
        assert self._latency is not None
        self._latency.rotate(now)
        if self._hooks:
            call_all(self._hooks, "on_statistics", self.get_statistics())

    def _every(self, interval: float, tick: Callable[[], None]) -> None:
        assert self._loop is not None
        loop = self._loop

        def run() -> None:
            if not self._running:
                return
            try:
                tick()
            finally:
                self._timers.append(loop.call_later(interval, run))
                if len(self._timers) > 16:
                    del self._timers[:-2]

        self._timers.append(loop.call_later(interval, run))

    def _background_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _message_of(self, entry: Entry) -> Message:
        return Message(
            f"{self._engine_id}-{entry.seq}", _decoder.decode(entry.payload), _PRIORITIES[entry.priority],
            entry.attempt, entry.enqueued_at, entry.key,
        )


def _encode_batch(payloads: Iterable[Any]) -> PayloadBatch:
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
        raise UnencodablePayload(f"the payloads cannot be encoded with msgpack together: {batch_error}") from batch_error


def _handler_exception(letter: DeadLetter, pickled: bytes | None) -> BaseException:
    """What ``submit`` raises for a dead-lettered message: the handler's own exception if it crossed over."""
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
            if isinstance(exc, BaseException):
                return exc
        except Exception:
            pass
    if letter.reason == "crashed":
        return MessageDeadLettered(f"message {letter.id} dead-lettered after {letter.attempts} attempts: {letter.error}")
    error_type, _, text = letter.error.partition(": ")
    return HandlerError(error_type, text, letter.traceback)
