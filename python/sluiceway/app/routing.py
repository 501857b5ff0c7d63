"""Which handler gets a message: routes with filters, tried in the order they were registered, then the fallback.

The matching order (the README's "Message kinds" section shows it with examples):

1. Routes (``@bot.on(...)``) are tried in the order they were registered. A route matches when
   every filter it was given matches: ``kind`` (one kind or several; ``"media"`` stands for the
   five media kinds), ``text`` (a regular expression, searched in ``msg.text``: a text's body,
   a caption, a tapped button's title) and ``reply_id`` (the id of a tapped button or list row,
   or a quick reply's payload: one id, several, or a regular expression searched in it). A
   route without filters matches everything.
2. The first route that matches handles the message, alone: later routes are not tried.
3. If none matches, the fallback (``@bot.on_message``) handles it.
4. With no fallback either, the message is finished without a reply and a warning names it.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from sluiceway.app.inbound import MEDIA_KINDS, MESSAGE_KINDS, InboundMessage

if TYPE_CHECKING:
    from sluiceway.app.context import Context

logger = logging.getLogger("sluiceway.app")

MessageHandler = Callable[[InboundMessage, "Context"], Awaitable[None]]
#: ``kind`` filter names besides the kinds themselves: a group of kinds.
KIND_GROUPS: dict[str, frozenset[str]] = {"media": MEDIA_KINDS}
#: What a ``text`` or ``reply_id`` pattern may be given as.
Pattern = str | re.Pattern[str]


def require_async(handler: Any, role: str, signature: str) -> None:
    """``TypeError`` in one line unless ``handler`` is an async function (the engine awaits every handler).

    ``role`` names it ("message handler", "error handler"); ``signature`` its parameters.
    """
    if not inspect.iscoroutinefunction(handler):
        name = getattr(handler, "__name__", "handle")
        raise TypeError(
            f"the {role} must be an async function (async def {name}({signature})): it awaits the "
            "context (ctx.sheets, ctx.reply); call blocking code through asyncio.to_thread inside it"
        )


class Route(msgspec.Struct, frozen=True):
    """One registered handler and the filters a message must all pass for it (None: no filter)."""

    handler: MessageHandler
    kinds: frozenset[str] | None = None
    text: re.Pattern[str] | None = None
    reply_ids: frozenset[str] | None = None
    reply_pattern: re.Pattern[str] | None = None

    def matches(self, msg: InboundMessage) -> bool:
        """Whether every filter of this route passes ``msg``."""
        if self.kinds is not None and msg.kind not in self.kinds:
            return False
        if self.text is not None and self.text.search(msg.text) is None:
            return False
        reply_id = msg.reply_id
        if self.reply_ids is not None and (not reply_id or reply_id not in self.reply_ids):
            return False
        return self.reply_pattern is None or (bool(reply_id) and self.reply_pattern.search(reply_id) is not None)


def make_route(
    handler: MessageHandler,
    kind: str | Iterable[str] | None = None,
    text: Pattern | None = None,
    reply_id: Pattern | Iterable[str] | None = None,
) -> Route:
    """A ``Route`` from ``Bot.on``'s arguments; ``ValueError`` naming a filter that cannot match anything."""
    require_async(handler, "message handler", "msg, ctx")
    kinds: frozenset[str] | None = None
    if kind is not None:
        named = [kind] if isinstance(kind, str) else list(kind)
        if not named:
            raise ValueError("kind must name at least one kind (or be None for any kind)")
        unknown = sorted(k for k in named if k not in MESSAGE_KINDS and k not in KIND_GROUPS)
        if unknown:
            raise ValueError(
                f"unknown message kind {unknown[0]!r}; expected one of {sorted(MESSAGE_KINDS | {'media'})}"
            )
        kinds = frozenset(k for name in named for k in KIND_GROUPS.get(name, {name}))
    reply_ids: frozenset[str] | None = None
    reply_pattern: re.Pattern[str] | None = None
    if isinstance(reply_id, re.Pattern):
        reply_pattern = reply_id
    elif reply_id is not None:
        reply_ids = frozenset([reply_id] if isinstance(reply_id, str) else reply_id)
        if not reply_ids or not all(isinstance(i, str) and i for i in reply_ids):
            raise ValueError(f"reply_id must be a non-empty id, several, or a re.Pattern; got {reply_id!r}")
    return Route(handler, kinds, _compiled("text", text), reply_ids, reply_pattern)


def _compiled(name: str, pattern: Pattern | None) -> re.Pattern[str] | None:
    if pattern is None or isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{name} is not a valid regular expression ({error}): {pattern!r}") from None


class Router:
    """A bot's routes and fallback: ``handler_for(msg)`` picks the handler as the module docstring says."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.fallback: MessageHandler | None = None

    def __bool__(self) -> bool:
        return bool(self.routes) or self.fallback is not None

    def handler_for(self, msg: InboundMessage) -> MessageHandler | None:
        """The first matching route's handler, else the fallback, else None."""
        for route in self.routes:
            if route.matches(msg):
                return route.handler
        return self.fallback

    async def dispatch(self, msg: InboundMessage, ctx: Context) -> None:
        """Run the handler ``msg`` routes to; with none, log a warning and finish without a reply."""
        handler = self.handler_for(msg)
        if handler is None:
            logger.warning(
                "no handler for message %s (kind %s) from %s: it gets no reply; add @bot.on_message as a fallback",
                msg.id,
                msg.kind,
                msg.sender,
            )
            return
        await handler(msg, ctx)
