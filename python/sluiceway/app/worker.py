"""The bot inside an engine worker process: setup, the engine handler, teardown.

The engine imports these functions by name in each worker (``sluiceway.app.worker:handle``).
Which bot to run and with which settings reach the worker through two environment variables
the runtime sets before starting the engine (spawned workers inherit the environment):
``SLUICEWAY_BOT`` (``module:attribute``) and ``SLUICEWAY_WORKER_SETTINGS`` (JSON, without
the WhatsApp secrets); ``SLUICEWAY_MAX_ATTEMPTS`` (the engine's ``max_attempts``) tells the
worker which failure is a message's last, the one ``on_error`` answers. The access tokens, which
media downloads, ``mark_read`` and ``send_now`` need inside the handler, come separately
(``sluiceway.app.media.take_tokens``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from sluiceway import fault_points
from sluiceway.app.bot import Bot, load_bot
from sluiceway.app.context import Context, HandlerResult
from sluiceway.app.inbound import InboundMessage
from sluiceway.app.media import WorkerGraph, take_tokens
from sluiceway.app.on_error import answer_failure, carry
from sluiceway.app.settings import Settings, worker_settings_from_json
from sluiceway.engine import Message, ParallelizerConfig, current_worker

#: Environment variable naming the bot to run (``module:attribute``).
BOT_ENV = "SLUICEWAY_BOT"
#: Environment variable carrying the worker's settings as JSON.
SETTINGS_ENV = "SLUICEWAY_WORKER_SETTINGS"
#: Environment variable carrying the engine's ``max_attempts`` (its default when unset).
MAX_ATTEMPTS_ENV = "SLUICEWAY_MAX_ATTEMPTS"
#: Where the worker keeps its ``Resources`` in ``current_worker().state``.
STATE_KEY = "sluiceway.app"


class Resources:
    """One worker's bot, settings and clients; passed to ``on_worker_start``/``on_worker_stop`` hooks.

    ``state`` is a dict for the bot's own per-worker objects (opened in a start hook).
    """

    def __init__(self, bot: Bot, settings: Settings, sheets: Any, graph: WorkerGraph | None = None) -> None:
        self.bot = bot
        self.settings = settings
        self.sheets = sheets
        #: This worker's Graph API access (media, read receipts, ``send_now``).
        self.graph = graph or WorkerGraph(settings, {})
        self.state: dict[str, Any] = {}
        #: The attempt whose failure is final (the engine dead-letters the message after it).
        self.max_attempts = int(os.environ.get(MAX_ATTEMPTS_ENV) or ParallelizerConfig().max_attempts)
        #: In Redis mode: what to close at teardown for the Sheets cache's shared level.
        self.closers: list[Callable[[], Awaitable[object]]] = []


def check_sheets_credentials(settings: Settings) -> None:
    """``ValueError`` naming the fix when a spreadsheet is configured but no Google credentials can be found.

    Checked by the runtime before it starts, so the mistake is one line rather than a traceback
    from every worker. Only files are looked at (a key file, gcloud's application-default file):
    nothing here talks to the network.
    """
    if not settings.spreadsheet_id or settings.sheets_api_endpoint is not None:
        return
    key_file = settings.google_application_credentials
    if key_file:
        if not os.access(key_file, os.R_OK):
            raise ValueError(f"GOOGLE_APPLICATION_CREDENTIALS is {key_file!r}, which cannot be read")
        return
    gcloud = Path(os.environ.get("CLOUDSDK_CONFIG") or Path.home() / ".config" / "gcloud")
    if not (gcloud / "application_default_credentials.json").is_file():
        raise ValueError(
            f"spreadsheet_id is set ({settings.spreadsheet_id!r}) but no Google credentials were found: set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (or SLUICEWAY_SHEETS_API_ENDPOINT "
            "to a Sheets emulator)"
        )


def sheets_client(settings: Settings, cache: Any = None) -> Any:
    """This worker's ``SheetsClient`` (its cache is invalidated across workers), or None without a spreadsheet.

    ``cache``: the ``SheetsCache`` to read through (Redis mode's, on the shared level), else its own."""
    if not settings.spreadsheet_id:
        return None
    from sluiceway.sheets import SheetsClient, SheetsClientConfig
    from sluiceway.sheets.client import SHEETS_SCOPE

    credentials = None
    if settings.google_application_credentials and settings.sheets_api_endpoint is None:
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            settings.google_application_credentials, scopes=[SHEETS_SCOPE]
        )
    # Each worker has its own client and limiter: give each an equal share of the quota.
    workers = settings.workers or 1
    config = SheetsClientConfig(
        read_requests_per_minute=max(1, settings.sheets_read_requests_per_minute // workers),
        write_requests_per_minute=max(1, settings.sheets_write_requests_per_minute // workers),
    )
    return SheetsClient(cache, credentials=credentials, api_endpoint=settings.sheets_api_endpoint, config=config)


async def _call(hook: Any, resources: Resources) -> None:
    outcome = hook(resources)
    if inspect.isawaitable(outcome):
        await outcome


async def setup() -> None:
    """Engine ``worker_setup``: load the bot, open the Sheets client, run the bot's start hooks."""
    bot = load_bot(os.environ[BOT_ENV])
    settings = worker_settings_from_json(os.environ[SETTINGS_ENV])
    bot.use_settings(settings)
    cache, closers = await _shared_sheets_cache(settings)
    resources = Resources(bot, settings, sheets_client(settings, cache), WorkerGraph(settings, take_tokens()))
    resources.closers = closers
    current_worker().state[STATE_KEY] = resources
    for hook in bot.worker_start_hooks:
        await _call(hook, resources)


async def teardown() -> None:
    """Engine ``worker_teardown``: run the bot's stop hooks, close the Sheets client."""
    resources: Resources | None = current_worker().state.pop(STATE_KEY, None)
    if resources is None:
        return
    for hook in resources.bot.worker_stop_hooks:
        await _call(hook, resources)
    if resources.sheets is not None:
        resources.sheets.close()
    for close in resources.closers:
        await close()
    await resources.graph.aclose()


async def _shared_sheets_cache(settings: Settings) -> tuple[Any, list[Callable[[], Awaitable[object]]]]:
    """In Redis mode with a spreadsheet: a Sheets cache over the level every node shares (a write
    through any node is never followed by a stale read on another), and how to close it."""
    if settings.redis_url is None or not settings.spreadsheet_id:
        return None, []
    from redis.asyncio import Redis

    from sluiceway.app.redis_shared import open_sheets_level

    redis = Redis.from_url(settings.redis_url.reveal())
    cache, level = await open_sheets_level(redis, namespace=settings.redis_namespace)
    return cache, [level.aclose, redis.aclose]


async def handle(message: Message) -> HandlerResult:
    """Engine handler: route one inbound message to the bot's handler; return what it sends.

    On the last attempt a failure is answered by the bot's ``on_error``, whose replies ride to
    the supervisor on the exception (``sluiceway.app.on_error``).
    """
    resources: Resources = current_worker().state[STATE_KEY]
    inbound = msgspec.convert(message.payload, InboundMessage)
    ctx = Context(inbound, resources.settings, resources.sheets, attempt=message.attempt, graph=resources.graph)
    try:
        await resources.bot.dispatch(inbound, ctx)
    except Exception as error:
        if message.attempt < resources.max_attempts or resources.bot.error_handler is None:
            raise
        fresh = Context(inbound, resources.settings, resources.sheets, attempt=message.attempt, graph=resources.graph)
        replies = await answer_failure(resources.bot, inbound, fresh, error)
        if not replies:
            raise
        carried = carry(error, replies)
        if carried is error:
            raise
        raise carried from error
    fault_points.reached("mid_handler")
    return ctx.result()
