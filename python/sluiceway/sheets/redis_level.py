"""The Sheets cache's second level in Redis, shared by every process of every node, and its invalidation.

Each process keeps its :class:`~sluiceway.sheets.cache.SheetsCache` (the ByteLRU, level 1).
:class:`RedisSheetsLevel` adds, under it:

* **level 2**: a range missing locally is looked up in Redis before the Sheets API is
  called, and what the API returns is stored there (encoded and compressed as locally).
  Every entry carries the *versions* it was fetched under: one counter per spreadsheet
  and one for tags. A write bumps them, so an entry fetched before the write (even one
  stored after it) never matches the versions again and is never served.
* **invalidation** (an :class:`~sluiceway.sheets.invalidation.InvalidationChannel`): a write
  is published on a pub/sub channel and ``publish`` returns only once every subscribed
  process has applied it to its level 1 (each acknowledges on a list the publisher waits
  on, up to ``ack_timeout``). So a write through any node is not followed by a stale read
  on another.
* **after a pub/sub disconnect** the process cannot hear writes: its level 1 is flushed,
  and until it has subscribed again reads bypass level 1 (:attr:`local_ok` is false);
  level 2 stays correct throughout because it is checked against the versions.

Level 2 drops more than level 1 on a write: a range write bumps its spreadsheet's version
(every range of that spreadsheet misses once), a tag invalidation bumps the tag version
(all of level 2 misses once). When unsure, drop more.

Example (inside each worker, e.g. in the engine's ``worker_setup`` hook)::

    level = RedisSheetsLevel(Redis.from_url(url), namespace="bot")
    await level.start()
    cache = SheetsCache(config, invalidation=level, shared=level)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import RedisError

from sluiceway.sheets.codec import ValueCodec
from sluiceway.sheets.invalidation import Apply, Invalidation

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger("sluiceway.sheets")

#: Seconds ``publish`` waits for every subscriber's acknowledgement before it gives up on the slow ones.
DEFAULT_ACK_TIMEOUT = 2.0
#: Seconds an acknowledgement list lives (the publisher reads it well before).
_ACK_TTL = 30
#: Seconds between checks of the subscription for closing.
_POLL = 0.1
#: Reconnect delays (seconds) of the subscriber, doubled from the first to the last.
RECONNECT_FIRST, RECONNECT_LAST = 0.05, 2.0

_message_encoder = msgspec.msgpack.Encoder()
_message_decoder = msgspec.msgpack.Decoder(tuple[str, Invalidation])


class RedisSheetsLevel:
    """Level 2 of the Sheets cache and its cross-node invalidation channel, in Redis under ``namespace``.

    ``redis`` serves level 2 and publishing; the subscription opens its own connection from the
    same pool settings, named ``name`` (``CLIENT LIST`` shows it). Call :meth:`start` before use
    and :meth:`aclose` at the end; until started, reads bypass level 1.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str = "sluiceway",
        compression_threshold_bytes: int = 1024,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        name: str | None = None,
    ) -> None:
        if not namespace:
            raise ValueError("namespace must be a non-empty string")
        if not ack_timeout > 0:
            raise ValueError(f"ack_timeout must be positive, got {ack_timeout!r}")
        self._redis = redis
        self._prefix = f"{namespace}:sheets"
        self._channel = f"{self._prefix}:invalidate"
        self._codec = ValueCodec(compression_threshold_bytes)
        self._ack_timeout = ack_timeout
        self.name = name or f"{namespace}-sheets-{uuid.uuid4().hex[:12]}"
        self._subscribers: list[Apply] = []
        self._flushes: list[Callable[[], object]] = []
        self._listener: asyncio.Task[None] | None = None
        self._closing = False
        self._subscribed = asyncio.Event()
        #: Whether level 1 may serve reads: true only while subscribed (so every write is heard).
        self.local_ok = False
        #: Times level 1 was flushed because the subscription was lost.
        self.flushes = 0
        self.hits = self.misses = self.stores = self.errors = 0

    # --- lifecycle -------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Subscribe (and keep re-subscribing after a disconnect); returns once subscribed."""
        if self._listener is None:
            self._closing = False
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="sluiceway-sheets-redis")
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def aclose(self) -> None:
        """Unsubscribe (within about :data:`_POLL` seconds); reads bypass level 1 from now on."""
        self.local_ok = False
        if self._listener is not None:
            self._closing = True
            try:
                await asyncio.wait_for(asyncio.shield(self._listener), _POLL + 5.0)
            except asyncio.TimeoutError:
                self._listener.cancel()
            self._listener = None

    async def __aenter__(self) -> RedisSheetsLevel:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- the invalidation channel ----------------------------------------------------

    def subscribe(self, apply: Apply) -> None:
        self._subscribers.append(apply)

    def on_flush(self, flush: Callable[[], object]) -> None:
        """Call ``flush`` when level 1 must be emptied (the subscription was lost)."""
        self._flushes.append(flush)

    async def publish(self, invalidation: Invalidation) -> None:
        """Bump the versions, then tell every subscribed process; returns once all have applied it."""
        pipe = self._redis.pipeline(transaction=True)
        if invalidation.tag is not None:
            pipe.incr(self._tag_version_key())
        if invalidation.spreadsheet_id is not None:
            pipe.incr(self._version_key(invalidation.spreadsheet_id))
        await pipe.execute()
        message_id = uuid.uuid4().hex
        listeners = int(await self._redis.publish(self._channel, _message_encoder.encode((message_id, invalidation))))
        ack_key = f"{self._prefix}:ack:{message_id}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ack_timeout
        acked = 0
        while acked < listeners:
            left = deadline - loop.time()
            if left <= 0:
                log.warning(
                    "sheets invalidation: %d of %d processes did not acknowledge within %.1f s",
                    listeners - acked,
                    listeners,
                    self._ack_timeout,
                )
                return
            if await self._redis.blpop([ack_key], timeout=max(left, 0.01)) is not None:
                acked += 1

    async def _listen(self) -> None:
        delay = RECONNECT_FIRST
        while not self._closing:
            client: Redis | None = None
            pubsub: PubSub | None = None
            try:
                client = self._subscriber_client()
                pubsub = client.pubsub()
                await pubsub.subscribe(self._channel)
                # Confirmed subscribed: from here every write is heard, so level 1 may serve again.
                await self._wait_confirmation(pubsub)
                self._flush()  # anything level 1 kept while deaf (nothing, as reads bypassed it) goes
                self.local_ok = True
                self._subscribed.set()
                delay = RECONNECT_FIRST
                # Polled rather than cancelled: redis-py's pub/sub read can swallow a cancellation.
                while not self._closing:
                    message = await pubsub.get_message(timeout=_POLL)
                    if message is not None and message.get("type") == "message":
                        await self._deliver(message["data"])
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.local_ok:
                    log.warning("sheets invalidations unreachable (%s): level 1 flushed, reads bypass it", exc)
                self.local_ok = False
                self._subscribed.clear()
                self._flush()
                await asyncio.sleep(delay)
                delay = min(RECONNECT_LAST, delay * 2)
            finally:
                self.local_ok = False
                with contextlib.suppress(Exception):
                    if pubsub is not None:
                        await pubsub.aclose()
                    if client is not None:
                        await client.aclose(close_connection_pool=True)

    async def _wait_confirmation(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "subscribe":
                return

    def _subscriber_client(self) -> Redis:
        from redis.asyncio import ConnectionPool, Redis

        kwargs = dict(self._redis.connection_pool.connection_kwargs)
        kwargs["client_name"] = self.name
        pool = ConnectionPool(connection_class=self._redis.connection_pool.connection_class, **kwargs)
        return Redis(connection_pool=pool)

    async def _deliver(self, data: bytes) -> None:
        message_id, invalidation = _message_decoder.decode(data)
        for apply in self._subscribers:
            try:
                apply(invalidation)
            except Exception:
                log.exception("applying a sheets invalidation failed")
        ack_key = f"{self._prefix}:ack:{message_id}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.rpush(ack_key, b"1")
        pipe.expire(ack_key, _ACK_TTL)
        await pipe.execute()

    def _flush(self) -> None:
        self.flushes += 1
        for flush in self._flushes:
            flush()

    # --- level 2 ---------------------------------------------------------------------

    async def fetch(self, spreadsheet_id: str, cell_range: str, fetch: Callable[[], Awaitable[Any]], ttl: float) -> Any:
        """``cell_range``'s value from level 2 if it is there and current, else ``fetch()`` stored there."""
        entry_key = self._entry_key(spreadsheet_id, cell_range)
        version_key, tag_key = self._version_key(spreadsheet_id), self._tag_version_key()
        try:
            replies: list[Any] = await self._redis.mget([version_key, tag_key, entry_key])
        except RedisError as exc:  # level 2 is an optimisation: without Redis, ask the API
            self.errors += 1
            log.warning("sheets level 2 unreachable (%s): fetching from the API", exc)
            return await fetch()
        version, tag_version, entry = (r if r is None else bytes(r) for r in replies)
        versions = b"%s %s " % (version or b"0", tag_version or b"0")
        if entry is not None and entry.startswith(versions):
            self.hits += 1
            return self._codec.decode(entry[len(versions) :])
        self.misses += 1
        value = await fetch()
        # Stored under the versions read before the fetch: if a write bumped them meanwhile, the entry
        # never matches and is never served.
        data = self._codec.encode(value)
        try:
            await self._redis.set(entry_key, versions + data, px=max(1, round(ttl * 1000)))
        except RedisError as exc:
            self.errors += 1
            log.warning("sheets level 2 unreachable (%s): %s not shared", exc, cell_range)
            return value
        self.stores += 1
        return value

    def _version_key(self, spreadsheet_id: str) -> str:
        return f"{self._prefix}:version:{spreadsheet_id}"

    def _tag_version_key(self) -> str:
        return f"{self._prefix}:version-tags"

    def _entry_key(self, spreadsheet_id: str, cell_range: str) -> str:
        return f"{self._prefix}:entry:{spreadsheet_id}\x1f{cell_range}"

    def stats(self) -> dict[str, int]:
        """Level 2 hits, misses and entries stored, Redis errors (the API was asked directly), level 1 flushes."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "stores": self.stores,
            "errors": self.errors,
            "flushes": self.flushes,
        }
