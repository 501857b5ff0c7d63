"""The signed webhook ingress: where WhatsApp messages enter sluiceway.

``GET <path>`` answers Meta's verification handshake; ``POST <path>`` takes message and
status webhooks. ``WebhookIngress.handle`` serves them on ``sluiceway.http.HttpServer``
(what ``sluiceway run`` does: a quarter of aiohttp's cost per request, and Meta posts three
status webhooks per reply). ``asgi()`` serves the same logic as an ASGI 3 application (FastAPI,
Starlette: see :mod:`sluiceway.app.asgi` for where to mount it), and ``add_routes`` on an aiohttp
application (needs the ``sluiceway[aiohttp]`` extra); the native server is the fast path.
Each POST is checked in this order, and the first failure answers:

==========================================  ======
body larger than ``max_body_bytes``          413
no ``X-Hub-Signature-256`` header            401
signature is not HMAC-SHA256(app secret)     403
body is not JSON / not a webhook payload     400 (the reason in the body)
engine did not commit within the timeout     503 (Meta re-delivers later)
the journal failed (``JournalError``)        503 (Meta re-delivers later)
shutting down (``stop_accepting``)           503 for messages; statuses still taken
shedding load (``overloaded()`` is true)     503 for messages at once; statuses still taken
accepted (or a known re-delivery)            200
==========================================  ======

Durability and de-duplication: the answer is 200 only once every new message of the POST is
accepted by the sink, which for the runtime's ``EngineSink`` means committed to the journal
together with its ``wamid``; the sink also says which ``wamid`` it accepted before (a
re-delivery: answered 200, not run again). While the engine pushes back, the request waits
up to ``enqueue_timeout`` seconds (Meta's delivery waits with it, which slows the inflow at
its source), then answers 503: Meta re-delivers, the messages not yet accepted are accepted
then, and those already accepted are recognised as duplicates. Nothing is dropped and
nothing runs twice. ``enqueue_timeout = 0`` answers 503 as soon as the engine is full.

Load shedding: backpressure bounds how many messages wait, not how long. ``overloaded`` (a
callable, e.g. :meth:`sluiceway.app.shedding.LoadShedder.overloaded`) is asked before each
POST carrying messages; while it is true they are answered 503 at once, so the messages
already accepted keep a bounded wait (see :mod:`sluiceway.app.shedding`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
import math
import time
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import msgspec

from sluiceway import fault_points
from sluiceway.app.asgi import WebhookAsgiApp
from sluiceway.app.inbound import InboundMessage, inbound_messages
from sluiceway.app.priority import KeywordClassifier, PriorityLevel
from sluiceway.app.secret import Secret
from sluiceway.app.settings import Settings
from sluiceway.http import Request, Response
from sluiceway.whatsapp.webhooks import DECODER, SIGNATURE_HEADER, WHATSAPP_OBJECT, Status

if TYPE_CHECKING:
    from aiohttp import web

logger = logging.getLogger("sluiceway.ingress")


class Answer(msgspec.Struct):
    """The body of a 200: how many messages were new, how many were re-deliveries, how many statuses."""

    accepted: int
    duplicates: int
    statuses: int


_ANSWER = msgspec.json.Encoder()
#: The answer to a message webhook not taken now (Meta re-delivers it); one shared, read-only object.
_BUSY = Response.text(503, "engine busy: retry later", headers=types.MappingProxyType({"Retry-After": "1"}))


class MessageSink(Protocol):
    """Where accepted messages go (the engine, or a fake in tests)."""

    async def enqueue(self, payload: InboundMessage, priority: PriorityLevel, ordering_key: str) -> bool:
        """Accept ``payload`` (wait while full): True once accepted, False if ``payload.id`` was accepted before.

        Raising means not accepted (the webhook is answered 503 and re-delivered)."""


class StatusSink(Protocol):
    """Where status webhooks go (the BatchSender, or a fake in tests)."""

    def handle_status(self, status: Status) -> object:
        """Record a sent/delivered/read/failed status; may return an awaitable."""


class IngressStats(msgspec.Struct):
    """Counters since start: what came in and what was answered."""

    accepted: int = 0
    duplicates: int = 0
    statuses: int = 0
    status_errors: int = 0
    too_large: int = 0
    unsigned: int = 0
    bad_signature: int = 0
    malformed: int = 0
    backpressured: int = 0
    shed: int = 0
    verifications: int = 0
    failed_verifications: int = 0


#: Liveness probe: 200 while the process serves HTTP at all.
HEALTH_PATH = "/healthz"
#: Readiness probe: 200 while new webhooks would be taken, else 503 with the reason.
READY_PATH = "/readyz"


#: Seconds between two log lines about refused signatures: a flood of forged webhooks is one line per interval.
SIGNATURE_LOG_INTERVAL = 10.0


class ThrottledWarning:
    """Logs a WARNING at most once per ``interval`` seconds, counting the ones it held back.

    Example::

        refusals = ThrottledWarning(10.0)
        refusals.warn("webhook refused")   # logged; the next ones within 10 s only counted
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._next_at = -math.inf
        self._held_back = 0

    def warn(self, message: str) -> None:
        """Log ``message`` unless a line went out less than ``interval`` seconds ago (then count it)."""
        now = self._clock()
        if now < self._next_at:
            self._held_back += 1
            return
        if self._held_back:
            message += f" ({self._held_back} more since the last such line)"
        self._held_back = 0
        self._next_at = now + self._interval
        logger.warning(message)


class WebhookIngress:
    """Verifies, parses, de-duplicates and classifies webhooks, then hands them on.

    Example::

        ingress = WebhookIngress.from_settings(settings, sink=engine_sink, status_sink=sender)
        server = HttpServer(ingress.handle, max_body_bytes=ingress.max_body_bytes)   # the fast path
        routes = [Route("/webhook", ingress.asgi(), methods=["GET", "POST"])]     # or in Starlette/FastAPI

    De-duplication is the sink's: the runtime's ``EngineSink`` keeps each ``wamid`` in the
    journal for ``dedup_window`` seconds, across restarts.
    """

    def __init__(
        self,
        *,
        app_secret: Secret,
        sink: MessageSink,
        status_sink: StatusSink | None = None,
        verify_token: Secret | None = None,
        path: str = "/webhook",
        max_body_bytes: int = 3 * 1024 * 1024,
        enqueue_timeout: float = 5.0,
        classify: Callable[[str], PriorityLevel] | None = None,
        overloaded: Callable[[], bool] | None = None,
        not_ready: Callable[[], str | None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not app_secret:
            raise ValueError("app_secret must be set: unsigned webhooks are never accepted")
        if max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        if enqueue_timeout < 0:
            raise ValueError(f"enqueue_timeout must be >= 0, got {enqueue_timeout}")
        self._mac = hmac.new(app_secret.reveal().encode(), digestmod=hashlib.sha256)
        self._verify_token = verify_token
        self._sink = sink
        self._status_sink = status_sink
        self.path = path
        self._max_body_bytes = max_body_bytes
        self._enqueue_timeout = enqueue_timeout
        self.classify = classify or KeywordClassifier(())
        self._wall_clock = wall_clock
        self._accepting = True
        self._overloaded = overloaded
        self._not_ready = not_ready
        self.stats = IngressStats()
        self._refusal_log = ThrottledWarning(SIGNATURE_LOG_INTERVAL, clock)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sink: MessageSink,
        status_sink: StatusSink | None = None,
        overloaded: Callable[[], bool] | None = None,
        not_ready: Callable[[], str | None] | None = None,
    ) -> WebhookIngress:
        """An ingress configured from ``settings`` (which must carry ``whatsapp_app_secret``)."""
        if settings.whatsapp_app_secret is None:
            raise ValueError("whatsapp_app_secret is not set (environment variable WHATSAPP_APP_SECRET)")
        return cls(
            app_secret=settings.whatsapp_app_secret,
            verify_token=settings.whatsapp_verify_token,
            sink=sink,
            status_sink=status_sink,
            path=settings.webhook_path,
            max_body_bytes=settings.max_body_bytes,
            enqueue_timeout=settings.enqueue_timeout,
            classify=KeywordClassifier(settings.high_priority_keywords),
            overloaded=overloaded,
            not_ready=not_ready,
        )

    @property
    def max_body_bytes(self) -> int:
        """The largest body accepted; the HTTP server in front should enforce it before reading."""
        return self._max_body_bytes

    def stop_accepting(self) -> None:
        """From now on answer message webhooks with 503 (Meta re-delivers them); statuses still go through."""
        self._accepting = False

    async def handle(self, request: Request) -> Response:
        """Answer one request to the webhook (see the module docstring) or a probe; other paths get 404."""
        if request.path in (HEALTH_PATH, READY_PATH) and request.method in ("GET", "HEAD"):
            return self.probe(request.path)
        if request.path != self.path:
            return Response.text(404, f"no webhook at {request.path}")
        if request.method == "POST":
            return await self.receive(request.body, request.headers.get("x-hub-signature-256"), request.body_too_large)
        if request.method == "GET":
            return self.verify(request.query)
        return Response.text(405, f"{request.method} not allowed", headers={"Allow": "GET, POST"})

    def probe(self, path: str) -> Response:
        """``/healthz``: 200 while serving. ``/readyz``: 200 while webhooks would be taken, else 503 and why.

        Cheap enough for a load balancer to call every second: no I/O, one statistics read.
        """
        if path == HEALTH_PATH:
            return Response.text(200, "ok")
        reason = "draining" if not self._accepting else self._not_ready() if self._not_ready is not None else None
        return Response.text(503, f"not ready: {reason}") if reason else Response.text(200, "ready")

    def asgi(self) -> WebhookAsgiApp:
        """This webhook as an ASGI 3 application (FastAPI, Starlette; where to mount it: :mod:`sluiceway.app.asgi`)."""
        return WebhookAsgiApp(self)

    def add_routes(self, app: web.Application) -> None:
        """Serve the webhook at ``self.path`` on an aiohttp ``app``; needs the ``sluiceway[aiohttp]`` extra."""
        try:
            from aiohttp import web
        except ImportError:
            raise ImportError(
                "WebhookIngress.add_routes needs aiohttp: pip install 'sluiceway[aiohttp]'"
                " (or serve the ingress on sluiceway.http.HttpServer, or as ASGI with asgi())"
            ) from None

        def to_aiohttp(response: Response) -> web.Response:
            headers = {**(response.headers or {}), "Content-Type": response.content_type}
            return web.Response(status=response.status, body=response.body, headers=headers)

        async def get(request: web.Request) -> web.StreamResponse:
            return to_aiohttp(self.verify(request.query))

        async def post(request: web.Request) -> web.StreamResponse:
            body = await self._read_aiohttp_body(request)
            answer = await self.receive(body or b"", request.headers.get(SIGNATURE_HEADER), body is None)
            return to_aiohttp(answer)

        app.router.add_get(self.path, get)
        app.router.add_post(self.path, post)

    def verify(self, query: Mapping[str, str]) -> Response:
        """Meta's subscription handshake: echo ``hub.challenge`` for the right verify token."""
        token = query.get("hub.verify_token")
        if (
            query.get("hub.mode") == "subscribe"
            and token is not None
            and self._verify_token is not None
            and Secret(token) == self._verify_token
        ):
            self.stats.verifications += 1
            return Response.text(200, query.get("hub.challenge", ""))
        self.stats.failed_verifications += 1
        return Response.text(403, "verification failed")

    async def _read_aiohttp_body(self, request: web.Request) -> bytes | None:
        limit = self._max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    def _signature_ok(self, body: bytes, header: str) -> bool:
        mac = self._mac.copy()  # copying the keyed state is half the cost of keying a new HMAC
        mac.update(body)
        expected = "sha256=" + mac.hexdigest()
        return hmac.compare_digest(expected.encode(), header.strip().encode(errors="replace"))

    async def receive(self, body: bytes, signature: str | None, too_large: bool = False) -> Response:
        """Take one webhook POST: its raw ``body`` and ``X-Hub-Signature-256`` header (see the module docstring)."""
        if too_large or len(body) > self._max_body_bytes:
            self.stats.too_large += 1
            return Response.text(413, f"body larger than {self._max_body_bytes} bytes")
        if signature is None:
            self.stats.unsigned += 1
            self._refusal_log.warn(f"webhook refused (401): no {SIGNATURE_HEADER} header")
            return Response.text(401, f"missing {SIGNATURE_HEADER}")
        if not self._signature_ok(body, signature):
            self.stats.bad_signature += 1
            # Neither the secret nor the body: the line may reach a log store that others read.
            self._refusal_log.warn(
                f"webhook refused (403): {SIGNATURE_HEADER} does not match the body; is WHATSAPP_APP_SECRET"
                " the app secret of the Meta app (or emulator) that sends them?"
            )
            return Response.text(403, "signature mismatch")
        try:
            payload = DECODER.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            self.stats.malformed += 1
            return Response.text(400, f"malformed webhook: {error}")
        if payload.object != WHATSAPP_OBJECT:
            self.stats.malformed += 1
            return Response.text(400, f"malformed webhook: object is {payload.object!r}, expected {WHATSAPP_OBJECT!r}")

        # Refusing comes before building the messages: under overload most webhooks are refused.
        if payload.has_messages():
            if not self._accepting:
                await self._hand_over_statuses(payload.statuses())
                self.stats.backpressured += 1
                return _BUSY
            if self._overloaded is not None and self._overloaded():
                await self._hand_over_statuses(payload.statuses())
                self.stats.shed += 1
                return _BUSY
        messages = inbound_messages(payload, self._wall_clock())
        accepted = duplicates = 0
        for message in messages:
            fault_points.reached("before_commit")
            try:
                async with asyncio.timeout(self._enqueue_timeout):
                    new = await self._sink.enqueue(message, self.classify(message.text), message.sender)
            except TimeoutError:
                self.stats.backpressured += 1
                return self._busy(accepted, duplicates)
            except Exception:
                logger.exception("the engine refused message %s", message.id)
                self.stats.backpressured += 1
                return self._busy(accepted, duplicates)
            if new:
                accepted += 1
            else:
                duplicates += 1
        self.stats.accepted += accepted
        self.stats.duplicates += duplicates

        handled = await self._hand_over_statuses(payload.statuses())
        return Response(200, _ANSWER.encode(Answer(accepted, duplicates, handled)), content_type="application/json")

    def _busy(self, accepted: int, duplicates: int) -> Response:
        self.stats.accepted += accepted
        self.stats.duplicates += duplicates
        return _BUSY

    async def _hand_over_statuses(self, items: list[Status]) -> int:
        if self._status_sink is None:
            return 0
        for status in items:
            try:
                result = self._status_sink.handle_status(status)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # A status is advisory and Meta's re-delivery would not fix our bug: log, count, go on.
                self.stats.status_errors += 1
                logger.exception("handling status %s (%s) failed", status.id, status.status)
        self.stats.statuses += len(items)
        return len(items)
