"""``@bot.on_error`` at work: run it once a handler failed for good, and carry its replies to the sender.

The engine runs handlers in worker processes and sends nothing of a failed attempt back but its
exception (pickled when it can be). So the replies of ``on_error`` ride on that exception, under
``REPLIES_ATTRIBUTE``, and the supervisor takes them off it (:func:`carried_replies`) when the
message is dead-lettered. An exception that does not survive pickling is replaced by a
``HandlerFailed`` naming it, so the replies still arrive.
"""

from __future__ import annotations

import logging
import pickle

import msgspec

from sluiceway.app.bot import Bot
from sluiceway.app.context import Context, Outgoing
from sluiceway.app.inbound import InboundMessage
from sluiceway.errors import SluicewayError

logger = logging.getLogger("sluiceway.app")

#: The attribute of a handler's exception that holds ``on_error``'s replies (msgpack-encoded).
REPLIES_ATTRIBUTE = "_sluiceway_on_error_replies"

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[Outgoing]).decode


class HandlerFailed(SluicewayError):
    """Stands in for a handler's exception that could not be pickled: ``"<type>: <message>"``."""


async def answer_failure(bot: Bot, msg: InboundMessage, ctx: Context, error: Exception) -> list[Outgoing]:
    """Run ``bot.error_handler`` on a handler's final failure; what it sends, keyed apart from the handler's replies.

    ``ctx`` must be fresh. An ``on_error`` that raises is logged (with its traceback) and sends nothing.
    """
    if bot.error_handler is None:
        return []
    try:
        await bot.error_handler(msg, ctx, error)
    except Exception:  # the bot's own code: whatever it raises must not take the worker down
        logger.exception("on_error raised for message %s from %s; nothing of it is sent", msg.id, msg.sender)
        return []
    # A replay that later succeeds sends the handler's replies under "<wamid>#<n>"; these must not collide.
    return [
        msgspec.structs.replace(outgoing, idempotency_key=f"{msg.id}#on_error#{n}")
        for n, outgoing in enumerate(ctx.result().outgoing)
    ]


def carry(error: Exception, replies: list[Outgoing]) -> Exception:
    """``error`` with ``replies`` attached, as the engine can pickle it (or a ``HandlerFailed`` naming it)."""
    encoded = _encode(replies)
    try:
        setattr(error, REPLIES_ATTRIBUTE, encoded)
        pickle.loads(pickle.dumps(error))  # what the engine does to send it to the supervisor
        return error
    except Exception:
        carrier = HandlerFailed(f"{type(error).__qualname__}: {error}")
        setattr(carrier, REPLIES_ATTRIBUTE, encoded)
        return carrier


def carried_replies(error: BaseException) -> list[Outgoing]:
    """The ``on_error`` replies ``error`` carries ([] if none)."""
    encoded = getattr(error, REPLIES_ATTRIBUTE, None)
    return _decode(encoded) if isinstance(encoded, bytes) else []
