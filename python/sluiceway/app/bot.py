"""``Bot``: what a user writes. Message handlers (routed by kind and filters), an error handler,
and per-worker setup and teardown hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from sluiceway.app.context import Context
from sluiceway.app.inbound import InboundMessage
from sluiceway.app.routing import MessageHandler as MessageHandler
from sluiceway.app.routing import Pattern, Router, make_route, require_async
from sluiceway.app.settings import Settings, load_settings

#: ``async def on_error(msg, ctx, error)``: answers a message whose handler failed for good.
ErrorHandler = Callable[[InboundMessage, Context, Exception], Awaitable[None]]
#: A per-worker hook: called with the worker's ``Resources`` (its settings and clients).
WorkerHook = Callable[[Any], "Awaitable[None] | None"]
F = TypeVar("F", bound=Callable[..., Any])


class Bot:
    """A WhatsApp bot: async message handlers, run by ``sluiceway run module:bot``.

    The module is imported in the supervisor and in every worker process, so define the bot
    at module level and keep import-time work light; open clients in ``on_worker_start``.

    Example::

        from sluiceway import Bot

        bot = Bot()

        @bot.on_message
        async def handle(msg, ctx):
            await ctx.reply(f"You said: {msg.text}")

    Handlers can be routed by the message's kind, its text or the id of a tapped button
    (``on``), with ``on_message`` as the fallback; see ``sluiceway.app.routing`` for the order.
    ``on_error`` answers the tenant when a handler fails for good.

    Settings come from ``sluiceway.toml``, the environment and the command line (see
    ``sluiceway.app.settings``); pass ``settings=`` to fix them in code instead.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        #: The routes and the fallback, in matching order.
        self.router = Router()
        self.error_handler: ErrorHandler | None = None
        self.worker_start_hooks: list[WorkerHook] = []
        self.worker_stop_hooks: list[WorkerHook] = []

    @property
    def settings(self) -> Settings:
        """The bot's settings (loaded from file and environment on first use, unless given)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def use_settings(self, settings: Settings) -> None:
        """Replace the settings (the runtime does this with the command line's effective settings)."""
        self._settings = settings

    @property
    def handler(self) -> MessageHandler | None:
        """The fallback handler registered with ``on_message`` (None without one)."""
        return self.router.fallback

    def on_message(self, handler: F) -> F:
        """Register the fallback ``async def handle(msg: InboundMessage, ctx: Context) -> None``.

        It handles every message no ``on`` route matched; in a bot without routes, every message.
        """
        require_async(handler, "message handler", "msg, ctx")
        if self.router.fallback is not None:
            raise ValueError("this bot already has a message handler (@bot.on_message is the one fallback)")
        self.router.fallback = handler
        return handler

    def on(
        self,
        kind: str | Iterable[str] | None = None,
        *,
        text: Pattern | None = None,
        reply_id: Pattern | Iterable[str] | None = None,
    ) -> Callable[[F], F]:
        """Register a handler for the messages that pass every filter given (a decorator).

        ``kind``: a ``MessageKind`` (``"image"``, ``"button_reply"``...), several, or ``"media"``
        for any media. ``text``: a regular expression searched in ``msg.text``. ``reply_id``: the
        id of a tapped button or list row (or a quick reply's payload), several ids, or a
        ``re.Pattern`` searched in it. Routes are tried in registration order; the first match
        handles the message; ``on_message`` handles what none matched.

        Example::

            @bot.on("image")
            async def photo(msg, ctx): ...

            @bot.on(text=re.compile(r"\\brent\\b", re.IGNORECASE))
            async def rent(msg, ctx): ...

            @bot.on(reply_id=re.compile(r"^urgency:"))
            async def urgency(msg, ctx): ...
        """

        def register(handler: F) -> F:
            self.router.routes.append(make_route(handler, kind, text, reply_id))
            return handler

        return register

    def on_error(self, handler: F) -> F:
        """Register ``async def on_error(msg, ctx, error)``: it runs once per message whose handler failed for good.

        That is when the handler raised on its last attempt, just before the message becomes a
        dead letter (it stays one: the operator still sees it with its traceback). Earlier
        failures are retried without it, so the tenant hears from it once, not once per retry.
        ``ctx`` is fresh (what the failed handler queued is not sent); what ``on_error``
        replies goes out like any reply. An ``on_error`` that raises is logged and sends nothing.
        A handler that timed out or killed its worker gets no ``on_error`` (nothing raised).
        """
        require_async(handler, "error handler", "msg, ctx, error")
        if self.error_handler is not None:
            raise ValueError("this bot already has an error handler (@bot.on_error)")
        self.error_handler = handler
        return handler

    async def dispatch(self, msg: InboundMessage, ctx: Context) -> None:
        """Run the handler ``msg`` routes to (``sluiceway.app.routing`` has the order)."""
        await self.router.dispatch(msg, ctx)

    def on_worker_start(self, hook: F) -> F:
        """Run ``hook(resources)`` once in each worker before its first message (sync or async)."""
        self.worker_start_hooks.append(hook)
        return hook

    def on_worker_stop(self, hook: F) -> F:
        """Run ``hook(resources)`` once in each worker after its last message (sync or async)."""
        self.worker_stop_hooks.append(hook)
        return hook

    def check(self) -> None:
        """``ValueError`` if the bot cannot run (no handler registered)."""
        if not self.router:
            raise ValueError("the bot has no message handler: decorate one with @bot.on_message or @bot.on(...)")


def load_bot(spec: str) -> Bot:
    """Import ``"module:attribute"`` and return the ``Bot`` it names (``ValueError`` if it is not one)."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"a bot is named 'module:attribute' (e.g. myapp:bot), got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the user's module: any error in it is a start-up mistake to report
        raise ValueError(f"cannot import {module_name!r} for bot {spec!r}: {type(error).__name__}: {error}") from error
    if not hasattr(module, attribute):
        raise ValueError(f"module {module_name!r} has no attribute {attribute!r} (the bot is named {spec!r})")
    bot = getattr(module, attribute)
    if not isinstance(bot, Bot):
        raise ValueError(f"{spec!r} is {type(bot).__name__}, not a sluiceway Bot")
    bot.check()
    return bot
