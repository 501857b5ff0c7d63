"""``Runtime``: everything ``sluiceway run`` starts in the supervisor process, and its shutdown.

::

    Meta ──POST /webhook──▶ WebhookIngress ──▶ EngineSink ──submit──▶ MessageParallelizer
     ▲        (signed)        │ statuses            ▲                  │  N uvloop workers:
     │                        ▼                     │ HandlerResult    │  bot handler, ctx.sheets
     └──── Cloud API ◀── BatchSender ◀──────────────┘                  ▼  (SheetsCache per worker)
                                    PerformanceMonitor (/metrics, dashboard) watches the engine

Durability: the engine journals into ``settings.state_dir`` (``journal.sqlite3``). A webhook
is answered 200 only once its message and ``wamid`` are committed there, so a ``kill -9``
loses no answered message: the next start on the same ``state_dir`` runs what was left
unfinished (``EngineSink.adopt`` sends those replies), and a re-delivered ``wamid`` within
``dedup_window`` is answered 200 without running again.

Shutdown (SIGTERM, SIGINT or ``stop()``) drains in the order that loses nothing: the ingress
stops accepting messages (503, so Meta re-delivers them to the next instance) but keeps taking
status webhooks; the engine finishes what it accepted; the replies reach the sender; the sender
drains (delivery statuses still arrive); the engine stops and closes the journal (what did not
finish in time stays there for the next start); then the HTTP server and the monitor stop, and
one summary line is logged.

Redis mode (``settings.redis_url``): the engine's queue, the wamid records and the engine's dead
letters live in Redis (:mod:`sluiceway.engine.redis_broker`), shared by every node started on
it; a webhook is answered 200 once Redis has the message, and any node may run it (its replies
go out from the node that ran it). The journal in ``state_dir`` then keeps only this node's
reply outbox. Start-up refuses a Redis that does not persist or may evict, unless ``redis_unsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from sluiceway.app.admin import ADMIN_HOST, admin_routes
from sluiceway.app.context import HandlerResult
from sluiceway.app.engine_sink import EngineSink
from sluiceway.app.gc_tuning import tune_for_serving
from sluiceway.app.inbound import InboundMessage
from sluiceway.app.ingress import WebhookIngress
from sluiceway.app.outbox import DurableOutbox
from sluiceway.app.settings import Settings
from sluiceway.app.shedding import DEFAULT_MAX_DELAY, LoadShedder
from sluiceway.app.worker import BOT_ENV, SETTINGS_ENV, check_sheets_credentials
from sluiceway.engine import BrokerUnavailable, MessageParallelizer, ParallelizerConfig
from sluiceway.http import HttpServer
from sluiceway.journal import AsyncJournal, Journal, JournalError
from sluiceway.monitor import MonitorConfig, PerformanceMonitor
from sluiceway.whatsapp import BatchSender, SenderConfig, Transport, WhatsAppCloudTransport
from sluiceway.whatsapp.webhooks import Status

if TYPE_CHECKING:
    from sluiceway.engine.redis_broker import RedisBroker

try:
    from redis.exceptions import RedisError
except ImportError:  # without the redis extra: no Redis mode, so no Redis error to catch
    RedisError = OSError  # type: ignore[assignment,misc]

logger = logging.getLogger("sluiceway.app")

#: Seconds each shutdown phase may take before the runtime moves on and reports what is left.
DRAIN_TIMEOUT = 30.0


class RuntimeSummary(msgspec.Struct, frozen=True):
    """What a runtime did, reported at shutdown."""

    received: int
    duplicates: int
    handled: int
    failed: int
    replies: int
    sent: int
    confirmed: int
    dead_lettered: int
    left_queued: int
    #: Replies re-sent after a restart although they may have reached WhatsApp before it.
    uncertain_resends: int = 0

    def line(self) -> str:
        """The one-line summary logged at shutdown."""
        return (
            f"shutdown ◆ {self.received} received ◆ {self.duplicates} duplicates ◆ {self.handled} handled"
            f" ◆ {self.failed} failed ◆ {self.replies} replies ◆ {self.sent} sent ◆ {self.confirmed} confirmed"
            f" ◆ {self.dead_lettered} dead-lettered ◆ {self.left_queued} left queued"
            f" ◆ {self.uncertain_resends} uncertain re-sends"
        )


class Runtime:
    """Starts and stops the ingress, engine, sender and monitor for the bot ``bot_spec``.

    Example::

        runtime = Runtime("myapp:bot", load_settings())
        await runtime.start()
        print(runtime.webhook_url)
        ...
        summary = await runtime.stop()

    ``transport`` replaces the Cloud API (the demo passes one pointed at the emulator); the
    runtime closes it on ``stop``. The sender's config defaults to the Cloud API preset at
    ``settings.messages_per_second``; the others to the components' own defaults.
    ``shed_after`` (seconds, ``None``: never) is the expected wait of an accepted message past
    which new message webhooks are answered 503 at once (:mod:`sluiceway.app.shedding`).
    """

    def __init__(
        self,
        bot_spec: str,
        settings: Settings,
        *,
        transport: Transport | None = None,
        engine_config: ParallelizerConfig | None = None,
        sender_config: SenderConfig | None = None,
        monitor_config: MonitorConfig | None = None,
        on_handled: Callable[[InboundMessage, HandlerResult | None], None] | None = None,
        shed_after: float | None = DEFAULT_MAX_DELAY,
    ) -> None:
        if shed_after is not None and not shed_after > 0:
            raise ValueError(f"shed_after must be positive seconds or None, got {shed_after}")
        self.bot_spec = bot_spec
        engine_config = engine_config or ParallelizerConfig()
        engine_config = msgspec.structs.replace(
            engine_config, dedup_window=settings.dedup_window, dedup_max_entries=settings.dedup_max_entries
        )
        if settings.workers is not None:
            engine_config = msgspec.structs.replace(
                engine_config,
                default_worker_count=settings.workers,
                min_workers=min(engine_config.min_workers, settings.workers),
                max_workers=max(engine_config.max_workers, settings.workers),
            )
        self.engine_config = engine_config
        # Workers split the Sheets quota by this count, so it must be the real one.
        self.settings = settings = msgspec.structs.replace(settings, workers=engine_config.default_worker_count)
        self._transport = transport
        self._transport_in_use: Transport | None = None
        self.sender_config = sender_config or SenderConfig.cloud_api(settings.messages_per_second)
        self._monitor_config = monitor_config or MonitorConfig(
            http_host=settings.monitor_host, http_port=settings.monitor_port
        )
        self._on_handled = on_handled
        self._shed_after = shed_after
        #: Refuses new message webhooks (503) while accepted ones would wait over ``shed_after`` s.
        self.shedder: LoadShedder | None = None
        self.engine: MessageParallelizer | None = None
        self.sender: BatchSender | None = None
        self.monitor: PerformanceMonitor | None = None
        self.sink: EngineSink | None = None
        self.outbox: DurableOutbox | None = None
        self._expiry: asyncio.Task[None] | None = None
        #: In Redis mode: the journal this runtime opens for the outbox (the engine has none then).
        self._outbox_journal: Journal | None = None
        self.broker: RedisBroker | None = None
        #: In Redis mode: the last cluster status (the dashboard's ``redis`` source), refreshed each second.
        self._cluster: dict[str, object] = {}
        self._cluster_refresh: asyncio.Task[None] | None = None
        self.ingress: WebhookIngress | None = None
        self._server: HttpServer | None = None
        self._admin_server: HttpServer | None = None
        self.webhook_url = ""
        self.admin_url = ""
        #: True between a successful ``start`` and ``stop``.
        self.running = False

    def _default_transport(self) -> Transport:
        settings = self.settings
        if settings.whatsapp_access_token is None or not settings.whatsapp_phone_number_id:
            raise ValueError(
                "whatsapp_access_token and whatsapp_phone_number_id must be set "
                "(environment variables WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID)"
            )
        return WhatsAppCloudTransport(
            settings.whatsapp_phone_number_id,
            settings.whatsapp_access_token.reveal(),
            api_version=settings.whatsapp_api_version,
            base_url=settings.whatsapp_base_url,
        )

    async def start(self) -> None:
        """Start the sender, the engine (and its workers and monitor), then the webhook server.

        ``ValueError`` naming what to fix, before anything starts, for a missing app secret, a
        spreadsheet without Google credentials, or a port another process holds.
        """
        settings = self.settings
        if settings.whatsapp_app_secret is None:
            raise ValueError("whatsapp_app_secret is not set (environment variable WHATSAPP_APP_SECRET)")
        check_sheets_credentials(settings)
        _check_port_free(settings.host, settings.port, "--port or SLUICEWAY_PORT")
        _check_port_free(ADMIN_HOST, settings.admin_port, "--admin-port or SLUICEWAY_ADMIN_PORT")
        if self._monitor_config.monitor_process:
            _check_port_free(
                self._monitor_config.http_host,
                self._monitor_config.http_port,
                "--monitor-port or SLUICEWAY_MONITOR_PORT",
            )
        if settings.redis_url is not None:
            self.broker = await _checked_broker(settings, self.engine_config)
        transport = self._transport_in_use = self._transport or self._default_transport()
        # Spawned workers inherit the environment: this is how they learn which bot to run.
        os.environ[BOT_ENV] = self.bot_spec
        os.environ[SETTINGS_ENV] = settings.worker_json().decode()
        self.outbox = outbox = DurableOutbox()
        self.sender = BatchSender(transport, self.sender_config, journal=outbox)
        outbox.attach(self.sender)
        await self.sender.start()
        _make_state_dir(Path(settings.state_dir))
        self.monitor = PerformanceMonitor(self._monitor_config)
        self.monitor.add_source("sender", self.sender.stats)
        self.monitor.add_source("outbox", outbox.stats)
        self.engine = MessageParallelizer(
            "sluiceway.app.worker:handle",
            self.engine_config,
            monitor=self.monitor,
            worker_setup="sluiceway.app.worker:setup",
            worker_teardown="sluiceway.app.worker:teardown",
            journal=settings.journal_path if self.broker is None else None,
            on_recovered=self._recovered,
            broker=self.broker,
        )
        self.sink = sink = EngineSink(
            self.engine,
            outbox,
            high_water=self.engine_config.queue_high_water_mark,
            low_water=self.engine_config.queue_low_water_mark,
            metrics=self.monitor,
            on_handled=self._handled,
        )
        if self.broker is not None:
            self._outbox_journal = Journal.open(settings.journal_path, dedup_window=settings.dedup_window)
        await self.engine.start()
        if not outbox.opened:  # else opened when the first recovered message was handed over
            outbox.open(self.journal)
        # The last run's unsent replies are with the sender (and counted) before anything is served:
        # /status then reports every uncertain re-send from the first answer on.
        assert outbox.recovered is not None
        await outbox.recovered
        self._expiry = asyncio.create_task(_expire_periodically(self.journal))
        if self.broker is not None:
            self._cluster_refresh = asyncio.create_task(self._refresh_cluster())
            self.monitor.add_source("redis", lambda: self._cluster)
        if self._shed_after is not None:
            self.shedder = LoadShedder(
                lambda: sink.stats.outstanding, backlog_delay=self._reply_queue_seconds, max_delay=self._shed_after
            )
        overloaded = self.shedder.overloaded if self.shedder is not None else None
        self.ingress = WebhookIngress.from_settings(
            settings, sink, status_sink=self, overloaded=overloaded, not_ready=self._not_ready
        )
        self._server = HttpServer(self.ingress.handle, max_body_bytes=settings.max_body_bytes)
        await self._server.start(settings.host, settings.port)
        self.webhook_url = f"{self._server.url}{settings.webhook_path}"
        self._admin_server = HttpServer(admin_routes(self).handle)
        await self._admin_server.start(ADMIN_HOST, settings.admin_port)
        self.admin_url = self._admin_server.url
        self.running = True
        logger.info(
            "webhook at %s ◆ %d workers ◆ admin %s ◆ monitor %s",
            self.webhook_url,
            len(self.engine.worker_pids()),
            self.admin_url,
            self.monitor.http_url,
        )

    @property
    def journal(self) -> AsyncJournal:
        """The journal of the outbox (and, without Redis, of the engine)."""
        if self._outbox_journal is not None:
            return self._outbox_journal.aio
        assert self.engine is not None and self.engine.journal is not None
        return self.engine.journal

    async def cluster_status(self) -> dict[str, object] | None:
        """In Redis mode: every node, each partition's backlog, pending count and lease holder."""
        if self.broker is None:
            return None
        try:
            from sluiceway.engine.redis_status import cluster_status

            return await cluster_status(self.broker)
        except (RedisError, OSError) as error:
            return {"error": f"Redis cannot be reached: {error}"}

    async def _refresh_cluster(self) -> None:
        while True:
            self._cluster = await self.cluster_status() or {}
            await asyncio.sleep(CLUSTER_REFRESH_INTERVAL)

    def _not_ready(self) -> str | None:
        """Why new webhooks would not be taken now (``/readyz``), or None when they would."""
        engine = self.engine
        if engine is None or not self.running:  # a stopping runtime's ingress already says "draining"
            return "starting"
        if engine.journal is None and self._outbox_journal is None:
            return "the journal is closed"
        if self.broker is not None and not self.broker.reachable:
            return "Redis cannot be reached"
        if engine.get_statistics().worker_count == 0:
            return "no engine worker is ready"
        return None

    def status(self, left_queued: int | None = None) -> RuntimeSummary:
        """The runtime's figures so far (``left_queued`` defaults to what is queued now)."""
        assert self.engine is not None and self.sender is not None
        assert self.sink is not None and self.ingress is not None
        stats = self.sender.stats()
        if left_queued is None:
            left_queued = self.engine.get_statistics().queued + sum(
                count
                for states in self.sender.queue_status().values()
                for state, count in states.items()
                if state != "dead_lettered"
            )
        return RuntimeSummary(
            received=self.ingress.stats.accepted,
            duplicates=self.ingress.stats.duplicates,
            handled=self.sink.stats.handled,
            failed=self.sink.stats.failed,
            replies=self.sink.stats.replies,
            sent=int(stats["sent"]),
            confirmed=int(stats["confirmed"]),
            dead_lettered=len(self.engine.dead_letters()) + len(self.sender.dead_letters()),
            left_queued=left_queued,
            uncertain_resends=self.outbox.uncertain_resends if self.outbox is not None else 0,
        )

    def _reply_queue_seconds(self) -> float:
        """Seconds the sender needs, at its current rate, for the replies it has not sent yet."""
        assert self.sender is not None
        unsent = sum(
            states["queued"] + states["in_flight"] + states["retrying"]
            for states in self.sender.queue_status().values()
        )
        return unsent / max(float(self.sender.stats()["rate"]), 1e-9) if unsent else 0.0

    def _recovered(self, payload: object, result: asyncio.Future[object]) -> None:
        assert self.sink is not None and self.outbox is not None and self.engine is not None
        if not self.outbox.opened:
            # The engine's journal is open once it recovers: the outbox must be too before this
            # message's reply can come, so that the reply is journaled before the message is finished.
            self.outbox.open(self.journal)
        self.sink.adopt(payload, result)

    def _handled(self, message: InboundMessage, result: HandlerResult | None) -> None:
        if self.shedder is not None:
            self.shedder.record_handled()
        if self._on_handled is not None:
            self._on_handled(message, result)

    def handle_status(self, status: Status) -> object:
        """Status webhooks go to the sender (the runtime is the ingress's status sink).

        A kind the sender does not know (one Meta adds later) settles nothing.
        """
        assert self.sender is not None and self.outbox is not None
        self.outbox.status(status.id)
        return self.sender.handle_status(status)

    async def stop(self, timeout: float = DRAIN_TIMEOUT) -> RuntimeSummary:
        """Drain and stop everything (see the module docstring for the order); return the summary."""
        assert self.engine is not None and self.sender is not None and self.sink is not None
        assert self.ingress is not None and self._server is not None
        self.running = False
        assert self.outbox is not None and self._expiry is not None
        self.ingress.stop_accepting()
        if self.broker is not None:  # else a busy cluster would keep this node from ever draining
            await self.broker.stop_reading()
        self._expiry.cancel()
        if self._cluster_refresh is not None:
            self._cluster_refresh.cancel()
        # The engine owns the journal and closes it when it shuts down, so the replies are
        # drained first: the sender must record them as sent while the journal is open.
        try:
            await self.engine.wait_for_completion(timeout)
            await self.sink.wait_idle(timeout)
            await self.outbox.wait_committed(timeout)
        except TimeoutError:
            logger.warning("messages or replies still in progress after %s s: they stay in the journal", timeout)
        left_over = await self.sender.close(timeout)
        engine_summary = await self.engine.shutdown(drain=True, timeout=timeout)
        if self._outbox_journal is not None:
            self._outbox_journal.close()
        close = getattr(self._transport_in_use, "aclose", None)
        if close is not None:
            await close()
        await self._server.stop()
        if self._admin_server is not None:
            await self._admin_server.stop()
        summary = self.status(left_queued=len(engine_summary.remaining) + len(left_over))
        logger.info(summary.line())
        return summary


#: Seconds between refreshes of the cluster status the dashboard shows (Redis mode).
CLUSTER_REFRESH_INTERVAL = 1.0

#: Seconds between sweeps that forget wamids and sent replies older than ``dedup_window``.
EXPIRY_INTERVAL = 600.0


async def _expire_periodically(journal: AsyncJournal) -> None:
    while True:
        await asyncio.sleep(EXPIRY_INTERVAL)
        try:
            await journal.expire()
        except JournalError as error:
            logger.error("journal expiry failed (retried in %s s): %s", EXPIRY_INTERVAL, error)


async def _checked_broker(settings: Settings, config: ParallelizerConfig) -> RedisBroker:
    """The Redis broker of ``settings``, after checking Redis answers, persists and will not evict.

    ``ValueError`` in one line naming what to fix otherwise (``redis_unsafe`` skips the persistence check)."""
    from sluiceway.engine.redis_broker import RedisBroker
    from sluiceway.engine.redis_status import persistence_problems

    assert settings.redis_url is not None
    broker = RedisBroker(
        settings.redis_url.reveal(),
        namespace=settings.redis_namespace,
        claim_timeout=settings.redis_claim_timeout,
        dedup_window=config.dedup_window,
    )
    try:
        problems = await persistence_problems(broker)
    except BrokerUnavailable as error:
        await broker.redis.aclose()
        raise ValueError(f"{error}; check --redis or SLUICEWAY_REDIS_URL") from None
    if problems and not settings.redis_unsafe:
        await broker.redis.aclose()
        raise ValueError(
            f"Redis at {settings.redis_url} is unsafe for accepted messages: {'; '.join(problems)}; "
            "or pass --redis-unsafe (SLUICEWAY_REDIS_UNSAFE=1) to accept losing them"
        )
    for problem in problems:
        logger.warning("Redis at %s: %s (running anyway: --redis-unsafe)", settings.redis_url, problem)
    return broker


def _make_state_dir(path: Path) -> None:
    """Create ``path`` (and its parents) readable by this user only: the journal holds messages."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"state_dir {str(path)!r} exists and is not a directory")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _check_port_free(host: str, port: int, moved_by: str) -> None:
    """``ValueError`` naming the port and the setting that moves it, if another process listens there.

    Checked before anything starts, so a taken port is one line, not a traceback from a half-started
    runtime. Bound as asyncio's servers bind (``SO_REUSEADDR``), so a port in TIME_WAIT is free.
    """
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(f"port {port} on {host} is not free ({error.strerror}); move it with {moved_by}") from None


async def serve(runtime: Runtime) -> RuntimeSummary:
    """Run ``runtime`` until SIGINT or SIGTERM, then drain it (a second signal has its default effect)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await runtime.start()
        tune_for_serving()
        await stop.wait()
        logger.info("draining")
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        return await runtime.stop()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
