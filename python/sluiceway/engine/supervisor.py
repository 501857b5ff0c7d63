"""``MessageParallelizer``: the engine's public face, composed of one part per responsibility.

- ``Ledger`` (``ledger.py``): every message accepted and not finished, and the totals;
- ``Intake`` (``accepting.py``): checking, encoding and accepting messages, backpressure;
- ``Dispatcher`` (``dispatch.py``): the ledger's queue into workers, their reports settled;
- ``Failures`` (``retries.py``): retries with backoff, crash suspects, dead letters;
- ``WorkerPool`` (``pool.py``): worker processes started, watched, replaced, retired, scaled;
- ``BroadcastRelay`` (``broadcast.py``) and ``HookSet`` (``hooks.py``);
- ``EngineJournal`` (``journaling.py``): with ``journal=path``, the durable record the ledger keeps.

This module wires them together, routes worker frames, and owns start and shutdown. It is
over 500 lines because it is the engine's whole public API: most of it is the public
methods' docstrings, and each method hands its work to one of the parts above.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from os import PathLike
from typing import TYPE_CHECKING, Any

import msgspec

from sluiceway._core import Entry
from sluiceway.engine import pipe
from sluiceway.engine.accepting import Intake
from sluiceway.engine.broadcast import BroadcastRelay
from sluiceway.engine.config import ParallelizerConfig
from sluiceway.engine.context import check_broadcast
from sluiceway.engine.dead_letters import DeadLetter
from sluiceway.engine.dispatch import Dispatcher
from sluiceway.engine.errors import EngineNotRunning, WorkerStartupError
from sluiceway.engine.handler import spec_of
from sluiceway.engine.hooks import EngineHooks, HookSet, LatencyDelta, Scaled, WorkerExited
from sluiceway.engine.journaling import EngineJournal
from sluiceway.engine.ledger import Ledger
from sluiceway.engine.message import Accepted, Message, MessageIds, Priority
from sluiceway.engine.pool import WorkerPool
from sluiceway.engine.retries import Failures, recovered_letter
from sluiceway.engine.retry import RetryPolicy
from sluiceway.engine.statistics import LatencyWindow, Statistics, ThroughputMeter, WorkerStatistics
from sluiceway.engine.worker_handle import READY, STARTING, WorkerHandle
from sluiceway.histogram import LatencyHistogram
from sluiceway.journal import AsyncJournal, JournaledMessage

if TYPE_CHECKING:
    from sluiceway.engine.redis_broker import RedisBroker

_log = logging.getLogger("sluiceway.engine")
_decoder = msgspec.msgpack.Decoder()
_PRIORITIES = tuple(Priority)

Handler = Callable[[Message], Any]


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

    With ``journal=path`` every accepted message is committed to a SQLite journal before
    it is reported accepted (``enqueue_message``, ``enqueue_many``, ``submit`` and
    ``accept(...).committed`` return only then; concurrent accepts share one commit), and
    dead letters live there too. A restart on the same path re-queues every unfinished
    message (priority, ordering key, attempts and enqueue time kept, per-key order kept)
    before new work; those that were in a worker's hands when the process died re-run one
    at a time, so a message that kills the whole process reaches the dead letters after
    ``max_attempts`` starts and takes no other message with it. Message ids are stable
    across restarts. ``on_recovered(payload, result_future)`` is told of each message the
    journal hands back without a caller waiting for it (unfinished at start, or a replayed dead
    letter), so that its handler's result still reaches someone. ``enqueue_nowait`` and
    ``enqueue_many_nowait`` refuse with a journal (they could only report an accept before it
    is durable): use ``accept``.

    With ``broker=RedisBroker(url, ...)`` (or a ``redis://`` URL) the engine is one node of
    several sharing a queue in Redis (:mod:`sluiceway.engine.redis_broker`): ``accept`` and
    ``enqueue_message`` return once Redis has the message (with ``dedup_key``, its de-dup record
    too), any node may run it, and its handler's result reaches ``on_recovered`` on that node.
    ``submit``, ``enqueue_many`` and the ``_nowait`` variants refuse with a broker, and dead
    letters live in Redis (``sluiceway.engine.redis_dead_letters``); ``journal`` and ``broker``
    exclude each other.

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
        journal: str | PathLike[str] | None = None,
        on_recovered: Callable[[Any, asyncio.Future[Any]], None] | None = None,
        broker: RedisBroker | str | None = None,
    ) -> None:
        self.config = config if config is not None else ParallelizerConfig()
        if not isinstance(self.config, ParallelizerConfig):
            raise ValueError(f"config must be a ParallelizerConfig, got {type(config).__name__}")
        if journal is not None and not isinstance(journal, (str, PathLike)):
            raise ValueError(f"journal must be a path (str or PathLike) or None, got {type(journal).__name__}")
        self._journal_path = os.fspath(journal) if journal is not None else None
        if broker is not None and journal is not None:
            raise ValueError("journal and broker exclude each other: Redis is the durable record with a broker")
        if isinstance(broker, str):
            from sluiceway.engine.redis_broker import RedisBroker

            broker = RedisBroker(broker, dedup_window=self.config.dedup_window)
        #: With a broker (Redis), accepts go there and this engine runs the partitions it holds.
        self.broker = broker
        self._handler_spec = spec_of(handler, "handler")
        self._setup_spec = spec_of(worker_setup, "worker_setup") if worker_setup is not None else None
        self._teardown_spec = spec_of(worker_teardown, "worker_teardown") if worker_teardown is not None else None
        self._hooks = HookSet(([monitor] if monitor is not None else []) + list(hooks))
        self._clock = clock
        self._on_recovered = on_recovered
        # With a journal, ids must stay the same across restarts: derive them from its path.
        self._engine_id = (
            hashlib.sha256(os.path.abspath(self._journal_path).encode()).hexdigest()[:12]
            if self._journal_path is not None
            else uuid.uuid4().hex[:12]
        )
        self._ledger = Ledger(len(_PRIORITIES))
        self._intake = Intake(self.config, self._ledger, self._engine_id, clock)
        self._intake.broker = broker
        self._failures = Failures(self._ledger, RetryPolicy(self.config), self._hooks, self._engine_id)
        self._pool = WorkerPool(
            self.config, self._settings, self._on_frame, self._worker_ready, self._worker_exited, self._hooks, clock
        )
        self._dispatcher = Dispatcher(self._ledger, self._pool, self._intake, self._failures, clock)
        self._ledger.wake = self._dispatcher.soon
        self._broadcasts = BroadcastRelay()
        self._throughput = ThroughputMeter()
        self._latency: LatencyWindow | None = None
        self._running = False
        self._closing = False
        self._started_at = 0.0
        self._summary: ShutdownSummary | None = None
        self._timers: list[asyncio.TimerHandle] = []
        #: Crash suspects a restart dead-lettered (out of starts), told to the hooks once started.
        self._recovered_letters: list[DeadLetter] = []
        # Set in start(), to the loop that runs the engine.
        self._loop: asyncio.AbstractEventLoop | None = None

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
        self._loop = self._dispatcher.loop = asyncio.get_running_loop()
        self._started_at = self._clock()
        self._latency = LatencyWindow(self._started_at)
        self._throughput.sample(self._started_at, 0)
        if self._journal_path is not None:
            await self._open_journal(self._journal_path)
        if self.broker is not None:
            await self.broker.connect()
        try:
            await self._pool.add_workers(self.config.default_worker_count)
        except BaseException:
            await self._pool.kill_all()
            if self._ledger.journal is not None:
                await self._ledger.journal.close()
            if self.broker is not None:
                await self.broker.close()
            raise
        self._running = self._pool.running = self._failures.running = True
        self._intake.start(self._started_at)
        self._every(self.config.heartbeat_interval, self._pool.check_liveness)
        self._every(self.config.statistics_interval, self._publish_statistics)
        self._hooks.start(self)
        if self.broker is not None:
            await self.broker.start(self._stage_delivered, self.config.max_attempts, self.config.queue_high_water_mark)
        for worker in self._pool.workers:
            self._pool.announce(worker)
        for letter in self._recovered_letters:
            self._hooks.dead_letter(letter)
        self._recovered_letters = []

    async def _open_journal(self, path: str) -> None:
        """Open the journal (``JournalLocked``/``JournalError`` as they are: they name the file,
        the holder's pid or the reason) and re-queue what the last run left."""
        config = self.config
        journal, recovery, letters = await EngineJournal.open(
            path, config.journal_sync, config.dedup_window, config.dedup_max_entries
        )
        ledger = self._ledger
        ledger.journal = journal
        for letter in letters:
            self._failures.dead_letters.add(recovered_letter(self._engine_id, letter))
        messages, self._recovered_letters = self._failures.recovered(recovery.messages)
        result_of = self._recovered_result if self._on_recovered is not None else None
        ledger.recover(messages, recovery.next_seq, self._clock(), result_of)
        if recovery.messages:
            _log.info(
                "journal %s: %d unfinished messages re-queued (%d were in flight), %d dead letters",
                path,
                len(messages),
                len(recovery.suspects),
                len(self._failures.dead_letters),
            )

    @property
    def journal(self) -> AsyncJournal | None:
        """The open journal (with ``journal=path``: from ``start``, and already in ``on_recovered``),
        for components that keep their own records beside the engine's in it (the reply outbox)."""
        return self._ledger.journal.aio if self._ledger.journal is not None else None

    def _stage_delivered(
        self, payload: bytes, level: int, wall: float, key: str | None, attempt: int
    ) -> asyncio.Future[Any]:
        """A message the broker read from Redis: run it here; ``on_recovered`` gets its result."""
        future: asyncio.Future[Any] = self._running_loop().create_future()
        if self._on_recovered is not None:
            self._on_recovered(_decoder.decode(payload), future)
        self._ledger.accept_delivered(level, wall, self._clock(), payload, key, future, attempt)
        return future

    def _recovered_result(self, message: JournaledMessage) -> asyncio.Future[Any]:
        """A re-queued message's result future, handed to ``on_recovered`` (its submitter is gone)."""
        assert self._on_recovered is not None
        future: asyncio.Future[Any] = self._running_loop().create_future()
        self._on_recovered(_decoder.decode(message.payload), future)
        return future

    async def shutdown(self, drain: bool = True, timeout: float | None = None) -> ShutdownSummary:
        """Stop accepting, then stop the workers; a second call returns the first one's summary.

        With ``drain`` it first waits (up to ``timeout`` seconds, ``None`` = as long as it takes)
        until everything accepted is done or dead-lettered; without it, or once ``timeout``
        passes, workers finish only what they hold, and the messages still queued are
        returned in ``ShutdownSummary.remaining`` (pending ``submit`` calls get
        ``EngineNotRunning``). With a journal they also stay in it, and the next start on
        it runs them; the journal is closed last.
        """
        if self._summary is not None:
            return self._summary  # already shut down (e.g. inside ``async with``)
        if not self._running:
            raise EngineNotRunning("shutdown() needs a started engine")
        self._closing = True
        self._intake.close()
        if self.broker is not None:
            await self.broker.stop_reading()
        if drain:
            try:
                await self.wait_for_completion(timeout)
            except TimeoutError:
                _log.warning("drain did not finish within %s s; stopping with work queued", timeout)
        self._running = self._pool.running = self._failures.running = False
        self._intake.stop()
        for timer in self._timers:
            timer.cancel()
        if self._ledger.committing:  # accepts on their way to the journal: staged once committed
            await asyncio.gather(*self._ledger.committing, return_exceptions=True)
        remaining_entries = self._ledger.take_waiting()
        await self._pool.retire_all()
        # Workers re-queue what they held if they died while retiring: collect that too.
        remaining_entries += self._ledger.take_waiting()
        remaining = []
        for entry in remaining_entries:
            remaining.append(self._message_of(entry))
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(EngineNotRunning("the engine shut down before this message ran"))
        await self._pool.kill_all()
        if self.broker is not None:  # what was read and not run stays pending there for the next holder
            await self.broker.close()
        ledger = self._ledger
        if ledger.journal is not None:  # what remains stays in it for the next start
            await ledger.journal.close()
        summary = self._summary = ShutdownSummary(
            ledger.completed, ledger.failed_attempts, ledger.retried, ledger.dead_lettered, remaining
        )
        _log.info(
            "shutdown ◆ %d completed ◆ %d failed attempts ◆ %d retried ◆ %d dead-lettered ◆ %d left queued",
            summary.completed,
            summary.failed_attempts,
            summary.retried,
            summary.dead_lettered,
            len(remaining),
        )
        await self._hooks.stop()
        return summary

    # -- accepting messages ----------------------------------------------------------------

    async def enqueue_message(
        self, payload: Any, priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> str:
        """Accept ``payload`` (anything msgpack encodes) and return its message id.

        Waits while backpressure is on (from the high-water mark down to the low one).
        ``UnencodablePayload`` for a payload msgpack cannot encode, ``ValueError`` for an
        unknown priority.
        """
        if self.broker is not None:
            accepted = self._intake.accept_once(payload, priority, ordering_key, None, self._running_loop())
            await accepted.committed
            return accepted.id
        if self._intake.backpressure:
            await self._intake.wait_for_room()
        message_id, committed = self._intake.admit(payload, priority, ordering_key, None)
        if committed is not None:
            await committed
        return message_id

    def enqueue_nowait(
        self, payload: Any, priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> str:
        """Like ``enqueue_message`` but raises ``Backpressure`` instead of waiting.

        ``ValueError`` with a journal: it would report the message accepted before it is
        committed; use ``accept`` (and await its ``committed``) instead.
        """
        self._refuse_with_journal("enqueue_nowait")
        if self._intake.backpressure:
            raise self._intake.backpressure_error()
        return self._intake.accept(payload, priority, ordering_key, None)

    def accept(
        self,
        payload: Any,
        priority: Priority | int = Priority.NORMAL,
        *,
        ordering_key: str | None = None,
        dedup_key: str | None = None,
    ) -> Accepted:
        """Accept ``payload`` now (or raise ``Backpressure``, ``UnencodablePayload``...), and hand
        back its id, its commit and its result (see ``Accepted``).

        With a journal the message counts as accepted only once ``committed`` resolves to
        True: a webhook should be answered 200 only then. ``dedup_key`` (a webhook's wamid):
        a key already accepted within ``dedup_window`` is not accepted again (``committed``
        resolves to False); with a journal the message and its key commit in one transaction.
        """
        if self._intake.backpressure:
            raise self._intake.backpressure_error()
        return self._intake.accept_once(payload, priority, ordering_key, dedup_key, self._running_loop())

    def _refuse_with_broker(self, method: str) -> None:
        if self.broker is not None:
            raise ValueError(
                f"{method} is not available with a broker (any node may run the message): "
                "use accept(...) and await its committed, or enqueue_message"
            )

    def _refuse_with_journal(self, method: str) -> None:
        self._refuse_with_broker(method)
        if self._journal_path is not None:
            raise ValueError(
                f"{method} cannot report an accept before the journal commits it: "
                "use accept(...) and await its committed, or the awaiting enqueue methods"
            )

    async def submit(
        self, payload: Any, priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> Any:
        """Run ``payload`` through the handler and return its result (which must be msgpack-encodable).

        Retries like any message; after the last attempt raises the handler's exception (or
        ``HandlerError`` when it cannot cross processes, ``MessageDeadLettered`` when the
        worker died on every try).
        """
        self._refuse_with_broker("submit")
        if self._intake.backpressure:
            await self._intake.wait_for_room()
        future: asyncio.Future[Any] = self._running_loop().create_future()
        _, committed = self._intake.admit(payload, priority, ordering_key, future)
        if committed is not None:
            await committed
        return await future

    def submit_nowait(
        self, payload: Any, priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> asyncio.Future[Any]:
        """Like ``submit`` but accepts now or raises (``Backpressure``, ``UnencodablePayload``...);
        returns the future of the handler's result.

        For callers that track many results with callbacks rather than a task each (the bot
        runtime hands every inbound message to the engine this way). With a journal the
        message counts as accepted once committed, and the future raises ``JournalError``
        if the commit fails; use ``accept`` to learn when it is committed.
        """
        self._refuse_with_broker("submit_nowait")
        if self._intake.backpressure:
            raise self._intake.backpressure_error()
        future: asyncio.Future[Any] = self._running_loop().create_future()
        self._intake.admit(payload, priority, ordering_key, future)
        return future

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
        self._refuse_with_broker("enqueue_many")
        return await self._intake.accept_many(payloads, priority, ordering_key)

    def enqueue_many_nowait(
        self, payloads: Iterable[Any], priority: Priority | int = Priority.NORMAL, *, ordering_key: str | None = None
    ) -> MessageIds:
        """Like ``enqueue_many`` but all or nothing: ``Backpressure`` if it is on, else the whole batch goes in.

        ``ValueError`` with a journal (it would report the batch accepted before it is
        committed): await ``enqueue_many`` instead.

        Warning:
            The batch is accepted whole even when it takes the queue past the high-water
            mark (backpressure then switches on for what follows); bound batch sizes if the
            mark must hold exactly.
        """
        self._refuse_with_journal("enqueue_many_nowait")
        return self._intake.accept_many_nowait(payloads, priority, ordering_key)

    # -- dead letters ----------------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter so far, oldest first (payload, attempts, last error and traceback).

        With a journal they are kept there, and this includes those of earlier runs.
        """
        return self._failures.dead_letters.snapshot()

    def replay_dead_letters(self) -> list[str]:
        """Enqueue every dead letter again as a new message (attempts start over); returns the new ids.

        With a journal the dead letters move back to the messages in one transaction,
        queued now and committed in order with everything else.
        """
        if self.broker is not None:
            raise ValueError("with a broker the dead letters are in Redis: replay them with RedisDeadLetters.replay")
        journal = self._ledger.journal
        if journal is None:
            letters = self._failures.dead_letters.take_all()
            return [
                self._intake.accept(letter.payload, letter.priority, letter.ordering_key, None) for letter in letters
            ]
        self._intake.check(Priority.NORMAL, None)
        count = len(self._failures.dead_letters)
        if not count:
            return []
        self._failures.dead_letters.take_all()
        result_of = self._recovered_result if self._on_recovered is not None else None
        op = journal.replay_dead_letters(self._ledger.last_seq + 1)
        first = self._ledger.replay(op, count, self._clock(), result_of)
        return [f"{self._engine_id}-{seq}" for seq in range(first, first + count)]

    def purge_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        """Delete dead letters (all, or those with the given ids) for good; how many went."""
        chosen = None if ids is None else set(ids)
        purged = self._failures.dead_letters.remove(chosen)
        journal = self._ledger.journal
        if journal is not None and purged:
            prefix = f"{self._engine_id}-"
            seqs = None if chosen is None else [int(letter.id.removeprefix(prefix)) for letter in purged]
            journal.purge_dead_letters(seqs)
        return len(purged)

    # -- workers ---------------------------------------------------------------------------

    async def scale_to(self, n: int) -> None:
        """Run ``n`` workers (``min_workers <= n <= max_workers``, else ``ValueError``).

        New workers join as soon as they are ready; retiring workers take no new messages,
        finish those they hold, and exit; returns when the count is ``n``.
        """
        low, high = self.config.min_workers, self.config.max_workers
        if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= high:
            raise ValueError(f"scale_to needs min_workers <= n <= max_workers ({low}..{high}), got {n!r}")
        if not self._running:
            raise EngineNotRunning("scale_to needs a running engine")
        old = await self._pool.scale_to(n)
        if n != old:
            self._hooks.scaled(Scaled(old, n, "scale_to"))

    def worker_pids(self) -> list[int]:
        """The pids of the live worker processes (starting, ready or retiring)."""
        return self._pool.pids()

    async def journal_synchronous(self) -> str | None:
        """What the journal's SQLite reports for ``PRAGMA synchronous`` ("full" or "normal"), or None without one."""
        journal = self._ledger.journal
        return None if journal is None else await journal.synchronous()

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

    def _worker_ready(self, worker: WorkerHandle) -> None:
        self._dispatcher.dispatch()

    def _worker_exited(self, worker: WorkerHandle, reason: str, code: int | None) -> None:
        """Re-deliver what ``worker`` held, publish what it completed, tell the hooks."""
        entries = worker.held.take_all()
        self._failures.redeliver(entries, worker.pid, worker.isolating, reason, code)
        if entries:
            self._dispatcher.dispatch()
        self._broadcasts.worker_exited(worker)
        self._publish_latencies_of(worker)
        self._hooks.worker_exited(WorkerExited(worker.pid, worker.index, code, reason))

    def _on_frame(self, worker: WorkerHandle, frame: list[Any]) -> None:
        kind = frame[0]
        if kind == pipe.REPORT:
            self._dispatcher.settle_report(worker, frame)
        elif kind == pipe.READY:
            self._pool.on_ready_frame(worker)
        elif kind == pipe.STARTUP_FAILED:
            if not worker.ready.done():
                worker.ready.set_exception(WorkerStartupError(f"worker {worker.pid} failed to start:\n{frame[1]}"))
        elif kind == pipe.BROADCAST:
            self._broadcasts.start(self._pool.reachable(), frame[2], frame[3], worker, frame[1])
        elif kind == pipe.APPLIED:
            self._broadcasts.applied(worker, frame[1])

    # -- broadcast -------------------------------------------------------------------------

    async def broadcast(self, topic: str, payload: bytes) -> None:
        """Apply ``payload`` on ``topic`` in every live worker (see ``current_worker().subscribe``)."""
        check_broadcast(topic, payload)
        done: asyncio.Future[None] = self._running_loop().create_future()
        self._broadcasts.start(self._pool.reachable(), topic, bytes(payload), done=done)
        await done

    # -- completion and statistics ---------------------------------------------------------

    async def wait_for_completion(self, timeout: float | None = None) -> None:
        """Return once everything accepted so far is done or dead-lettered (``TimeoutError`` after ``timeout`` s).

        With a broker: everything this node read from Redis (other nodes run the rest)."""
        await asyncio.wait_for(self._idle(), timeout)

    async def _idle(self) -> None:
        await self._ledger.idle.wait()
        broker = self.broker
        while broker is not None and broker.outstanding:  # an ack on its way, or a key's next message
            await asyncio.sleep(0.005)
            await self._ledger.idle.wait()

    def get_statistics(self) -> Statistics:
        """A snapshot of the engine's counters, queue, workers, throughput and latency."""
        now = self._clock()
        latency = self._latency.merged() if self._latency is not None else LatencyHistogram()
        workers = self._pool.workers
        for worker in workers:
            latency.merge(worker.settled_latency)  # completions not yet published
        workers_statistics = [
            WorkerStatistics(
                pid=w.pid,
                index=w.index,
                state=w.state,
                in_flight=len(w.held),
                prefetch=w.prefetch.limit,
                completed=w.completed,
                failed_attempts=w.failed_attempts,
                rss_bytes=w.rss_bytes,
                handler_p50=w.handler_latency.quantile(0.5),
                handler_p99=w.handler_latency.quantile(0.99),
            )
            for w in workers
        ]
        ledger = self._ledger
        journal_stats = ledger.journal.stats if ledger.journal is not None else None
        return Statistics(
            enqueued=ledger.accepted,
            completed=ledger.completed,
            failed_attempts=ledger.failed_attempts,
            retried=ledger.retried,
            dead_lettered=ledger.dead_lettered,
            in_flight=ledger.in_flight,
            queued=ledger.queued,
            queue_depths=ledger.queue.depths(),
            backpressure=self._intake.backpressure,
            worker_count=sum(1 for w in workers if w.state in (STARTING, READY)),
            workers=workers_statistics,
            throughput_1s=self._throughput.rate(now, 1.0),
            throughput_10s=self._throughput.rate(now, 10.0),
            throughput_60s=self._throughput.rate(now, 60.0),
            latency_p50=latency.quantile(0.5),
            latency_p95=latency.quantile(0.95),
            latency_p99=latency.quantile(0.99),
            uptime=now - self._started_at,
            worker_start_seconds=self._pool.start_seconds(),
            journal_bytes=journal_stats.file_bytes if journal_stats is not None else 0,
            journal_pending=journal_stats.pending if journal_stats is not None else 0,
        )

    def publish_latencies(self) -> None:
        """Hand the hooks a ``LatencyDelta`` per worker that completed messages since its last one.

        Runs every statistics interval; a collector (the monitor) calls it before reading
        ``get_statistics()`` so that its completion counts and its histogram agree exactly.
        """
        for worker in self._pool.workers:
            self._publish_latencies_of(worker)

    def _publish_latencies_of(self, worker: WorkerHandle) -> None:
        delta = worker.settled_latency
        if not delta.count:
            return
        worker.settled_latency = LatencyHistogram()
        if self._latency is not None:
            self._latency.current.merge(delta)
        self._hooks.latencies(LatencyDelta(worker.pid, delta))

    def _publish_statistics(self) -> None:
        now = self._clock()
        self._throughput.sample(now, self._ledger.completed)
        assert self._latency is not None
        self._latency.rotate(now)
        if self._ledger.journal is not None:
            self._ledger.journal.refresh_stats()
        self.publish_latencies()
        if self._hooks:
            self._hooks.statistics(self.get_statistics())

    def _every(self, interval: float, tick: Callable[[], None]) -> None:
        loop = self._running_loop()

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

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise EngineNotRunning("the engine is not running (call start() first)")
        return self._loop

    def _message_of(self, entry: Entry) -> Message:
        return Message(
            f"{self._engine_id}-{entry.seq}",
            _decoder.decode(entry.payload),
            _PRIORITIES[entry.priority],
            entry.attempt,
            entry.enqueued_at,
            entry.key,
        )
