"""Dead letters as ``sluiceway dlq`` shows them, from a running bot or from its journal when it is stopped.

Two kinds: ``message`` (an inbound message whose handler failed on every attempt: it got no
reply) and ``send`` (a reply the sender gave up on). Both live in the journal in
``state_dir``; while the bot runs it holds the journal's lock, so ``dlq`` asks its admin
API, and when it is stopped ``dlq`` opens the journal itself (:func:`offline_dead_letters`).
A replay while stopped moves the letters back into the journal's queues: the next start
runs those messages and sends those replies.

In Redis mode (``redis_url`` set) the message dead letters of every node, and the sender's dead
letters of every node (:func:`redis_send_dead_letters`), are in Redis, and ``dlq`` works on them
there whether nodes run or not (:func:`redis_dead_letters`); each kind of letter is one entry of
``_REDIS_KINDS``. Sends replayed from outside a node go to the unsent replies of ``REPLAY_NODE``,
a node that never beats: the holders of their partitions adopt them within a lease round (at
most a second) and send them, or the first node to start does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from sluiceway.app.context import Outgoing
from sluiceway.engine import DeadLetter
from sluiceway.journal import DeadLetter as JournalDeadLetter
from sluiceway.journal import Journal, SenderDeadLetter

if TYPE_CHECKING:
    from sluiceway.app.redis_outbox import RedisOutboxStore
    from sluiceway.engine.redis_dead_letters import RedisDeadLetter

_decode_payload = msgspec.msgpack.Decoder().decode
_decode_reply = msgspec.msgpack.Decoder(Outgoing).decode


def message_letter(letter: DeadLetter) -> dict[str, Any]:
    """An engine dead letter of the running bot (its payload is the inbound message)."""
    payload = letter.payload if isinstance(letter.payload, dict) else {}
    return _message(payload, letter.error, letter.traceback, letter.dead_at)


def journal_message_letter(letter: JournalDeadLetter) -> dict[str, Any]:
    """A message dead letter read straight from the journal."""
    payload = _decode_payload(letter.payload)
    return _message(payload if isinstance(payload, dict) else {}, letter.error, letter.traceback, letter.dead_at)


def _message(payload: dict[str, Any], error: str, traceback: str, failed_at: float) -> dict[str, Any]:
    return {
        "kind": "message",
        "id": payload.get("id", ""),
        "sender": payload.get("sender", ""),
        "text": payload.get("text", ""),
        "error": error,
        # The handler's last traceback ("" for a worker that died under the message).
        "traceback": traceback,
        "failed_at": failed_at,
    }


def send_letter(letter: SenderDeadLetter) -> dict[str, Any]:
    """A reply the sender gave up on, from the journal."""
    reply = _decode_reply(letter.body)
    text = reply.message.text.body if reply.message.text is not None else reply.message.type
    return {
        "kind": "send",
        "id": letter.id,
        "recipient": letter.recipient,
        "text": text,
        "in_reply_to": letter.inbound_wamid,
        "reason": letter.reason,
        "error": letter.error,
        "attempts": letter.attempts,
        "failed_at": letter.failed_at,
    }


def offline_dead_letters(journal_path: Path, action: str) -> Any:
    """Do ``action`` ("list", "replay" or "purge") on the journal of a stopped bot.

    Answers like the admin API does. ``JournalLocked`` if a bot holds the journal.
    """
    with Journal.open(journal_path) as journal:
        if action == "list":
            return [journal_message_letter(m) for m in journal.dead_letters()] + [
                send_letter(s) for s in journal.sender_dead_letters()
            ]
        if action == "replay":
            return {
                "replayed": len(journal.replay_dead_letters()),
                "replayed_sends": len(journal.replay_sender_dead_letters()),
            }
        return {"purged": journal.purge_dead_letters(), "purged_sends": journal.purge_sender_dead_letters()}


#: The node an offline ``dlq replay`` puts replayed replies under (braces: no ``redis_node`` can take it).
REPLAY_NODE = "{dlq-replay}"


async def redis_send_dead_letters(store: RedisOutboxStore, action: str) -> Any:
    """Do ``action`` ("list", "replay" or "purge") on the sender's dead letters in Redis (``redis_url`` set).

    Answers like :func:`offline_dead_letters` for the sends; any node (or none) may run it:
    replayed replies go to ``store``'s node's outbox, sent by it now or at its next start.
    """
    if action == "list":
        return [send_letter(letter) for letter in await store.sender_dead_letters()]
    if action == "replay":
        return {"replayed_sends": len(await store.replay_sender_dead_letters())}
    if action == "purge":
        return {"purged_sends": await store.purge_sender_dead_letters()}
    raise ValueError(f"unknown dead-letter action {action!r}; expected list, replay or purge")


def redis_message_letter(letter: RedisDeadLetter) -> dict[str, Any]:
    """An engine dead letter kept in Redis (its ``id`` is the inbound message's wamid)."""
    return _message(letter.payload if isinstance(letter.payload, dict) else {}, letter.error, "", letter.dead_at)


async def _redis_messages(url: str, namespace: str, action: str) -> tuple[str, Any]:
    from sluiceway.engine.redis_dead_letters import RedisDeadLetters

    async with RedisDeadLetters(url, namespace) as dead:
        if action == "list":
            return "", [redis_message_letter(letter) for letter in await dead.letters()]
        if action == "replay":
            return "replayed", await dead.replay()
        return "purged", await dead.purge()


async def _redis_sends(url: str, namespace: str, action: str) -> tuple[str, Any]:
    from redis.asyncio import Redis

    from sluiceway.app.redis_outbox import RedisOutboxStore

    redis = Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0)
    try:
        answer = await redis_send_dead_letters(RedisOutboxStore(redis, namespace=namespace, node=REPLAY_NODE), action)
    finally:
        await redis.aclose()
    if action == "list":
        return "", answer
    [(key, value)] = answer.items()
    return key, value


#: Each kind of dead letter kept in Redis: does "list", "replay" or "purge" and returns the answer's
#: key ("" for a list) and value.
_REDIS_KINDS: dict[str, Callable[[str, str, str], Awaitable[tuple[str, Any]]]] = {
    "message": _redis_messages,
    "send": _redis_sends,
}


async def redis_dead_letters(
    url: str, namespace: str, action: str, kinds: tuple[str, ...] = tuple(_REDIS_KINDS)
) -> Any:
    """Do ``action`` ("list", "replay" or "purge") on the dead letters in Redis of ``kinds`` (both: "message",
    "send"); answers like the admin API."""
    from redis.exceptions import RedisError

    from sluiceway.engine import BrokerUnavailable
    from sluiceway.engine.redis_scripts import redacted_url

    try:
        answers = [await _REDIS_KINDS[kind](url, namespace, action) for kind in kinds]
    except RedisError as error:
        raise BrokerUnavailable(f"Redis at {redacted_url(url)} cannot be reached: {error}") from None
    if action == "list":
        return [letter for _, letters in answers for letter in letters]
    out = {"replayed": 0, "replayed_sends": 0} if action == "replay" else {"purged": 0, "purged_sends": 0}
    out.update(dict(answers))
    return out
