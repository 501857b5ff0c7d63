"""``RedisBroker``: several engines (nodes) share one queue and one de-dup set in Redis.

An accept is one Lua script (the de-dup record with SET NX and its expiry, then XADD to the
partition stream of the message's ordering key), batched with whatever else is accepted meanwhile
into one pipelined round trip; it resolves only once Redis answered. Each partition is worked by
one node at a time, holding a lease (SET PX) with a fencing token (INCR). A node reads the
partitions it holds (one XREADGROUP for all of them, as many entries as its local queue has room
for), hands each ordering key's messages to its local engine one at a time, and finishes each with
a fenced Lua script (XACK and XDEL, or XADD to the dead-letter stream), batched per partition: a
node whose lease expired can neither finish a message nor start the next one of that key. A
lease taken over (its holder died, left, or gave it up to balance the nodes) first reclaims the
partition's pending entries with XAUTOCLAIM, in stream order, before reading new ones; an entry
delivered more than ``max_attempts`` times (its nodes died running it) goes to the dead letters.

Leases last ``claim_timeout`` seconds and are renewed several times per lease, so a dead node's
partitions move within ``claim_timeout``. Each node keeps about ``partitions / live nodes`` of
them (live: a heartbeat, on Redis's clock, within ``claim_timeout``). While Redis cannot be
reached accepts fail at once with ``BrokerUnavailable`` and everything else retries with backoff.

A partition given up cleanly (to balance the nodes, or by a graceful stop) gives its entries read
and never run back with their delivery counts as they were: only a node's death (or a stall past
``claim_timeout``) counts toward ``max_attempts``.

``hooks`` (:class:`LeaseHooks`) lets what the application keeps per partition follow the leases
(the bot runtime's reply outbox: :mod:`sluiceway.app.redis_outbox`) without the engine knowing it.

Delivery is at-least-once: a message whose node dies after running it and before the ack runs
again elsewhere. Per ordering key, order holds across nodes (one partition, one node, one message
of a key at a time).

Over 500 lines because accepting, leases, reading and finishing share one partition state
(``_Partition``) whose invariants are easiest to check in one place; the operators' side is in
``redis_status.py``, dead letters in ``redis_dead_letters.py``, the Lua in ``redis_scripts.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import math
import os
import socket
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from sluiceway.engine import redis_scripts as scripts
from sluiceway.engine.errors import BrokerUnavailable, EngineNotRunning
from sluiceway.engine.redis_scripts import redacted_url

_log = logging.getLogger("sluiceway.engine.redis")

#: Partitions of a new namespace: the most nodes that can share its work.
DEFAULT_PARTITIONS = 16
#: Most ids in one fenced ack (Lua's ``unpack`` has a stack limit).
_ACK_CHUNK = 500
#: Most messages in one accept script (it holds Redis for its run: about 1 µs per message).
_ACCEPT_CHUNK = 1_000
#: Longest wait between reconnection attempts, in seconds.
_MAX_BACKOFF = 2.0
#: How long one XREADGROUP waits for new entries, in milliseconds.
_READ_BLOCK_MS = 50
#: Seconds between reads that found entries, and before each ack batch: at a moderate rate (1,000
#: msg/s) several messages share a round trip instead of one each. The read pause is part of a
#: message's latency; the ack pause delays only the next message of the same key.
_READ_LINGER = 0.002
_ACK_LINGER = 0.005

#: Stages one delivered message in the local engine: (payload, level, wall, key, attempt) -> result future.
Stage = Callable[[bytes, int, float, "str | None", int], "asyncio.Future[Any]"]


class LeaseHooks(Protocol):
    """What the application keeps beside the queue per partition, told of the lease steps (``broker.hooks``).

    Each is awaited in the lease loop (or before acks); a ``RedisError`` fails that step as a Redis
    call of the broker's own would (retried with backoff).
    """

    async def beat(self) -> None:
        """Start of each lease round, before any lease is renewed or taken: a node whose last ``beat``
        is older than ``claim_timeout`` holds no lease any more."""

    async def holding(self, partitions: list[int]) -> None:
        """After the renewals of each round: the partitions this node still holds."""

    async def taking(self, partition: int) -> None:
        """A partition was just taken: before any of its messages is read or handed to the engine."""

    async def releasable(self, partition: int) -> bool:
        """May ``partition``, given up cleanly and with nothing of it left to finish, be released now? Asked
        each round until True, for at most ``claim_timeout``: its next holder's work must not overtake
        this node's (the replies this node has not sent yet to that partition's senders)."""

    async def before_finish(self) -> None:
        """Before a batch of fenced acks and dead letters is sent: whatever the finished messages'
        results produced (the replies their handlers made) must be durable when this returns."""


_encode = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(tuple[int, float, str | None, bytes]).decode


class _Partition:
    """A partition this node holds: its lease value and the messages read from it, not yet finished."""

    def __init__(self, number: int, stream: str, lease_key: str, lease: str) -> None:
        self.number = number
        self.stream = stream
        self.lease_key = lease_key
        #: "<node>:<token>": what the fenced scripts compare with the lease key.
        self.lease = lease
        #: Per ordering key whose message is in the engine: the ones read after it.
        self.lines: dict[str, deque[_Delivery]] = {}
        self.acks: list[_Delivery] = []
        self.dead: list[tuple[_Delivery, str]] = []
        #: Read and not finished (queued in lines, in the engine, or awaiting the ack).
        self.outstanding = 0
        self.lost = False
        #: Read and never run: the engine gave them back unrun (it stopped). Their delivery
        #: counts are given back with the lease (``GIVE_BACK``).
        self.given_back: list[_Delivery] = []
        #: Given up to balance the nodes: no more reads; released once nothing is outstanding
        #: and no read that includes it is on its way (its entries would be pending here unseen).
        self.leaving = False
        #: When it started leaving (monotonic seconds): ``hooks.releasable`` may hold it up to ``claim_timeout``.
        self.leaving_since = 0.0
        self.reading = False


class _Delivery:
    __slots__ = ("attempt", "entry_id", "key", "level", "partition", "payload", "ran", "wall")

    def __init__(self, partition: _Partition, entry_id: bytes, fields: dict[bytes, bytes], attempt: int) -> None:
        self.partition = partition
        self.entry_id = entry_id
        self.level, self.wall, self.key, self.payload = _decode_entry(fields[scripts.ENTRY_FIELD])
        self.attempt = attempt
        #: Handed to the engine (a delivery dead-lettered unrun never held its key's turn).
        self.ran = False


class RedisBroker:
    """The Redis side of an engine: pass it as ``MessageParallelizer(handler, config, broker=...)``.

    Example::

        broker = RedisBroker("redis://127.0.0.1:6379/0", namespace="mybot", claim_timeout=30.0)
        async with MessageParallelizer("bot.handlers:handle", config, broker=broker, on_recovered=on_result) as engine:
            accepted = engine.accept({"text": "hi"}, ordering_key="+15550100", dedup_key="wamid.1")
            await accepted.committed       # True once it is in Redis (any node may run it)

    A handler's result reaches ``on_recovered(payload, result_future)`` on the node that runs it.
    ``partitions`` applies only to a namespace used for the first time (it is kept in Redis).
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "sluiceway",
        claim_timeout: float = 30.0,
        partitions: int = DEFAULT_PARTITIONS,
        dedup_window: float = 604800.0,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"broker must be a redis:// (or rediss://, unix://) URL, got {url!r}")
        if not namespace or any(c in namespace for c in " :{}"):
            raise ValueError(f"namespace must be a non-empty name without spaces, ':' or braces, got {namespace!r}")
        if not claim_timeout > 0:
            raise ValueError(f"claim_timeout must be positive seconds, got {claim_timeout!r}")
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ValueError(f"partitions must be an int >= 1, got {partitions!r}")
        self.url = url
        self.namespace = namespace
        self.claim_timeout = claim_timeout
        self.partitions = partitions
        self.dedup_window = dedup_window
        self.node = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.redis = aioredis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0)
        self._accept_script = self.redis.register_script(scripts.ACCEPT)
        self._acquire_script = self.redis.register_script(scripts.ACQUIRE)
        self._renew_script = self.redis.register_script(scripts.RENEW)
        self._release_script = self.redis.register_script(scripts.RELEASE)
        self._give_back_script = self.redis.register_script(scripts.GIVE_BACK)
        self._ack_script = self.redis.register_script(scripts.ACK)
        self._dead_script = self.redis.register_script(scripts.DEAD_LETTER)
        self._heartbeat_script = self.redis.register_script(scripts.HEARTBEAT)
        self._held: dict[int, _Partition] = {}
        self._stream_names: list[bytes] = []
        self._accepts: list[tuple[bytes, bytes, bytes, asyncio.Future[bool]]] = []
        self._accept_task: asyncio.Task[None] | None = None
        self._finish_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._keyless = itertools.count()
        self._stage: Stage | None = None
        self._max_attempts = 1
        self._room = 1
        #: Read and not finished, over every partition (those lost included, until their runs end).
        self.outstanding = 0
        self._reading = False
        #: Set by ``close``: the engine has stopped, so a key's next message stays read and unrun (given back).
        self._closing = False
        self._read_wake = asyncio.Event()
        self.completed = 0
        self.dead_lettered = 0
        #: False from a failed Redis call of the lease or read loop until one succeeds again.
        self.reachable = True
        #: Acks the fencing check refused (the lease had moved on): those messages run again elsewhere.
        self.refused_acks = 0
        #: The application's side of the leases (the reply outbox), or None.
        self.hooks: LeaseHooks | None = None

    @property
    def held(self) -> list[int]:
        """The partitions this node holds now."""
        return sorted(self._held)

    def key(self, *parts: object) -> str:
        return ":".join((self.namespace, *map(str, parts)))

    def stream(self, partition: int) -> str:
        return self.key("p", partition)

    def partition_of(self, key: str) -> int:
        """The partition of ordering key ``key`` (after ``connect``: the count is the namespace's)."""
        return zlib.crc32(key.encode()) % self.partitions

    # -- set-up --------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Fix the partition count (first use) and create each stream's consumer group.

        ``BrokerUnavailable`` if Redis cannot be reached."""
        try:
            await self.redis.hsetnx(self.key("meta"), "partitions", self.partitions)
            stored: Any = await self.redis.hget(self.key("meta"), "partitions")
            self.partitions = int(stored)
            self._stream_names = [self.stream(p).encode() for p in range(self.partitions)]
            for partition in range(self.partitions):
                try:
                    await self.redis.xgroup_create(self.stream(partition), scripts.GROUP, id="0", mkstream=True)
                except ResponseError as error:
                    if "BUSYGROUP" not in str(error):
                        raise
        except RedisError as error:
            raise BrokerUnavailable(f"Redis at {redacted_url(self.url)} cannot be reached: {error}") from error

    async def start(self, stage: Stage, max_attempts: int, room: int) -> None:
        """Start working partitions: ``stage`` hands a message to the local engine, which holds at
        most ``room`` read messages at a time."""
        self._stage = stage
        self._max_attempts = max_attempts
        self._room = room
        self._reading = True
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._lease_loop()), loop.create_task(self._read_loop())]

    async def stop_reading(self) -> None:
        """Read nothing more (what was read still runs and is finished); each partition is given up
        once what was read from it is finished, and this node leaves the live ones at once."""
        self._reading = False
        self._read_wake.set()
        for partition in self._held.values():
            self._leave(partition)
        with contextlib.suppress(RedisError, OSError):  # else its heartbeat goes stale within claim_timeout
            await self.redis.hdel(self.key("nodes"), self.node)

    async def close(self) -> None:
        """Finish what is finished, give up every lease (others reclaim what was read and not run), disconnect."""
        self._reading = False
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Acks retry while Redis is away, but not for ever: what is not acked within claim_timeout
        # runs again on the partition's next holder (at-least-once), and this process may exit.
        unfinished: list[asyncio.Task[None] | None] = [self._finish_task, self._accept_task]
        for sending in unfinished:
            if sending is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(sending), self.claim_timeout)
                except TimeoutError:
                    sending.cancel()
                    await asyncio.gather(sending, return_exceptions=True)
                    _log.warning("Redis unreachable at shutdown: unsent acks and accepts given up")
                except (RedisError, OSError):
                    pass
        try:
            pipe = self.redis.pipeline(transaction=False)
            for partition in self._held.values():
                await self._give_back(partition, pipe)
            await pipe.execute()
            await self.redis.hdel(self.key("nodes"), self.node)
        except RedisError as error:
            _log.warning("leases not given up (they expire within %s s): %s", self.claim_timeout, error)
        self._held.clear()
        await self.redis.aclose()

    # -- accepting -----------------------------------------------------------------------------

    def accept(
        self, payload: bytes, level: int, wall: float, key: str | None, dedup_key: str | None
    ) -> asyncio.Future[bool]:
        """Add one message; resolves to True once Redis has it, False for a ``dedup_key`` seen within
        the window (nothing added), or fails with ``BrokerUnavailable`` (nothing added)."""
        partition = self.partition_of(key) if key is not None else next(self._keyless) % self.partitions
        record = self.key("dedup", dedup_key).encode() if dedup_key is not None else b""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry = _encode((level, wall, key, payload))
        self._accepts.append((self._stream_names[partition], record, entry, future))
        if self._accept_task is None:
            self._accept_task = asyncio.get_running_loop().create_task(self._send_accepts())
        return future

    async def _send_accepts(self) -> None:
        """One script call per batch (in order): accepts made while one is on its way go in the next."""
        ttl = int(self.dedup_window * 1000)
        try:
            while self._accepts:
                batch, self._accepts = self._accepts[:_ACCEPT_CHUNK], self._accepts[_ACCEPT_CHUNK:]
                items = [field for stream, record, entry, _ in batch for field in (stream, record, entry)]
                results: list[Any]
                try:
                    results = await self._accept_script(args=[scripts.frame(items), ttl])
                except (RedisError, OSError) as error:
                    results = [error] * len(batch)
                except asyncio.CancelledError:  # closing while Redis is away: not confirmed, not accepted
                    for *_, future in batch + self._accepts:
                        if not future.done():
                            future.set_exception(BrokerUnavailable("closed before Redis confirmed the message"))
                    self._accepts = []
                    raise
                for (_, _, _, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(
                            BrokerUnavailable(
                                f"Redis did not confirm the message (answer 503: Meta re-delivers): {result}"
                            )
                        )
                    else:
                        future.set_result(result == 1)
        finally:
            self._accept_task = None

    # -- leases --------------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        """Heartbeat, renew, balance: several times per lease, with backoff while Redis is away."""
        tick = min(self.claim_timeout / 4, 1.0)
        backoff = 0.05
        while True:
            try:
                await self._lease_round()
                self.reachable = True
                backoff = 0.05
                await asyncio.sleep(tick)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                self.reachable = False
                _log.warning("Redis unreachable (%s); retrying in %.2f s", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _lease_round(self) -> None:
        ms = int(self.claim_timeout * 1000)
        hooks = self.hooks
        if hooks is not None:
            await hooks.beat()
        live = 1
        if self._reading:  # a draining node is no longer counted: the others take its partitions
            live = await self._heartbeat_script(
                keys=[self.key("nodes")], args=[self.node, json.dumps(self.node_status()), ms]
            )
        held = list(self._held.values())
        if held:
            pipe = self.redis.pipeline(transaction=False)
            for partition in held:
                await self._renew_script(keys=[partition.lease_key], args=[partition.lease, ms], client=pipe)
            for partition, renewed in zip(held, await pipe.execute(), strict=True):
                if not renewed:
                    self._lose(partition, "its lease expired")
            await self._claim_orphans([p for p in held if not p.lost], ms)
            if hooks is not None:
                await hooks.holding(sorted(number for number, p in self._held.items() if not p.lost))
        share = math.ceil(self.partitions / max(1, int(live))) if self._reading else 0
        if len(self._held) < share:
            start = zlib.crc32(self.node.encode()) % self.partitions
            for offset in range(self.partitions):
                number = (start + offset) % self.partitions
                if number in self._held:
                    continue
                token = await self._acquire_script(
                    keys=[self.key("lease", number), self.key("fence", number)], args=[self.node, ms]
                )
                if token:
                    await self._take(number, f"{self.node}:{token}")
                    if len(self._held) >= share:
                        break
        staying = [p for p in self._held.values() if not p.leaving]
        for partition in sorted(staying, key=lambda p: p.outstanding)[: max(0, len(staying) - share)]:
            self._leave(partition)
        for partition in [p for p in self._held.values() if p.leaving and not p.outstanding and not p.reading]:
            waited = time.monotonic() - partition.leaving_since
            if hooks is not None and waited < self.claim_timeout and not await hooks.releasable(partition.number):
                continue
            partition.lost = True
            del self._held[partition.number]
            await self._give_back(partition)

    @staticmethod
    def _leave(partition: _Partition) -> None:
        if not partition.leaving:
            partition.leaving = True
            partition.leaving_since = time.monotonic()

    async def _give_back(self, partition: _Partition, pipe: Any = None) -> None:
        """Release ``partition``'s lease, first giving back what was read and never run, delivery counts
        as they were (a clean hand-over is not a failed delivery). Queued on ``pipe`` when given."""
        unrun = [d for line in partition.lines.values() for d in line] + partition.given_back
        if unrun:
            counts = [field for d in unrun for field in (d.entry_id, d.attempt)]
            args = [partition.lease, scripts.GROUP, self.node, *counts]
            await self._give_back_script(keys=[partition.lease_key, partition.stream], args=args, client=pipe)
        await self._release_script(keys=[partition.lease_key], args=[partition.lease], client=pipe)

    async def _take(self, number: int, lease: str) -> None:
        """Hold partition ``number``: first what its last holder read and did not finish, in stream order."""
        partition = _Partition(number, self.stream(number), self.key("lease", number), lease)
        if self.hooks is not None:
            try:
                await self.hooks.taking(number)
            except BaseException:  # not read, so given up at once rather than left to expire
                with contextlib.suppress(RedisError, OSError):
                    await self._release_script(keys=[partition.lease_key], args=[lease])
                raise
        self._held[number] = partition
        cursor = "0-0"
        while True:
            reply = await self.redis.xautoclaim(partition.stream, scripts.GROUP, self.node, 0, cursor, count=500)
            cursor, entries = reply[0], reply[1]
            entries = [(entry_id, fields) for entry_id, fields in entries if fields]
            if entries:
                counts = await self.redis.xpending_range(
                    partition.stream, scripts.GROUP, entries[0][0], entries[-1][0], len(entries), self.node
                )
                delivered = {row["message_id"]: row["times_delivered"] for row in counts}
                for entry_id, fields in entries:
                    times = int(delivered.get(entry_id, 1))
                    self._deliver(partition, entry_id, fields, times - 1)
            if cursor in (b"0-0", "0-0"):
                break
        if partition.outstanding:
            _log.info("partition %d: %d unfinished messages reclaimed", number, partition.outstanding)
        self._read_wake.set()

    async def _claim_orphans(self, held: list[_Partition], idle_ms: int) -> None:
        """Claim entries pending under another node for ``claim_timeout`` in partitions held here.

        A node whose lease lapsed while it lived (stalled past ``claim_timeout``) may have read
        entries after this node's takeover claim: it will not run them (it finds its lease gone),
        so they are run here. Such an entry may run after a later one of its key (it was read late).
        """
        if not held:
            return
        pipe = self.redis.pipeline(transaction=False)
        for partition in held:
            pipe.xpending_range(partition.stream, scripts.GROUP, "-", "+", 100, idle=idle_ms)
        for partition, rows in zip(held, await pipe.execute(), strict=True):
            orphans = {
                row["message_id"]: row["times_delivered"] for row in rows if row["consumer"] != self.node.encode()
            }
            if not orphans or partition.lost:
                continue
            claimed: Any = await self.redis.xclaim(partition.stream, scripts.GROUP, self.node, idle_ms, list(orphans))
            _log.warning("partition %d: %d entries left by a node that lost its lease", partition.number, len(orphans))
            for entry_id, fields in claimed:
                if fields:
                    self._deliver(partition, entry_id, fields, int(orphans.get(entry_id, 1)))

    def _lose(self, partition: _Partition, why: str) -> None:
        """The lease is gone: drop what was read and not started (the next holder reclaims it)."""
        if partition.lost:
            return
        partition.lost = True
        self._held.pop(partition.number, None)
        unstarted = sum(len(line) for line in partition.lines.values()) + len(partition.acks) + len(partition.dead)
        partition.lines.clear()
        partition.acks.clear()
        partition.dead.clear()
        partition.outstanding -= unstarted
        self.outstanding -= unstarted
        _log.warning("partition %d lost (%s): its unfinished messages go to its next holder", partition.number, why)

    # -- reading -------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = 0.05
        while self._reading:
            readable = [p for p in self._held.values() if not p.leaving and not p.lost]
            room = self._room - self.outstanding
            if not readable or room <= 0:
                self._read_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._read_wake.wait(), 0.1)
                continue
            streams: dict[Any, Any] = {p.stream: ">" for p in readable}
            for partition in readable:
                partition.reading = True
            try:
                reply: Any = await self.redis.xreadgroup(
                    scripts.GROUP,
                    self.node,
                    streams,
                    count=max(1, room // len(readable)),
                    block=_READ_BLOCK_MS,
                )
                self.reachable = True
                backoff = 0.05
            except (RedisError, OSError) as error:
                self.reachable = False
                for partition in readable:
                    partition.reading = False
                if isinstance(error, ResponseError) and "NOGROUP" in str(error):
                    # The streams are gone (a Redis that lost its data, or a FLUSHALL): make them again.
                    with contextlib.suppress(BrokerUnavailable):
                        await self.connect()
                _log.warning("reading from Redis failed (%s); retrying in %.2f s", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            for partition in readable:
                partition.reading = False
            by_stream = {p.stream: p for p in readable}
            for stream, entries in reply or ():
                partition = by_stream[stream.decode() if isinstance(stream, bytes) else stream]
                if partition.lost:  # pending under this node: the next holder reclaims them
                    continue
                for entry_id, fields in entries:
                    self._deliver(partition, entry_id, fields, 0)
            if reply:
                await asyncio.sleep(_READ_LINGER)

    def _deliver(self, partition: _Partition, entry_id: bytes, fields: dict[bytes, bytes], attempt: int) -> None:
        delivery = _Delivery(partition, entry_id, fields, attempt)
        partition.outstanding += 1
        self.outstanding += 1
        if attempt >= self._max_attempts:
            partition.dead.append((delivery, f"delivered {attempt + 1} times: its nodes died while running it"))
            self._finish_soon()
            return
        key = delivery.key
        if key is not None:
            line = partition.lines.get(key)
            if line is not None:
                line.append(delivery)
                return
            partition.lines[key] = deque()
        self._run(delivery)

    def _run(self, delivery: _Delivery) -> None:
        assert self._stage is not None
        delivery.ran = True
        future = self._stage(delivery.payload, delivery.level, delivery.wall, delivery.key, delivery.attempt)
        future.add_done_callback(functools.partial(self._ran, delivery))

    def _ran(self, delivery: _Delivery, future: asyncio.Future[Any]) -> None:
        partition = delivery.partition
        if partition.lost or future.cancelled() or isinstance(future.exception(), EngineNotRunning):
            # Not finished here: it stays pending in Redis for the partition's next holder.
            partition.outstanding -= 1
            self.outstanding -= 1
            if not partition.lost:  # the engine stopped before running it: not a failed delivery
                partition.given_back.append(delivery)
            self._read_wake.set()
            return
        error = future.exception()
        if error is None:
            partition.acks.append(delivery)
        else:
            partition.dead.append((delivery, f"{type(error).__name__}: {error}"))
        self._finish_soon()

    # -- finishing -----------------------------------------------------------------------------

    def _finish_soon(self) -> None:
        if self._finish_task is None:
            self._finish_task = asyncio.get_running_loop().create_task(self._send_finished())

    async def _send_finished(self) -> None:
        """Fenced acks and dead letters of every partition, in one pipelined round trip per batch."""
        backoff = 0.05
        try:
            while True:
                await asyncio.sleep(_ACK_LINGER)
                batch = [(p, p.acks, p.dead) for p in list(self._held.values()) if p.acks or p.dead]
                if not batch:
                    return
                for partition, _, _ in batch:
                    partition.acks, partition.dead = [], []
                if self.hooks is not None:
                    # Covers every result in this batch: each one's replies were handed over before its
                    # delivery was queued for the ack (the application's callback runs first).
                    await self.hooks.before_finish()
                pipe = self.redis.pipeline(transaction=False)
                calls: list[tuple[_Partition, list[_Delivery]]] = []
                for partition, acks, dead in batch:
                    for start in range(0, len(acks), _ACK_CHUNK):
                        chunk = acks[start : start + _ACK_CHUNK]
                        args: list[Any] = [partition.lease, scripts.GROUP, *(d.entry_id for d in chunk)]
                        pipe.evalsha(self._ack_script.sha, 2, partition.lease_key, partition.stream, *args)
                        calls.append((partition, chunk))
                    for delivery, error in dead:
                        pipe.evalsha(
                            self._dead_script.sha,
                            3,
                            *(partition.lease_key, partition.stream, self.key("dead")),
                            *(partition.lease, scripts.GROUP, delivery.entry_id, *self._letter(delivery, error)),
                        )
                        calls.append((partition, [delivery]))
                        self.dead_lettered += 1
                try:
                    results = await pipe.execute()
                    backoff = 0.05
                except NoScriptError:  # Redis restarted (its script cache is empty): nothing ran
                    for partition, acks, dead in batch:
                        partition.acks[:0] = acks
                        partition.dead[:0] = dead
                    await self._load_scripts()
                    continue
                except (RedisError, OSError) as error:
                    _log.warning("acks not sent (%s); retrying in %.2f s", error, backoff)
                    for partition, acks, dead in batch:  # again, unless the lease is lost meanwhile
                        partition.acks[:0] = acks
                        partition.dead[:0] = dead
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    continue
                for (partition, deliveries), result in zip(calls, results, strict=True):
                    if result == -1:
                        self.refused_acks += len(deliveries)
                        partition.outstanding -= len(deliveries)
                        self.outstanding -= len(deliveries)
                        self._lose(partition, "a fenced ack was refused")
                        continue
                    for delivery in deliveries:
                        self._finished(delivery)
        finally:
            self._finish_task = None

    def _finished(self, delivery: _Delivery) -> None:
        """Acked: the next message of its key may run."""
        partition = delivery.partition
        partition.outstanding -= 1
        self.outstanding -= 1
        self.completed += 1
        self._read_wake.set()
        if delivery.key is None or partition.lost or not delivery.ran or self._closing:
            return
        line = partition.lines.get(delivery.key)
        if line is None:
            return
        if line:
            self._run(line.popleft())
        else:
            del partition.lines[delivery.key]

    def _letter(self, delivery: _Delivery, error: str) -> list[Any]:
        entry = _encode((delivery.level, delivery.wall, delivery.key, delivery.payload))
        return ["m", entry, "partition", delivery.partition.number, "error", error, "dead_at", repr(time.time())]

    async def _load_scripts(self) -> None:
        for script in (self._ack_script, self._dead_script):
            await self.redis.script_load(script.script)

    # -- status --------------------------------------------------------------------------------

    def node_status(self) -> dict[str, Any]:
        """What this node's heartbeat carries (``cluster_status`` lists it)."""
        return {
            "node": self.node,
            "partitions": sorted(self._held),
            "outstanding": self.outstanding,
            "completed": self.completed,
            "dead_lettered": self.dead_lettered,
            "refused_acks": self.refused_acks,
        }
