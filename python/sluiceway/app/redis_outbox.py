"""The reply outbox and the sender's dead letters in Redis: the store :class:`~sluiceway.app.outbox.DurableOutbox`
uses when ``redis_url`` is set, instead of the SQLite journal's outbox.

The same steps as the journal's: a reply is committed (``pending``) before the sender gets it,
marked ``sending`` (committed before the request is written), ``sent`` with its wamid, and
finished by a status webhook for that wamid; a failed send moves to the dead letters. A
restart of the node (same ``node`` name) sends its ``pending`` replies once and re-sends its
``sending`` ones, counting those uncertain re-sends.

Every operation is one Lua script, so each is atomic; they run in submission order (the
outbox relies on that for per-recipient order) and those queued together go in one
pipeline, one round trip. Keys, under ``{namespace}:outbox``:

* ``seq``: the last reply id (ids are unique across nodes);
* ``reply:{id}``: a hash per reply (recipient, body, state, wamid...); a sent reply's hash
  lives ``sent_ttl`` seconds for its status to arrive, then expires;
* ``unsent:{node}``: the node's replies not yet sent, a sorted set by id;
* ``wamid:{wamid}``: a sent reply's id, for the status webhook;
* ``dead``: the dead letters (replies the sender gave up on), by id, from every node;
* ``uncertain_resends``: a counter.

Redis must persist (AOF) and must not evict (``maxmemory-policy noeviction``): the runtime
checks both at start. The scripts touch keys they derive from ids, so this runs on one Redis
(or a primary with replicas), not on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sluiceway.journal import OutboxItem, SenderDeadLetter

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

logger = logging.getLogger("sluiceway.app")

#: Seconds a sent reply's record waits for its status webhook (then it expires).
DEFAULT_SENT_TTL = 7 * 24 * 3600.0
#: Operations sent in one pipeline at most.
MAX_PIPELINE = 256

_FIELDS = "'recipient', 'body', 'inbound', 'state', 'wamid', 'resends', 'created_at'"

# KEYS: [seq, unsent]; ARGV: [prefix, recipient, body, inbound ('' = none), now] -> id
_ADD = """
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', ARGV[1] .. 'reply:' .. id, 'recipient', ARGV[2], 'body', ARGV[3], 'inbound', ARGV[4],
  'state', 'pending', 'resends', 0, 'created_at', ARGV[5])
redis.call('ZADD', KEYS[2], id, id)
return id
"""
# KEYS: [reply, uncertain_resends]; ARGV: [id, now] -> 1 if it was already sending (an uncertain re-send)
_SENDING = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return redis.error_reply('no outbox reply has id ' .. ARGV[1]) end
if state == 'sent' then return redis.error_reply('outbox reply ' .. ARGV[1] .. ' was already sent') end
local again = 0
if state == 'sending' then
  redis.call('HINCRBY', KEYS[1], 'resends', 1)
  redis.call('INCR', KEYS[2])
  again = 1
end
redis.call('HSET', KEYS[1], 'state', 'sending', 'updated_at', ARGV[2])
return again
"""
# KEYS: [reply, unsent, wamid]; ARGV: [id, wamid, now, ttl_ms]
_SENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('no outbox reply has id ' .. ARGV[1]) end
redis.call('HSET', KEYS[1], 'state', 'sent', 'wamid', ARGV[2], 'updated_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[4])
return 1
"""
# KEYS: [wamid]; ARGV: [prefix] -> 1 if it finished a reply
_STATUS = """
local id = redis.call('GET', KEYS[1])
if not id then return 0 end
redis.call('DEL', KEYS[1], ARGV[1] .. 'reply:' .. id)
return 1
"""
# KEYS: [sorted set of ids]; ARGV: [prefix] -> [id, fields, id, fields, ...] in id order
_LIST = f"""
local out = {{}}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HMGET', ARGV[1] .. 'reply:' .. id, {_FIELDS},
    'attempts', 'reason', 'error', 'failed_at')
end
return out
"""
# KEYS: [reply, unsent, dead]; ARGV: [id, reason, error, attempts, now] -> the dead letter's id
_FAIL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('no outbox reply has id ' .. ARGV[1]) end
redis.call('HSET', KEYS[1], 'state', 'failed', 'reason', ARGV[2], 'error', ARGV[3], 'attempts', ARGV[4],
  'failed_at', ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
return tonumber(ARGV[1])
"""
# KEYS: [dead, unsent]; ARGV: [prefix, now, ids...] (no ids = all) -> like _LIST, of the replayed
_REPLAY = f"""
local ids = {{}}
if #ARGV > 2 then
  for i = 3, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then ids[#ids + 1] = ARGV[i] end
  end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, -1)
end
local out = {{}}
for _, id in ipairs(ids) do
  local key = ARGV[1] .. 'reply:' .. id
  redis.call('HSET', key, 'state', 'pending', 'resends', 0, 'updated_at', ARGV[2])
  redis.call('HDEL', key, 'reason', 'error', 'attempts', 'failed_at')
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], id, id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HMGET', key, {_FIELDS}, 'attempts', 'reason', 'error', 'failed_at')
end
return out
"""
# KEYS: [dead]; ARGV: [prefix, ids...] (no ids = all) -> how many
_PURGE = """
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then ids[#ids + 1] = ARGV[i] end
  end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, -1)
end
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. 'reply:' .. id)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
"""


class RedisOutboxStore:
    """The outbox operations of :class:`~sluiceway.journal.AsyncJournal`, kept in Redis under ``namespace``.

    ``node`` names this node's unsent replies: a node restarted under the same name sends
    what it left. Futures resolve in submission order. ``close`` waits for what is queued.

    Example::

        store = RedisOutboxStore(Redis.from_url(url), namespace="bot", node="node-1")
        outbox = DurableOutbox()
        ...
        outbox.open(store)
    """

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str = "sluiceway",
        node: str = "node",
        sent_ttl: float = DEFAULT_SENT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not namespace or not node:
            raise ValueError("namespace and node must be non-empty strings")
        if not sent_ttl > 0:
            raise ValueError(f"sent_ttl must be positive, got {sent_ttl!r}")
        self._redis = redis
        self._clock = clock
        self._prefix = f"{namespace}:outbox:"
        self._unsent = f"{self._prefix}unsent:{node}"
        self._dead = f"{self._prefix}dead"
        self._sent_ttl_ms = round(sent_ttl * 1000)
        self._scripts = {
            name: redis.register_script(source)
            for name, source in (
                ("add", _ADD),
                ("sending", _SENDING),
                ("sent", _SENT),
                ("status", _STATUS),
                ("list", _LIST),
                ("fail", _FAIL),
                ("replay", _REPLAY),
                ("purge", _PURGE),
            )
        }
        self._queue: list[tuple[str, list[str], list[Any], Callable[[Any], Any], asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None
        #: Pipelines sent, and operations in them.
        self.round_trips = 0
        self.operations = 0

    # --- the outbox operations (as AsyncJournal's) ---

    def outbox_add(
        self, recipient: str, body: bytes, inbound_wamid: str | None = None, inbound_seq: int | None = None
    ) -> asyncio.Future[int]:
        args = [self._prefix, recipient, body, inbound_wamid or "", self._clock()]
        return self._submit("add", [f"{self._prefix}seq", self._unsent], args, int)

    def outbox_sending(self, id: int) -> asyncio.Future[None]:
        keys = [self._reply(id), f"{self._prefix}uncertain_resends"]
        return self._submit("sending", keys, [id, self._clock()], _none)

    def outbox_sent(self, id: int, wamid: str) -> asyncio.Future[None]:
        keys = [self._reply(id), self._unsent, f"{self._prefix}wamid:{wamid}"]
        return self._submit("sent", keys, [id, wamid, self._clock(), self._sent_ttl_ms], _none)

    def outbox_status(self, wamid: str) -> asyncio.Future[bool]:
        return self._submit("status", [f"{self._prefix}wamid:{wamid}"], [self._prefix], bool)

    def outbox_unsent(self) -> asyncio.Future[list[OutboxItem]]:
        return self._submit("list", [self._unsent], [self._prefix], _outbox_items)

    def outbox_fail(self, id: int, reason: str, error: str = "", attempts: int = 0) -> asyncio.Future[int]:
        keys = [self._reply(id), self._unsent, self._dead]
        return self._submit("fail", keys, [id, reason, error, attempts, self._clock()], int)

    def sender_dead_letters(self, limit: int | None = None) -> asyncio.Future[list[SenderDeadLetter]]:
        def letters(reply: list[Any]) -> list[SenderDeadLetter]:
            found = _dead_letters(reply)
            return found if limit is None else found[:limit]

        return self._submit("list", [self._dead], [self._prefix], letters)

    def replay_sender_dead_letters(self, ids: Sequence[int] | None = None) -> asyncio.Future[list[OutboxItem]]:
        args = [self._prefix, self._clock(), *(ids or ())]
        if ids is not None and not ids:
            return self._done([])
        return self._submit("replay", [self._dead, self._unsent], args, _outbox_items)

    def purge_sender_dead_letters(self, ids: Sequence[int] | None = None) -> asyncio.Future[int]:
        if ids is not None and not ids:
            return self._done(0)
        return self._submit("purge", [self._dead], [self._prefix, *(ids or ())], int)

    async def uncertain_resends(self) -> int:
        """Uncertain re-sends counted by every node so far."""
        return int(await self._redis.get(f"{self._prefix}uncertain_resends") or 0)

    async def close(self) -> None:
        """Wait for every queued operation."""
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)

    # --- submission order and pipelining ---

    def _reply(self, id: int) -> str:
        return f"{self._prefix}reply:{id}"

    @staticmethod
    def _done(value: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(value)
        return future

    def _submit(
        self, script: str, keys: list[str], args: list[Any], convert: Callable[[Any], Any]
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, convert, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="sluiceway-redis-outbox")
        return future

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_PIPELINE], self._queue[MAX_PIPELINE:]
            pipe = self._redis.pipeline(transaction=False)
            for script, keys, args, _, _ in batch:
                scripted: AsyncScript = self._scripts[script]
                await scripted(keys=keys, args=args, client=pipe)
            self.round_trips += 1
            self.operations += len(batch)
            try:
                results = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # the whole pipeline failed (e.g. Redis unreachable)
                results = [exc] * len(batch)
            for (_, _, _, convert, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(convert(result))


def _none(_: Any) -> None:
    return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _rows(reply: list[Any]) -> list[tuple[int, list[Any]]]:
    return [(int(reply[i]), reply[i + 1]) for i in range(0, len(reply), 2)]


def _outbox_items(reply: list[Any]) -> list[OutboxItem]:
    items = []
    for id, (recipient, body, inbound, state, wamid, resends, created_at, *_) in _rows(reply):
        items.append(
            OutboxItem(
                id=id,
                recipient=_text(recipient),
                body=bytes(body),
                inbound_wamid=_text(inbound) or None,
                inbound_seq=None,
                state=_text(state),  # type: ignore[arg-type]
                sent_wamid=None if wamid is None else _text(wamid),
                resends=int(resends or 0),
                created_at=float(created_at or 0),
            )
        )
    return items


def _dead_letters(reply: list[Any]) -> list[SenderDeadLetter]:
    letters = []
    for id, (recipient, body, inbound, _, _, _, _, attempts, reason, error, failed_at) in _rows(reply):
        letters.append(
            SenderDeadLetter(
                id=id,
                recipient=_text(recipient),
                body=bytes(body),
                inbound_wamid=_text(inbound) or None,
                inbound_seq=None,
                attempts=int(attempts or 0),
                reason=_text(reason or b""),
                error=_text(error or b""),
                failed_at=float(failed_at or 0),
            )
        )
    return letters
