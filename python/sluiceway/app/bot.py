"""``Bot``: what a user writes. A message handler plus per-worker setup and teardown hooks."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sluiceway.app.context import Context
from sluiceway.app.inbound import InboundMessage
from sluiceway.app.settings import Settings, load_settings

MessageHandler = Callable[[InboundMessage, Context], Awaitable[None]]
#: A per-worker hook: called with the worker's ``Resources`` (its settings and clients).
WorkerHook = Callable[[Any], "Awaitable[None] | None"]
F = TypeVar("F", bound=Callable[..., Any])


class Bot:
    """A WhatsApp bot: one async message handler, run by ``sluiceway run module:bot``.

    The module is imported in the supervisor and in every worker process, so define the bot
    at module level and keep import-time work light; open clients in ``on_worker_start``.

    Example::

        from sluiceway import Bot

        bot = Bot()

        @bot.on_message
        async def handle(msg, ctx):
            await ctx.reply(f"You said: {msg.text}")

    Settings come from ``sluiceway.toml``, the environment and the command line (see
    ``sluiceway.app.settings``); pass ``settings=`` to fix them in code instead.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self.handler: MessageHandler | None = None
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

    def on_message(self, handler: F) -> F:
        """Register the handler ``async def handle(msg: InboundMessage, ctx: Context) -> None``."""
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(
                f"the message handler must be an async function (async def {getattr(handler, '__name__', 'handle')}"
                "(msg, ctx)): it awaits the context (ctx.sheets, ctx.reply); call blocking code through "
                "asyncio.to_thread inside it"
            )
        if self.handler is not None:
            raise ValueError("this bot already has a message handler")
        self.handler = handler
        return handler

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
        if self.handler is None:
            raise ValueError("the bot has no message handler: decorate one with @bot.on_message")


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
