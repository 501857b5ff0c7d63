"""The Redis broker's key layout, its Lua scripts (each one atomic on the server), and URL masking.

Nothing here imports redis-py, so settings can mask a Redis URL without the ``redis`` extra.

Keys, all under ``<namespace>:``:

==========================  ===================================================================
``meta``                    hash: ``partitions`` (fixed when the namespace is first used)
``p:<n>``                   stream of partition ``n``'s messages, consumer group ``workers``
``lease:<n>``               who works partition ``n``: ``"<node>:<token>"``, expires (PX)
``fence:<n>``               the last fencing token given out for partition ``n`` (INCR)
``dedup:<wamid>``           a de-dup record (SET NX, expires after the de-dup window)
``dead``                    stream of dead letters
``nodes``                   hash: node id -> ``"<ms of Redis's clock>|<status JSON>"``
==========================  ===================================================================

One stream per partition, not per (partition, priority): a sender's messages keep their order
whatever their priorities, which per-(partition, priority) streams could not promise. Priority
orders what a node has read (its local queue), so HIGH goes first "as far as prefetch allows".
"""

from __future__ import annotations

#: The consumer group every partition stream has.
GROUP = "workers"

#: Accept a batch of messages, in order: for each, its de-dup record (if any, SET NX with the
#: window as expiry) and, unless that record existed, the XADD of its entry. Returns 1 (added) or 0
#: (a duplicate: nothing added) per message. ARGV[1]: the batch as one string of (stream, dedup
#: record or "", entry) triples, each field a 4-byte big-endian length and its bytes (``frame``):
#: one argument whatever the batch size, as packing each argument is most of a client's cost per
#: message (Redis's cmsgpack cannot carry binary). ARGV[2]: the de-dup window in ms. The keys are
#: not declared (their names are in the batch): one Redis, not a cluster.
ACCEPT = """
local data, pos, added = ARGV[1], 1, {}
local function take()
  local length = struct.unpack('>I4', data, pos)
  local field = string.sub(data, pos + 4, pos + 3 + length)
  pos = pos + 4 + length
  return field
end
while pos <= #data do
  local stream, record, entry = take(), take(), take()
  local new = 1
  if record ~= '' and not redis.call('SET', record, '1', 'NX', 'PX', ARGV[2]) then new = 0 end
  if new == 1 then redis.call('XADD', stream, '*', 'm', entry) end
  added[#added + 1] = new
end
return added
"""


def frame(fields: list[bytes]) -> bytes:
    """``fields`` as ``ACCEPT`` reads them: each a 4-byte big-endian length and its bytes."""
    return b"".join(len(field).to_bytes(4, "big") + field for field in fields)


#: An entry's one field ``m``: msgpack ``[priority level, wall-clock accept time, ordering key or
#: nil, payload]`` (the payload is the engine's msgpack bytes).
ENTRY_FIELD = b"m"

#: Take a free lease: ``0`` if someone holds it, else the new fencing token.
#: KEYS: lease, fence. ARGV: node id, lease ms.
ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
"""

#: Extend a lease still ours: 1, or 0 if it is not (expired, or another node's).
#: KEYS: lease. ARGV: "<node>:<token>", lease ms.
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

#: Give a lease up if it is still ours. KEYS: lease. ARGV: "<node>:<token>".
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: Give back entries read and never run (a graceful stop, or a partition handed over) under a
#: fencing check: their delivery counts are set back to what they were before this holder read them
#: (JUSTID does not count the claim itself), so the next holder's claim does not count toward
#: ``max_attempts``. Returns -1 if the lease is no longer this holder's, else how many.
#: KEYS: lease, stream. ARGV: "<node>:<token>", group, consumer, then (entry id, delivery count) pairs.
GIVE_BACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 4, #ARGV, 2 do
  redis.call('XCLAIM', KEYS[2], ARGV[2], ARGV[3], 0, ARGV[i], 'RETRYCOUNT', ARGV[i + 1], 'JUSTID')
end
return (#ARGV - 3) / 2
"""

#: Finish entries under a fencing check: -1 if the lease is no longer this holder's (nothing
#: changes), else XACK and XDEL them (acked entries leave the stream: memory stays bounded)
#: and return how many were pending. KEYS: lease, stream. ARGV: "<node>:<token>", group, ids...
ACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local acked = redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, 3))
redis.call('XDEL', KEYS[2], unpack(ARGV, 3))
return acked
"""

#: Move one entry to the dead-letter stream under the same fencing check as ``ACK``.
#: KEYS: lease, stream, dead. ARGV: "<node>:<token>", group, id, then the letter's field/value pairs.
DEAD_LETTER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 4))
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
return 1
"""

#: Record this node's heartbeat on Redis's clock, forget nodes silent for longer than the
#: stale time, and return how many nodes are live (this one included).
#: KEYS: nodes. ARGV: node id, status JSON, stale ms.
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now .. '|' .. ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
local live = 0
for i = 1, #all, 2 do
  local seen = tonumber(string.match(all[i + 1], '^(%d+)|'))
  if seen == nil or now - seen > tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    live = live + 1
  end
end
return live
"""

#: Move dead letters back into their partition streams (their entry ``m`` as it was: attempts
#: start over) and out of the dead-letter stream. KEYS: dead. ARGV: namespace, then the letter ids (none: all).
#: Returns how many were replayed.
REPLAY = """
local letters
if #ARGV > 1 then
  letters = {}
  for i = 2, #ARGV do
    local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if found[1] then letters[#letters + 1] = found[1] end
  end
else
  letters = redis.call('XRANGE', KEYS[1], '-', '+')
end
for _, letter in ipairs(letters) do
  local fields = letter[2]
  local entry, partition = nil, nil
  for i = 1, #fields, 2 do
    if fields[i] == 'partition' then partition = fields[i + 1] elseif fields[i] == 'm' then entry = fields[i + 1] end
  end
  redis.call('XADD', ARGV[1] .. ':p:' .. partition, '*', 'm', entry)
  redis.call('XDEL', KEYS[1], letter[1])
end
return #letters
"""


def redacted_url(url: str) -> str:
    """``url`` with its password masked (all of the credentials when they are one word: that word
    may be a password), for logs and printed settings."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = credentials.partition(":")
    return f"{scheme}{sep}{user}:****@{host}" if colon else f"{scheme}{sep}****@{host}"
