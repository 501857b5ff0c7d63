"""``Runtime``: everything ``sluiceway run`` starts in the supervisor process, and its shutdown.

::

    Meta ──POST /webhook──▶ WebhookIngress ──▶ EngineSink ──submit──▶ MessageParallelizer
     ▲        (signed)        │ statuses            ▲                  │  N uvloop workers:
     │                        ▼                     │ HandlerResult    │  bot handler, ctx.sheets
     └──── Cloud API ◀── BatchSender ◀──────────────┘                  ▼  (SheetsCache per worker)
            PerformanceMonitor (/metrics, dashboard) watches the engine, the sender (the reply latency
            tenants feel, its queue, retries, throttles, breaker), the Sheets caches and the journal

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

Several business numbers (``Settings.phone_numbers``): one BatchSender per number, each with
its own transport (the number's own token if it has one) and so its own throughput and
pair-rate limits, as Meta counts them per number. A reply leaves from the number its message
came to; a status webhook goes to the sender of the number that sent its wamid;
``/metrics`` shows ``sluiceway_custom_whatsapp_number_*{phone_number_id=...}`` gauges per number
(``sent``, ``confirmed``, ``failed``, ``retries``, ``throttle_events``, ``rate``).
``sender`` is the first number's sender (the only one with a single number).

Redis mode (``settings.redis_url``): the engine's queue, the wamid records and the engine's dead
letters live in Redis (:mod:`sluiceway.engine.redis_broker`), shared by every node started on
it; a webhook is answered 200 once Redis has the message, and any node may run it (its replies
go out from the node that ran it). The reply outbox and the sender's dead letters live there too
(:mod:`sluiceway.app.redis_outbox`, under ``settings.node_name``), and no journal is opened: a
node's unsent replies are sent by it when it restarts under the same name, or adopted by the
holders of their partitions once its beat is ``redis_claim_timeout`` old; a message is acked only
once its replies are committed. Start-up refuses a Redis that does not persist or may evict,
unless ``redis_unsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import msgspec

from sluiceway.app.admin import ADMIN_HOST, admin_routes
from sluiceway.app.context import HandlerResult
from sluiceway.app.engine_sink import EngineSink
from sluiceway.app.gc_tuning import tune_for_serving
from sluiceway.app.inbound import InboundMessage
from sluiceway.app.ingress import WebhookIngress
from sluiceway.app.media import export_tokens
from sluiceway.app.outbox import DurableOutbox, ReplyOutcome
from sluiceway.app.settings import SERVER_LIMITS, Settings
from sluiceway.app.shedding import LoadShedder, LoopLag
from sluiceway.app.windows import ConversationWindows
from sluiceway.app.worker import BOT_ENV, MAX_ATTEMPTS_ENV, SETTINGS_ENV, check_sheets_credentials
from sluiceway.engine import BrokerUnavailable, MessageParallelizer, ParallelizerConfig
from sluiceway.http import HttpServer
from sluiceway.journal import AsyncJournal, JournalError
from sluiceway.monitor import MonitorConfig, PerformanceMonitor, PipelineSample
from sluiceway.whatsapp import BatchSender, SenderConfig, Transport, WhatsAppCloudTransport
from sluiceway.whatsapp.limits import RateLimitBackend
from sluiceway.whatsapp.webhooks import Status

if TYPE_CHECKING:
    from sluiceway.app.redis_outbox import RedisOutboxStore
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
    #: Unsent replies of an earlier run sent at start (Redis mode: under the same node name).
    resent_replies: int = 0
    #: Redis mode: unsent replies taken over from nodes that died (or stopped) with them.
    adopted_replies: int = 0

    def line(self) -> str:
        """The one-line summary logged at shutdown."""
        return (
            f"shutdown ◆ {self.received} received ◆ {self.duplicates} duplicates ◆ {self.handled} handled"
            f" ◆ {self.failed} failed ◆ {self.replies} replies ◆ {self.sent} sent ◆ {self.confirmed} confirmed"
            f" ◆ {self.dead_lettered} dead-lettered ◆ {self.left_queued} left queued"
            f" ◆ {self.uncertain_resends} uncertain re-sends"
            + (f" ◆ {self.adopted_replies} adopted" if self.adopted_replies else "")
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
    ``settings.shed_after`` (seconds, 0: never) is the expected wait of an accepted message past
    which new message webhooks are answered 503 at once (:mod:`sluiceway.app.shedding`); the
    webhook server gets the limits in ``settings`` (``SERVER_LIMITS``).
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
    ) -> None:
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
        self._transports_in_use: list[Transport] = []
        self.sender_config = sender_config or SenderConfig.cloud_api(settings.messages_per_second)
        self._monitor_config = monitor_config or MonitorConfig(
            http_host=settings.monitor_host, http_port=settings.monitor_port
        )
        self._on_handled = on_handled
        #: Refuses new message webhooks (503) while accepted ones would wait over ``shed_after`` s.
        self.shedder: LoadShedder | None = None
        self._loop_lag = LoopLag()
        self.engine: MessageParallelizer | None = None
        self.sender: BatchSender | None = None
        #: Each business number's sender ("" when the settings name no number).
        self.senders: dict[str, BatchSender] = {}
        #: When each user last wrote to each number: the 24-hour window replies are checked against.
        self.windows = ConversationWindows(default_number=settings.whatsapp_phone_number_id or "")
        self._number_metrics: asyncio.Task[None] | None = None
        self.monitor: PerformanceMonitor | None = None
        self.sink: EngineSink | None = None
        self.outbox: DurableOutbox | None = None
        self._expiry: asyncio.Task[None] | None = None
        #: In Redis mode: the reply outbox and sender dead letters in Redis (no journal is opened).
        self.outbox_store: RedisOutboxStore | None = None
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

    def _transports(self) -> dict[str, Transport]:
        """Each business number's transport: the one given for the first, the Cloud API's for the others."""
        settings = self.settings
        numbers = settings.phone_numbers
        transports: dict[str, Transport] = {}
        if self._transport is not None:
            transports[numbers[0] if numbers else ""] = self._transport
        for number in numbers:
            if number in transports:
                continue
            token = settings.whatsapp_number_tokens.get(number) or settings.whatsapp_access_token
            if token is None:
                raise ValueError(
                    f"no access token for business number {number}: set WHATSAPP_ACCESS_TOKEN "
                    f"(or WHATSAPP_ACCESS_TOKEN_{number} for this number alone)"
                )
            transports[number] = WhatsAppCloudTransport(
                number, token.reveal(), api_version=settings.whatsapp_api_version, base_url=settings.whatsapp_base_url
            )
        if not transports:
            raise ValueError(
                "whatsapp_access_token and whatsapp_phone_number_id must be set "
                "(environment variables WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID)"
            )
        return transports

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
            if settings.redis_node is None and settings.port == 0:
                raise ValueError("with --port 0 the node name cannot default to host:port: set --redis-node")
            self.broker = await _checked_broker(settings, self.engine_config)
        transports = self._transports()
        for level, line in startup_warnings(settings, real_graph_api=self._transport is None):
            logger.log(level, line)
        # Spawned workers inherit the environment: this is how they learn which bot to run,
        # and get the tokens for media and read receipts (why that is safe: sluiceway.app.media).
        os.environ[BOT_ENV] = self.bot_spec
        os.environ[SETTINGS_ENV] = settings.worker_json().decode()
        os.environ[MAX_ATTEMPTS_ENV] = str(self.engine_config.max_attempts)
        export_tokens(settings)
        self.monitor = PerformanceMonitor(self._monitor_config)
        fallback = settings.window_fallback_template
        self.outbox = outbox = DurableOutbox(
            windows=self.windows,
            fallback_template=(fallback, settings.window_fallback_language) if fallback else None,
            on_reply_latency=self.monitor.record_reply_latency,
        )
        for number, transport in transports.items():
            sender = BatchSender(
                transport, self.sender_config, journal=outbox.journal_for(number), limits=self._shared_limits(number)
            )
            outbox.attach(sender, number)
            await sender.start()
            self.senders[number] = sender
        self._transports_in_use = list(transports.values())
        self.sender = next(iter(self.senders.values()))
        _make_state_dir(Path(settings.state_dir))
        # Started here, not by the engine (which would start it unawaited): its URL is known for the start line.
        await self.monitor.start()
        self.monitor.add_source("sender", self.sender.stats)
        self.monitor.add_source("outbox", outbox.stats)
        self._number_metrics = asyncio.create_task(_record_number_metrics(self.monitor, self.senders))
        self.monitor.set_pipeline(self._pipeline_sample)
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
            windows=self.windows,
        )
        if self.broker is not None:
            from sluiceway.app.redis_outbox import OutboxLeases

            # Before the engine reads anything: this node's unsent replies are listed (and it beats) first.
            self.outbox_store = store = _outbox_store(settings, self.broker)
            self.broker.hooks = OutboxLeases(store, outbox)
            outbox.open(store)
        try:
            await self.engine.start()
        except BaseException:
            await self.monitor.stop()  # its process would outlive a runtime that never started
            if self.outbox_store is not None:
                await self.outbox_store.aclose()
            raise
        if not outbox.opened:  # else opened when the first recovered message was handed over
            outbox.open(self.journal)
        # The last run's unsent replies are with the sender (and counted) before anything is served:
        # /status then reports every uncertain re-send from the first answer on.
        assert outbox.recovered is not None
        await outbox.recovered
        if sink.stats.recovered or outbox.resent:
            self.monitor.mark(
                "restart",
                f"restarted: {sink.stats.recovered} unfinished message(s) and {outbox.resent} unsent reply(ies)"
                " taken over from the journal",
            )
        # Redis expires what it keeps itself (de-dup records and sent replies carry their TTLs).
        self._expiry = asyncio.create_task(_expire_periodically(self.journal)) if self.broker is None else None
        if self.broker is not None:
            self._cluster_refresh = asyncio.create_task(self._refresh_cluster())
            self.monitor.add_source("redis", lambda: self._cluster)
        if settings.shed_after > 0:
            self._loop_lag.start()
            self.shedder = LoadShedder(
                lambda: sink.stats.outstanding,
                backlog_delay=self._reply_queue_seconds,
                loop_lag=self._loop_lag,
                max_delay=settings.shed_after,
            )
        overloaded = self.shedder.overloaded if self.shedder is not None else None
        self.ingress = WebhookIngress.from_settings(
            settings, sink, status_sink=self, overloaded=overloaded, not_ready=self._not_ready
        )
        limits = {name: getattr(settings, name) for name in SERVER_LIMITS}
        self._server = HttpServer(self.ingress.handle, max_body_bytes=settings.max_body_bytes, **limits)
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

    def _pipeline_sample(self) -> PipelineSample:
        """The sender's and the Sheets caches' figures, for the monitor's pipeline view."""
        every = [sender.stats() for sender in self.senders.values()]

        def total(name: str) -> int:
            return sum(int(stats[name]) for stats in every)

        # With several numbers, the breaker shown is the worst one's.
        breakers = {str(stats["breaker"]) for stats in every}
        breaker = next((state for state in ("open", "half_open") if state in breakers), "closed")
        hits, misses = self.sink.cache_totals() if self.sink is not None else (0, 0)
        return PipelineSample(
            sender_queued=self._unsent_replies(),
            sender_sent=total("sent"),
            sender_failed=total("failed"),
            sender_retries=total("retries"),
            throttle_events=total("throttle_events"),
            pair_rate_holds=total("pair_rate_holds"),
            breaker=breaker,
            cache_hits=hits,
            cache_misses=misses,
        )

    def _shared_limits(self, number: str) -> RateLimitBackend | None:
        """In Redis mode: ``number``'s cap and pair rate, enforced across every node (else each sender's own)."""
        if self.broker is None:
            return None
        from sluiceway.app.redis_shared import sender_limits

        return sender_limits(
            self.broker.redis,
            self.sender_config,
            namespace=self.settings.redis_namespace,
            phone_number_id=number or "default",
        )

    @property
    def journal(self) -> AsyncJournal:
        """The engine's journal, which keeps the outbox too (not in Redis mode: there is none)."""
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
        if engine.journal is None and self.broker is None:
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
        senders = list(self.senders.values())
        sent = sum(int(sender.stats()["sent"]) for sender in senders)
        confirmed = sum(int(sender.stats()["confirmed"]) for sender in senders)
        if left_queued is None:
            left_queued = self.engine.get_statistics().queued + sum(
                count
                for sender in senders
                for states in sender.queue_status().values()
                for state, count in states.items()
                if state != "dead_lettered"
            )
        return RuntimeSummary(
            received=self.ingress.stats.accepted,
            duplicates=self.ingress.stats.duplicates,
            handled=self.sink.stats.handled,
            failed=self.sink.stats.failed,
            replies=self.sink.stats.replies,
            sent=sent,
            confirmed=confirmed,
            dead_lettered=len(self.engine.dead_letters())
            + sum(len(sender.dead_letters()) for sender in senders)
            + (self.outbox.refused if self.outbox is not None else 0),
            left_queued=left_queued,
            uncertain_resends=self.outbox.uncertain_resends if self.outbox is not None else 0,
            resent_replies=self.outbox.resent - self.outbox.adopted if self.outbox is not None else 0,
            adopted_replies=self.outbox.adopted if self.outbox is not None else 0,
        )

    @staticmethod
    def _unsent(sender: BatchSender) -> int:
        """Replies ``sender`` holds that WhatsApp has not taken yet: queued, on the wire or to be retried."""
        return sum(
            states["queued"] + states["in_flight"] + states["retrying"] for states in sender.queue_status().values()
        )

    def _unsent_replies(self) -> int:
        """Replies all numbers' senders hold that WhatsApp has not taken yet."""
        return sum(self._unsent(sender) for sender in self.senders.values())

    def _reply_queue_seconds(self) -> float:
        """Seconds the senders need, at their current rates, for the replies they have not sent yet."""
        # Numbers send in parallel, each at its own rate: the slowest one's backlog is the wait.
        waits = [0.0]
        for sender in self.senders.values():
            unsent = self._unsent(sender)
            if unsent:
                waits.append(unsent / max(float(sender.stats()["rate"]), 1e-9))
        return max(waits)

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

        With several numbers, to the sender of the number that sent the wamid (the first one's
        if not known). A kind the sender does not know (one Meta adds later) settles nothing.
        """
        assert self.sender is not None and self.outbox is not None
        self.outbox.status(status.id)
        number = self.outbox.number_of(status.id)
        sender = self.senders.get(number, self.sender) if number is not None else self.sender
        return sender.handle_status(status)

    def reply_outcome(self, key: str) -> ReplyOutcome | None:
        """What became of the reply a handler's ``SendHandle.key`` names (None if not known yet or any more)."""
        return self.outbox.outcome(key) if self.outbox is not None else None

    async def stop(self, timeout: float = DRAIN_TIMEOUT) -> RuntimeSummary:
        """Drain and stop everything (see the module docstring for the order); return the summary."""
        assert self.engine is not None and self.sender is not None and self.sink is not None
        assert self.ingress is not None and self._server is not None
        self.running = False
        assert self.outbox is not None
        self.ingress.stop_accepting()
        self._loop_lag.stop()
        if self.broker is not None:  # else a busy cluster would keep this node from ever draining
            await self.broker.stop_reading()
        if self._expiry is not None:
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
        closed = await asyncio.gather(*(sender.close(timeout) for sender in self.senders.values()))
        left_over = [item for items in closed for item in items]
        # Status webhooks still arrive while the engine closes the journal below.
        self.outbox.closing()
        assert self.monitor is not None
        # The last collection counts what finished since the one before: the final figures are complete.
        self.monitor.collect()
        engine_summary = await self.engine.shutdown(drain=True, timeout=timeout)
        if self.outbox_store is not None:  # the broker's lease rounds (and so the beats) have stopped
            await self.outbox_store.close()
            try:
                await self.outbox_store.leave()
            except (RedisError, OSError) as error:
                logger.warning("Redis: this node's leaving not recorded (others adopt its leftovers later): %s", error)
            await self.outbox_store.aclose()
        if self._number_metrics is not None:
            self._number_metrics.cancel()
        for transport in self._transports_in_use:
            close = getattr(transport, "aclose", None)
            if close is not None:
                await close()
        await self._server.stop()
        if self._admin_server is not None:
            await self._admin_server.stop()
        summary = self.status(left_queued=len(engine_summary.remaining) + len(left_over))
        logger.info(summary.line())
        return summary


#: The host of Meta's Graph API: replies sent there reach real phones.
GRAPH_API_HOST = "graph.facebook.com"


def startup_warnings(settings: Settings, real_graph_api: bool) -> list[tuple[int, str]]:
    """The (log level, line) pairs ``start`` logs about settings that run but are probably not meant.

    ``real_graph_api``: the runtime builds its own Cloud API transport (no ``transport`` given).
    Talking to graph.facebook.com is a WARNING while the setup is incomplete (no verify token or
    no spreadsheet: a development setup about to message real phones), else INFO: a deployment
    is expected to, and a WARNING on every start would teach operators to ignore warnings.
    """
    lines: list[tuple[int, str]] = []
    if not settings.spreadsheet_id:
        lines.append(
            (
                logging.WARNING,
                "no spreadsheet configured (--spreadsheet-id or SLUICEWAY_SPREADSHEET_ID): a handler that reads"
                " ctx.sheets fails and its message is dead-lettered",
            )
        )
    if settings.whatsapp_verify_token is None:
        lines.append(
            (
                logging.WARNING,
                "whatsapp_verify_token is not set (WHATSAPP_VERIFY_TOKEN): Meta's webhook subscription check"
                f" (GET {settings.webhook_path}) is refused with 403",
            )
        )
    base_url = settings.whatsapp_base_url
    if real_graph_api and urlsplit(base_url).hostname == GRAPH_API_HOST:
        missing = settings.missing_for_production()
        number = settings.whatsapp_phone_number_id
        where = f"replies go to the real WhatsApp Cloud API at {base_url} (phone number id {number})"
        if missing:
            unset = f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
            lines.append(
                (
                    logging.WARNING,
                    f"{where} although {unset}; for local development point SLUICEWAY_WHATSAPP_BASE_URL at an"
                    " emulator (sluiceway emulate whatsapp)",
                )
            )
        else:
            lines.append((logging.INFO, where))
    return lines


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
    try:
        await broker.connect()  # the namespace's partition count: the outbox keeps replies per partition
    except BrokerUnavailable as error:
        await broker.redis.aclose()
        raise ValueError(f"{error}; check --redis or SLUICEWAY_REDIS_URL") from None
    return broker


def _outbox_store(settings: Settings, broker: RedisBroker) -> RedisOutboxStore:
    """This node's outbox in Redis, kept per partition of ``broker`` (connected: its partition count is known)."""
    from redis.asyncio import Redis

    from sluiceway.app.redis_shared import outbox_store

    assert settings.redis_url is not None
    # A client of its own: the broker closes its client at shutdown, before this node records its leaving.
    redis = Redis.from_url(settings.redis_url.reveal(), socket_connect_timeout=2.0, socket_timeout=10.0)
    return outbox_store(
        redis,
        namespace=settings.redis_namespace,
        node=settings.node_name,
        partitions=broker.partitions,
        partition_of=broker.partition_of,
        claim_timeout=settings.redis_claim_timeout,
    )


def _make_state_dir(path: Path) -> None:
    """Create ``path`` (and its parents) readable by this user only: the journal holds messages.

    An existing directory that its group or others may read is tightened to 0700 (logged with its
    old mode) rather than refused: the fix is always the same, and refusing would only make the
    operator run ``chmod 700`` by hand. One that cannot be tightened (another user's) is refused.
    """
    if path.exists() and not path.is_dir():
        raise ValueError(f"state_dir {str(path)!r} exists and is not a directory")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            path.chmod(0o700)
        except OSError as error:
            raise ValueError(
                f"state_dir {str(path)!r} is open to other users (mode {mode:o}) and cannot be made private "
                f"({error.strerror}): chmod 700 it or choose another --state-dir"
            ) from None
        logger.warning("state_dir %s was open to other users (mode %o): tightened to 700", path, mode)


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


#: Seconds between updates of the per-number sender gauges.
NUMBER_METRICS_INTERVAL = 1.0


async def _record_number_metrics(monitor: PerformanceMonitor, senders: dict[str, BatchSender]) -> None:
    """Each number's sender figures as gauges labelled by ``phone_number_id``, for ``/metrics``."""
    while True:
        for number, sender in senders.items():
            stats = sender.stats()
            for name in ("sent", "confirmed", "failed", "retries", "throttle_events"):
                monitor.record_metric(f"whatsapp_number_{name}", float(stats[name]), phone_number_id=number)
            monitor.record_metric("whatsapp_number_rate", float(stats["rate"]), phone_number_id=number)
        await asyncio.sleep(NUMBER_METRICS_INTERVAL)
