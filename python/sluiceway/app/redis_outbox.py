"""The reply outbox and the sender's dead letters in Redis: the store :class:`~sluiceway.app.outbox.DurableOutbox`
uses when ``redis_url`` is set, instead of the SQLite journal's outbox.

The same steps as the journal's: a reply is committed (``pending``) before the sender gets it,
marked ``sending`` (committed before the request is written), ``sent`` with its wamid, and
finished by a status webhook for that wamid; a failed send moves to the dead letters. A
restart of the node (same ``node`` name) sends its ``pending`` replies once and re-sends its
``sending`` ones, counting those uncertain re-sends.

A node that dies for good does not strand its replies: each node beats (:meth:`RedisOutboxStore.beat`),
and the holder of a partition adopts the unsent replies kept in that partition by nodes whose beat
is ``claim_timeout`` old (:meth:`RedisOutboxStore.adopt`, one script), then sends them as a restart
would. :class:`OutboxLeases` ties this to the engine broker's leases (its ``hooks``): a node beats
at the start of each lease round, before renewing any lease, so a node whose lease has expired is
already dead to ``adopt``; the new holder of a partition adopts its replies before reading any of
its messages, so they reach its sender before its own replies to those recipients' later messages.

Every operation is one Lua script, so each is atomic; they run in submission order (the
outbox relies on that for per-recipient order) and those queued together go in one
pipeline, one round trip. Keys, under ``{namespace}:outbox``:

* ``seq``: the last reply id (ids are unique across nodes);
* ``reply:{id}``: a hash per reply (recipient, body, state, wamid, owner node, partition...); a
  sent reply's hash lives ``sent_ttl`` seconds for its status to arrive, then expires;
* ``unsent:{node}:{partition}``: the node's replies not yet sent in that partition, a sorted set by id;
* ``nodes``: each node's last beat (ms on Redis's clock; 0: stopped);
* ``wamid:{wamid}``: a sent reply's id, for the status webhook;
* ``dead``: the dead letters (replies the sender gave up on), by id, from every node;
* ``uncertain_resends``: a counter.

Just over 500 lines because half of it is the Lua of the scripts, kept beside the calls that
depend on their arguments and answers.

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

    from sluiceway.app.outbox import DurableOutbox

logger = logging.getLogger("sluiceway.app")

#: Seconds a sent reply's record waits for its status webhook (then it expires).
DEFAULT_SENT_TTL = 7 * 24 * 3600.0
#: Operations sent in one pipeline at most.
MAX_PIPELINE = 256

_FIELDS = "'recipient', 'body', 'inbound', 'state', 'wamid', 'resends', 'created_at'"
#: Lua: the redis clock in ms, and ``rows(prefix, ids)``: [id, fields, id, fields, ...] for the ids in order.
_COMMON = f"""
local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function rows(prefix, ids)
  local out = {{}}
  for _, id in ipairs(ids) do
    out[#out + 1] = id
    out[#out + 1] = redis.call('HMGET', prefix .. 'reply:' .. id, {_FIELDS}, 'attempts', 'reason', 'error', 'failed_at')
  end
  return out
end
"""

# KEYS: [seq]; ARGV: [prefix, recipient, body, inbound ('' = none), now, node, partition] -> id
_ADD = """
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', ARGV[1] .. 'reply:' .. id, 'recipient', ARGV[2], 'body', ARGV[3], 'inbound', ARGV[4],
  'state', 'pending', 'resends', 0, 'created_at', ARGV[5], 'node', ARGV[6], 'partition', ARGV[7])
redis.call('ZADD', ARGV[1] .. 'unsent:' .. ARGV[6] .. ':' .. ARGV[7], id, id)
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
# The unsent set a reply is in: its owner's (an adopter changes the owner), for its partition.
_UNSENT_OF = """
local function unsent_of(prefix, reply)
  local owner = redis.call('HMGET', reply, 'node', 'partition')
  return prefix .. 'unsent:' .. owner[1] .. ':' .. owner[2]
end
"""
# KEYS: [reply, wamid]; ARGV: [id, wamid, now, ttl_ms, prefix]
_SENT = f"""{_UNSENT_OF}
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('no outbox reply has id ' .. ARGV[1]) end
redis.call('ZREM', unsent_of(ARGV[5], KEYS[1]), ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'sent', 'wamid', ARGV[2], 'updated_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
return 1
"""
# KEYS: [wamid]; ARGV: [prefix] -> 1 if it finished a reply
_STATUS = """
local id = redis.call('GET', KEYS[1])
if not id then return 0 end
redis.call('DEL', KEYS[1], ARGV[1] .. 'reply:' .. id)
return 1
"""
# KEYS: [sorted set of ids]; ARGV: [prefix] -> rows in id order
_LIST = f"""{_COMMON}
return rows(ARGV[1], redis.call('ZRANGE', KEYS[1], 0, -1))
"""
# This node's unsent replies, as it starts: its beat is set in the same step, so no adopter can take
# them once they are listed. KEYS: [nodes]; ARGV: [prefix, node, partitions] -> rows in id order
_UNSENT = f"""{_COMMON}
redis.call('HSET', KEYS[1], ARGV[2], clock_ms())
local ids = {{}}
for p = 0, tonumber(ARGV[3]) - 1 do
  for _, id in ipairs(redis.call('ZRANGE', ARGV[1] .. 'unsent:' .. ARGV[2] .. ':' .. p, 0, -1)) do
    ids[#ids + 1] = tonumber(id)
  end
end
table.sort(ids)
return rows(ARGV[1], ids)
"""
# KEYS: [nodes]; ARGV: [node, ms or '' for Redis's clock now]
_BEAT = f"""{_COMMON}
local at = ARGV[2]
if at == '' then at = clock_ms() end
redis.call('HSET', KEYS[1], ARGV[1], at)
return 1
"""
# Move the unsent replies, in the given partitions, of every node whose beat is at least stale_ms old
# into this node's sets; a stale node with nothing left anywhere is forgotten. One script: two
# adopters never both take a reply. KEYS: [nodes]; ARGV: [prefix, node, stale_ms, partitions, p...]
# -> rows of the adopted replies, in id order
_ADOPT = f"""{_COMMON}
local prefix, me, now = ARGV[1], ARGV[2], clock_ms()
local all = redis.call('HGETALL', KEYS[1])
local ids = {{}}
for i = 1, #all, 2 do
  local node = all[i]
  if node ~= me and now - tonumber(all[i + 1]) >= tonumber(ARGV[3]) then
    for j = 5, #ARGV do
      local from = prefix .. 'unsent:' .. node .. ':' .. ARGV[j]
      local moved = redis.call('ZRANGE', from, 0, -1)
      if #moved > 0 then
        local to = prefix .. 'unsent:' .. me .. ':' .. ARGV[j]
        for _, id in ipairs(moved) do
          redis.call('ZADD', to, id, id)
          redis.call('HSET', prefix .. 'reply:' .. id, 'node', me)
          ids[#ids + 1] = tonumber(id)
        end
        redis.call('DEL', from)
      end
    end
    local left = 0
    for p = 0, tonumber(ARGV[4]) - 1 do left = left + redis.call('ZCARD', prefix .. 'unsent:' .. node .. ':' .. p) end
    if left == 0 then redis.call('HDEL', KEYS[1], node) end
  end
end
table.sort(ids)
return rows(prefix, ids)
"""
# KEYS: [reply, dead]; ARGV: [id, reason, error, attempts, now, prefix] -> the dead letter's id
_FAIL = f"""{_UNSENT_OF}
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('no outbox reply has id ' .. ARGV[1]) end
redis.call('ZREM', unsent_of(ARGV[6], KEYS[1]), ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'failed', 'reason', ARGV[2], 'error', ARGV[3], 'attempts', ARGV[4],
  'failed_at', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
return tonumber(ARGV[1])
"""
# Back into ``node``'s unsent sets (each reply in its partition's); ``node`` is registered with beat 0
# if it has never beaten (the offline replay's node), so the partitions' holders adopt them.
# KEYS: [dead, nodes]; ARGV: [prefix, now, node, ids...] (no ids = all) -> rows of the replayed
_REPLAY = f"""{_COMMON}
local prefix, node = ARGV[1], ARGV[3]
local ids = {{}}
if #ARGV > 3 then
  for i = 4, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then ids[#ids + 1] = ARGV[i] end
  end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, -1)
end
redis.call('HSETNX', KEYS[2], node, 0)
for _, id in ipairs(ids) do
  local key = prefix .. 'reply:' .. id
  local partition = redis.call('HGET', key, 'partition') or '0'
  redis.call('HSET', key, 'state', 'pending', 'resends', 0, 'updated_at', ARGV[2], 'node', node)
  redis.call('HDEL', key, 'reason', 'error', 'attempts', 'failed_at')
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', prefix .. 'unsent:' .. node .. ':' .. partition, id, id)
end
return rows(prefix, ids)
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
    what it left. Each reply is kept in its partition (``partition_of(recipient)``, one of
    ``partitions``; all in partition 0 by default), so that the holder of a dead node's partition
    can take that partition's replies over (:meth:`adopt`) before it reads the partition's next
    messages. A node is dead to ``adopt`` once its last :meth:`beat` (or the start's
    :meth:`outbox_unsent`) is ``claim_timeout`` seconds old on Redis's clock.
    Futures resolve in submission order. ``close`` waits for what is queued.

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
        partitions: int = 1,
        partition_of: Callable[[str], int] | None = None,
        claim_timeout: float = 30.0,
        sent_ttl: float = DEFAULT_SENT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not namespace or not node:
            raise ValueError("namespace and node must be non-empty strings")
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ValueError(f"partitions must be an int >= 1, got {partitions!r}")
        if not sent_ttl > 0 or not claim_timeout > 0:
            raise ValueError(f"sent_ttl and claim_timeout must be positive, got {sent_ttl!r} and {claim_timeout!r}")
        self._redis = redis
        self._clock = clock
        self.node = node
        self.partitions = partitions
        self._partition_of = partition_of
        self._stale_ms = round(claim_timeout * 1000)
        self._prefix = f"{namespace}:outbox:"
        self._nodes = f"{self._prefix}nodes"
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
                ("unsent", _UNSENT),
                ("beat", _BEAT),
                ("adopt", _ADOPT),
                ("count", "return redis.call('ZCARD', KEYS[1])"),
                ("fail", _FAIL),
                ("replay", _REPLAY),
                ("purge", _PURGE),
            )
        }
        self._queue: list[tuple[str, list[str], list[Any], Callable[[Any], Any], asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None
        #: The futures of the pipeline on its way (for ``flush``).
        self._in_flight: list[asyncio.Future[Any]] = []
        #: Pipelines sent, and operations in them.
        self.round_trips = 0
        self.operations = 0

    # --- the outbox operations (as AsyncJournal's) ---

    def outbox_add(
        self, recipient: str, body: bytes, inbound_wamid: str | None = None, inbound_seq: int | None = None
    ) -> asyncio.Future[int]:
        partition = self._partition_of(recipient) if self._partition_of is not None else 0
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition_of({recipient!r}) gave {partition}, not one of {self.partitions} partitions")
        args = [self._prefix, recipient, body, inbound_wamid or "", self._clock(), self.node, partition]
        return self._submit("add", [f"{self._prefix}seq"], args, int)

    def outbox_sending(self, id: int) -> asyncio.Future[None]:
        keys = [self._reply(id), f"{self._prefix}uncertain_resends"]
        return self._submit("sending", keys, [id, self._clock()], _none)

    def outbox_sent(self, id: int, wamid: str) -> asyncio.Future[None]:
        keys = [self._reply(id), f"{self._prefix}wamid:{wamid}"]
        return self._submit("sent", keys, [id, wamid, self._clock(), self._sent_ttl_ms, self._prefix], _none)

    def outbox_status(self, wamid: str) -> asyncio.Future[bool]:
        return self._submit("status", [f"{self._prefix}wamid:{wamid}"], [self._prefix], bool)

    def outbox_unsent(self) -> asyncio.Future[list[OutboxItem]]:
        """This node's unsent replies (what its last run left), in id order; beats in the same step."""
        return self._submit("unsent", [self._nodes], [self._prefix, self.node, self.partitions], _outbox_items)

    def outbox_fail(self, id: int, reason: str, error: str = "", attempts: int = 0) -> asyncio.Future[int]:
        keys = [self._reply(id), self._dead]
        return self._submit("fail", keys, [id, reason, error, attempts, self._clock(), self._prefix], int)

    # --- liveness and adoption ---

    def beat(self) -> asyncio.Future[None]:
        """Record that this node lives (on Redis's clock): its unsent replies are its own for ``claim_timeout``."""
        return self._submit("beat", [self._nodes], [self.node, ""], _none)

    def leave(self) -> asyncio.Future[None]:
        """This node stopped: what it left unsent may be adopted at once (a restart under its name beats again)."""
        return self._submit("beat", [self._nodes], [self.node, 0], _none)

    def adopt(self, partitions: Sequence[int]) -> asyncio.Future[list[OutboxItem]]:
        """Take over, into this node's sets, the unsent replies in ``partitions`` of every node whose beat is
        ``claim_timeout`` old; the adopted replies in id order (atomic: two adopters never both get one)."""
        if not partitions:
            return self._done([])
        args = [self._prefix, self.node, self._stale_ms, self.partitions, *partitions]
        return self._submit("adopt", [self._nodes], args, _outbox_items)

    def unsent_in(self, partition: int) -> asyncio.Future[int]:
        """How many of this node's replies in ``partition`` are not sent yet."""
        return self._submit("count", [f"{self._prefix}unsent:{self.node}:{partition}"], [], int)

    async def flush(self) -> None:
        """Return once every operation submitted before this call is done (whatever its outcome)."""
        if self._queue:
            last = self._queue[-1][-1]
        elif self._in_flight:
            last = self._in_flight[-1]
        else:
            return
        await asyncio.wait([last])

    def sender_dead_letters(self, limit: int | None = None) -> asyncio.Future[list[SenderDeadLetter]]:
        def letters(reply: list[Any]) -> list[SenderDeadLetter]:
            found = _dead_letters(reply)
            return found if limit is None else found[:limit]

        return self._submit("list", [self._dead], [self._prefix], letters)

    def replay_sender_dead_letters(self, ids: Sequence[int] | None = None) -> asyncio.Future[list[OutboxItem]]:
        args = [self._prefix, self._clock(), self.node, *(ids or ())]
        if ids is not None and not ids:
            return self._done([])
        return self._submit("replay", [self._dead, self._nodes], args, _outbox_items)

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

    async def aclose(self) -> None:
        """Wait for every queued operation, then close the Redis client."""
        await self.close()
        await self._redis.aclose()

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
            self._in_flight = [future for *_, future in batch]
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


class OutboxLeases:
    """The broker's :class:`~sluiceway.engine.redis_broker.LeaseHooks` for the reply outbox: ``broker.hooks = ...``.

    Beats before each lease round's renewals; adopts dead nodes' unsent replies in each partition
    it takes (before reading it) and, each round, in the partitions it holds (for a node that died
    after its partition moved on, or stopped with replies left); hands adopted replies to the
    outbox's senders; holds each batch of acks until the replies before it are committed; and
    keeps a partition given up cleanly until this node has sent its replies in it (at most
    ``claim_timeout``), so that the next holder's replies do not overtake them.
    """

    def __init__(self, store: RedisOutboxStore, outbox: DurableOutbox) -> None:
        self.store = store
        self.outbox = outbox

    async def beat(self) -> None:
        await self.store.beat()

    async def holding(self, partitions: list[int]) -> None:
        self.outbox.take_over(await self.store.adopt(partitions), adopted=True)

    async def taking(self, partition: int) -> None:
        self.outbox.take_over(await self.store.adopt([partition]), adopted=True)

    async def releasable(self, partition: int) -> bool:
        return not await self.store.unsent_in(partition)

    async def before_finish(self) -> None:
        await self.store.flush()


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
