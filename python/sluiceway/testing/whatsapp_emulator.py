"""A local WhatsApp Cloud API: the messages endpoint with its real envelopes, limits and faults.

``WhatsAppEmulator`` is a server on 127.0.0.1 (sluiceway's own ``HttpServer``) that answers
``POST /{version}/{phone_number_id}/messages`` the way the Cloud API does: a
``{"messaging_product", "contacts", "messages": [{"id": "wamid..."}]}`` body on
success and a Graph ``{"error": {...}}`` envelope on failure, HTTP 400 for the
rate-limit codes (130429 throughput, 131056 pair rate; no ``Retry-After``), 401 for
an expired token (190). It keeps its own limits, independent of sluiceway's
limiters on purpose (an emulator sharing the code under test would hide its bugs):
throughput as a token bucket of ``throughput`` per second holding one second's
worth, and the pair rate as a bucket of ``pair_limit`` per ``pair_window`` seconds
per recipient. Faults are injected at run time, and status webhooks (sent,
delivered, read, failed) can be posted back to a URL.

Every outbound kind is checked as the API checks it (the message Structs carry Meta's limits:
a malformed body is a 400 with Graph code 100 naming the problem); templates must be in the
emulator's registry (else 404, code 132001); a read receipt (``"status": "read"``) is answered
``{"success": true}``; media can be uploaded, looked up and downloaded (:mod:`.whatsapp_media`).

For a local development loop it also plays the user's side: it keeps the conversation
(``GET /_emulator/messages``: what the bot sent, and the inbound messages it posted) and
posts an inbound message of any kind to the bot's webhook (``POST /_emulator/inbound``,
:meth:`WhatsAppEmulator.post_inbound`), signed with the emulator's ``app_secret`` as Meta
signs with the app's.

Over 500 lines on purpose: it is one HTTP surface (the Cloud API's endpoints, faults and
webhooks share the token, the clock and the conversation); the parts that stand alone
live beside it (``whatsapp_media``, ``conversation``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import os
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

import msgspec
import yarl

from sluiceway.http import HttpClient, HttpError, HttpServer, Request, Response
from sluiceway.testing.conversation import ChatMessage, InboundRequest, inbound_message, readable, readable_inbound
from sluiceway.testing.whatsapp_media import DOWNLOAD_PATH, MediaRefused, MediaStore
from sluiceway.whatsapp.messages import (
    ErrorData,
    ErrorEnvelope,
    GraphError,
    OutboundMessage,
    ReadReceipt,
    ResponseContact,
    ResponseMessage,
    SendResponse,
)
from sluiceway.whatsapp.webhooks import (
    SIGNATURE_HEADER,
    Change,
    ChangeValue,
    Contact,
    Entry,
    Metadata,
    Profile,
    Status,
    StatusError,
    WebhookPayload,
    sign,
)

#: The token the emulator accepts unless told otherwise (a test value, not a secret).
DEFAULT_TOKEN = "emulator-access-token"
DEFAULT_PHONE_NUMBER_ID = "106540352242922"

_encode = msgspec.json.Encoder().encode
_decode_message = msgspec.json.Decoder(OutboundMessage).decode
_decode_receipt = msgspec.json.Decoder(ReadReceipt).decode


class _Probe(msgspec.Struct):
    """Just enough of a ``/messages`` body to tell a read receipt (``status``) from a message."""

    status: str | None = None


_decode_probe = msgspec.json.Decoder(_Probe).decode


_decode_inbound = msgspec.json.Decoder(InboundRequest).decode


class _Bucket:
    """A token bucket on the emulator's clock: ``rate`` per second, at most ``burst`` banked."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Accepted(msgspec.Struct, frozen=True):
    """One message the emulator accepted: its ``wamid``, the request body, and when (emulator clock)."""

    wamid: str
    message: OutboundMessage
    at: float
    #: The business number it was sent from.
    phone_number_id: str = ""


class WhatsAppEmulator:
    """The Cloud API's messages endpoint on 127.0.0.1, with limits, faults and status webhooks.

    Example::

        async with WhatsAppEmulator(throughput=80, pair_limit=1, pair_window=6.0) as api:
            transport = WhatsAppCloudTransport(api.phone_number_id, api.access_token, base_url=api.base_url)
            ...
            api.fail_next(3)               # three HTTP 500s
            api.set_throughput(20)         # a throughput cut: 130429 above 20/s
            api.outage(5.0)                # 503 for five seconds
            api.expire_token()             # 401 / code 190 until restore_token()
            len(api.accepted), api.answers[130429]

    Faults, in the order a request meets them: outage window, injected 5xx, hang
    (sleeps ``hang_seconds`` so the client times out), expired or wrong token (190),
    invalid body or read receipt (100), unknown template (132001), outside the 24-hour window
    (131047, only with ``enforce_window``), throughput (130429), pair rate (131056), invalid
    recipient (131026: a ``failed`` status webhook when webhooks are on, else a synchronous error).
    ``GET /_emulator/stats`` reports ``accepted`` and ``answers`` to other processes.

    The conversation: ``GET /_emulator/messages`` lists every message the bot had accepted
    and every inbound one posted, oldest first (``?to=N``: only those addressed to ``N``;
    ``?with=N``: both directions of the chat with ``N``). ``POST /_emulator/inbound`` with
    ``{"from": "15551234567", "text": "hi"}`` (or ``"type"`` and ``"content"`` for another kind)
    posts that message to ``webhook_url`` the way Meta would (see :meth:`post_inbound`).

    ``templates`` maps each approved template name to its language codes (default: Meta's
    sample ``hello_world`` in ``en_US``; :meth:`register_template` adds more). ``media`` holds
    uploaded files; :meth:`add_media` stores one for an inbound media message. Download urls
    expire ``media_url_ttl`` seconds after the look-up (Meta's last about five minutes);
    :meth:`fail_media_next` and :meth:`hang_media_next` inject faults into media calls.

    Several business numbers: ``numbers`` maps each phone number id to its access token (default:
    ``phone_number_id`` with ``access_token``). Each number has its own throughput bucket and
    pair-rate buckets, as Meta's limits are per number; ``accepted`` records the sending number.

    The 24-hour window: with ``enforce_window`` a free-form message (anything but a template) to
    a user who has not written to that number within ``window_seconds`` (wall clock) is refused
    with 131047. :meth:`post_inbound` opens the window; :meth:`open_window` opens it for tests
    that post webhooks to the bot themselves.

    ``app_secret`` signs the webhooks it posts (``X-Hub-Signature-256``); ``None`` leaves
    them unsigned. ``port`` 0 picks a free port.
    """

    def __init__(
        self,
        *,
        throughput: float = 80.0,
        pair_limit: int = 1,
        pair_window: float = 6.0,
        access_token: str = DEFAULT_TOKEN,
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        latency: float = 0.0,
        webhook_url: str | None = None,
        status_delay: float = 0.0,
        send_read: bool = False,
        app_secret: str | None = None,
        templates: Mapping[str, Iterable[str]] | None = None,
        numbers: Mapping[str, str] | None = None,
        enforce_window: bool = False,
        window_seconds: float = 24 * 3600.0,
        media_url_ttl: float = 300.0,
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be a TCP port in 0..65535, got {port}")
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        #: Each business number's access token.
        self.numbers: dict[str, str] = dict(numbers) if numbers else {phone_number_id: access_token}
        self.enforce_window = enforce_window
        self.window_seconds = window_seconds
        self.media_url_ttl = media_url_ttl
        #: When each user last wrote to each number (wall clock), by ``(phone_number_id, wa_id)``.
        self.last_inbound: dict[tuple[str, str], float] = {}
        self._media_faults: list[tuple[int, int]] = []
        self._media_hangs = 0
        self.latency = latency
        self.webhook_url = webhook_url
        self.status_delay = status_delay
        self.send_read = send_read
        self.pair_limit = pair_limit
        self.pair_window = pair_window
        self.invalid_recipients: set[str] = set()
        self.accepted: list[Accepted] = []
        #: The read receipts the bot sent, oldest first.
        self.read_receipts: list[ReadReceipt] = []
        self.templates: dict[str, set[str]] = {
            name: set(languages) for name, languages in (templates or {"hello_world": ["en_US"]}).items()
        }
        self.media = MediaStore()
        #: The conversation view, oldest first (see ``GET /_emulator/messages``).
        self.conversation: list[ChatMessage] = []
        #: How many requests got each answer: ``"ok"`` or the Graph error code.
        self.answers: collections.Counter[int | str] = collections.Counter()
        self.webhooks_posted = 0
        self.webhook_failures = 0
        self._app_secret = app_secret
        self._clock = clock
        self._wall_clock = wall_clock
        self._inbound_ids = itertools.count(1)
        self._token_valid = True
        self._fail_next: list[tuple[int, int]] = []
        self._hang_next = 0
        self.hang_seconds = 30.0
        self._outage_until = -1.0
        self._throughput_per_second = throughput
        self._throughput: dict[str, _Bucket] = {}
        self._pairs: dict[tuple[str, str], _Bucket] = {}
        self._wamids = itertools.count(1)
        self._server: HttpServer | None = None
        self._webhooks: HttpClient | None = None  # to the origin of ``webhook_url``
        self._webhooks_for = ""  # the ``webhook_url`` that client and path were made for
        self._webhooks_path = ""
        self._background: set[asyncio.Task[None]] = set()
        self.port = port

    # --- fault injection ---------------------------------------------------------------

    def set_throughput(self, per_second: float) -> None:
        """Change the throughput limit now (e.g. a cut to test adaptation)."""
        self._throughput_per_second = per_second
        self._throughput.clear()

    def fail_next(self, n: int = 1, status: int = 500, code: int = 131000) -> None:
        """Answer the next ``n`` requests with HTTP ``status`` and Graph ``code``."""
        self._fail_next.extend([(status, code)] * n)

    def hang_next(self, n: int = 1, seconds: float | None = None) -> None:
        """Hold the next ``n`` requests ``seconds`` (default ``hang_seconds``) before answering: client timeouts."""
        if seconds is not None:
            self.hang_seconds = seconds
        self._hang_next += n

    def fail_media_next(self, n: int = 1, status: int = 500, code: int = 131000) -> None:
        """Answer the next ``n`` media calls (look-up, download, upload) with HTTP ``status`` and Graph ``code``."""
        self._media_faults.extend([(status, code)] * n)

    def hang_media_next(self, n: int = 1, seconds: float | None = None) -> None:
        """Hold the next ``n`` media calls ``seconds`` (default ``hang_seconds``): client timeouts."""
        if seconds is not None:
            self.hang_seconds = seconds
        self._media_hangs += n

    def open_window(self, wa_id: str, phone_number_id: str | None = None, at: float | None = None) -> None:
        """Record that ``wa_id`` wrote to the number at ``at`` (default now, wall clock): its window opens."""
        self.last_inbound[(phone_number_id or self.phone_number_id, wa_id.removeprefix("+"))] = (
            self._wall_clock() if at is None else at
        )

    def outage(self, seconds: float) -> None:
        """Answer every request with 503 (code 2, service unavailable) for ``seconds``."""
        self._outage_until = self._clock() + seconds

    def expire_token(self) -> None:
        """Reject the access token (HTTP 401, code 190) until :meth:`restore_token`."""
        self._token_valid = False

    def restore_token(self) -> None:
        self._token_valid = True

    def register_template(self, name: str, *languages: str) -> None:
        """Approve template ``name`` in ``languages`` (codes such as ``en_US``)."""
        if not name or not languages:
            raise ValueError("a template needs a name and at least one language code")
        self.templates.setdefault(name, set()).update(languages)

    def add_media(self, data: bytes, mime_type: str) -> str:
        """Store a file as if uploaded and return its media id (e.g. for an inbound image)."""
        return self.media.add(data, mime_type).id

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, to pass as a transport's ``base_url``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = HttpServer(self._route)
        await self._server.start("127.0.0.1", self.port)
        self.port = self._server.port

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._webhooks is not None:
            await self._webhooks.aclose()
        if self._server is not None:
            await self._server.stop(timeout=0.0)  # a hung request (``hang_next``) must not hold up the test

    async def __aenter__(self) -> WhatsAppEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- the endpoint ---------------------------------------------------------------------

    async def _route(self, request: Request) -> Response:
        parts = request.path.split("/")  # "", version, phone number id, "messages"
        authorization = request.headers.get("authorization", "")
        if request.method == "POST" and len(parts) == 4 and parts[3] == "messages":
            return await self._handle(parts[2], authorization, request.body)
        if request.method == "GET" and request.path == "/_emulator/stats":
            return self._stats()
        if request.method == "GET" and request.path == "/_emulator/messages":
            return self._messages(request.query)
        if request.method == "POST" and request.path == "/_emulator/inbound":
            return await self._inbound(request.body)
        if request.method == "POST" and len(parts) == 4 and parts[3] == "media":
            content_type = request.headers.get("content-type", "")
            return await self._media(authorization, parts[2], lambda: self.media.upload(content_type, request.body))
        if request.method == "GET" and request.path == DOWNLOAD_PATH:
            return await self._media(authorization, None, lambda: self._download(request.query))
        if request.method == "GET" and len(parts) == 3 and parts[2]:
            expires = self._clock() + self.media_url_ttl
            return await self._media(authorization, None, lambda: self.media.describe(parts[2], self.base_url, expires))
        return self._error(404, 2500, f"Unknown path components: {request.path}", "OAuthException")

    async def _handle(self, phone_number_id: str, authorization: str, body: bytes) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        now = self._clock()
        if now < self._outage_until:
            return self._error(503, 2, "Service temporarily unavailable", "OAuthException")
        if self._fail_next:
            status, code = self._fail_next.pop(0)
            return self._error(status, code, "Something went wrong", "OAuthException")
        if self._hang_next:
            self._hang_next -= 1
            await asyncio.sleep(self.hang_seconds)
        refused = self._check_caller(authorization, phone_number_id)
        if refused is not None:
            return refused
        try:
            if _decode_probe(body).status is not None:
                return self._mark_read(_decode_receipt(body))
            message = _decode_message(body)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            return self._error(400, 100, "(#100) Invalid parameter", "OAuthException", details=str(exc))
        template = message.template
        if template is not None and template.language.code not in self.templates.get(template.name, ()):
            return self._error(
                404,
                132001,
                "(#132001) Template name does not exist in the translation",
                "OAuthException",
                details=f"template name ({template.name}) does not exist in {template.language.code}",
            )
        if (
            self.enforce_window
            and message.type != "template"
            and self._wall_clock() - self.last_inbound.get((phone_number_id, message.to.lstrip("+")), -1e18)
            > self.window_seconds
        ):
            return self._error(
                400,
                131047,
                "(#131047) Re-engagement message",
                "OAuthException",
                details="Message failed to send because more than 24 hours have passed since the customer last "
                "replied to this number.",
            )
        throughput = self._throughput.get(phone_number_id)
        if throughput is None:
            rate = self._throughput_per_second
            throughput = self._throughput[phone_number_id] = _Bucket(rate, rate, now)
        if not throughput.take(now):
            return self._error(
                400,
                130429,
                "(#130429) Rate limit hit",
                "OAuthException",
                details="Cloud API message throughput has been reached.",
            )
        pair = self._pairs.get((phone_number_id, message.to))
        if pair is None:
            pair = _Bucket(self.pair_limit / self.pair_window, self.pair_limit, now)
            self._pairs[(phone_number_id, message.to)] = pair
        if not pair.take(now):
            return self._error(
                400,
                131056,
                "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                "OAuthException",
                details="Message failed to send because there were too many messages sent from this phone number "
                "to the same phone number in a short period of time.",
            )
        invalid = message.to in self.invalid_recipients
        if invalid and self.webhook_url is None:
            return self._error(400, 131026, "Message undeliverable", "OAuthException")
        wamid = self._new_wamid(message.to)
        self.accepted.append(Accepted(wamid, message, now, phone_number_id))
        text, buttons = readable(message)
        reply_to = message.context.message_id if message.context is not None else None
        self.conversation.append(
            ChatMessage(
                "outbound",
                wamid,
                phone_number_id,
                message.to,
                message.type,
                text,
                self._wall_clock(),
                buttons,
                reply_to,
            )
        )
        self.answers["ok"] += 1
        if self.webhook_url is not None:
            kinds = ["sent", "failed"] if invalid else ["sent", "delivered", *(["read"] if self.send_read else [])]
            self._spawn(self._post_statuses(wamid, message.to, kinds, phone_number_id))
        answer = SendResponse(
            messages=[ResponseMessage(wamid, "accepted" if message.type == "template" else None)],
            contacts=[ResponseContact(message.to, message.to.lstrip("+"))],
        )
        return Response(200, _encode(answer), content_type="application/json")

    def _check_caller(self, authorization: str, phone_number_id: str | None = None) -> Response | None:
        """The error for a bad token (401, 190) or an unknown business number (400, 100); ``None`` if both are fine."""
        tokens = self.numbers.values() if phone_number_id is None else [self.numbers.get(phone_number_id)]
        if phone_number_id is not None and phone_number_id not in self.numbers:
            return self._error(400, 100, "Unsupported post request. Object does not exist.", "GraphMethodException")
        if not self._token_valid or authorization not in {f"Bearer {token}" for token in tokens}:
            return self._error(
                401, 190, "Error validating access token: Session has expired.", "OAuthException", subcode=463
            )
        return None

    def _mark_read(self, receipt: ReadReceipt) -> Response:
        self.read_receipts.append(receipt)
        self.answers["ok"] += 1
        return Response(200, _encode({"success": True}), content_type="application/json")

    def _download(self, query: dict[str, str]) -> Response:
        """A download url's ``GET``: 404 once the url has expired, as Meta's signed urls do."""
        try:
            expired = self._clock() > float(query.get("exp", "inf"))
        except ValueError:
            expired = True
        if expired:
            return self._error(404, 100, "URL signature expired", "OAuthException")
        return self.media.download(query.get("mid", ""))

    async def _media(self, authorization: str, phone_number_id: str | None, call: Callable[[], Response]) -> Response:
        """A media call (upload, look-up, download) after faults and the token check; a refusal is 400, code 100."""
        if self._media_faults:
            status, code = self._media_faults.pop(0)
            return self._error(status, code, "Something went wrong", "OAuthException")
        if self._media_hangs:
            self._media_hangs -= 1
            await asyncio.sleep(self.hang_seconds)
        refused = self._check_caller(authorization, phone_number_id)
        if refused is not None:
            return refused
        try:
            return call()
        except MediaRefused as exc:
            return self._error(400, 100, exc.message, "OAuthException", details=exc.details)

    def _stats(self) -> Response:
        """``GET /_emulator/stats``: the answers so far and how many messages were accepted (for other processes)."""
        body = {"accepted": len(self.accepted), "answers": {str(k): v for k, v in self.answers.items()}}
        return Response(200, _encode(body), content_type="application/json")

    def messages(self, *, to: str | None = None, with_: str | None = None) -> list[ChatMessage]:
        """The conversation, oldest first: all, only messages addressed ``to`` someone, or the chat ``with_`` one."""
        chosen = self.conversation
        if to is not None:
            chosen = [m for m in chosen if m.to == to]
        if with_ is not None:
            chosen = [m for m in chosen if with_ in (m.to, m.from_)]
        return list(chosen)

    def _messages(self, query: dict[str, str]) -> Response:
        unknown = set(query) - {"to", "with"}
        if unknown:
            return self._error(400, 100, f"(#100) Unknown parameter(s): {', '.join(sorted(unknown))}", "OAuthException")
        chosen = self.messages(to=query.get("to"), with_=query.get("with"))
        return Response(200, _encode({"messages": chosen}), content_type="application/json")

    async def post_inbound(
        self,
        sender: str,
        text: str = "",
        name: str = "Test User",
        *,
        kind: str = "text",
        content: Any = None,
        reply_to: str | None = None,
        phone_number_id: str | None = None,
    ) -> tuple[str, int]:
        """Post a message from ``sender`` (digits, an optional leading ``+``) to ``webhook_url`` as Meta would.

        A text by default; another ``kind`` (image, location, contacts, button, interactive,
        reaction...) takes ``content``, the kind's object in Meta's webhook shape, e.g.
        ``kind="location", content={"latitude": 51.5, "longitude": -0.12}`` or, for media,
        ``{"id": api.add_media(data, "image/jpeg"), "mime_type": "image/jpeg"}``. ``reply_to``
        quotes an earlier message (``context.id``). Returns the message's ``wamid`` and the
        bot's HTTP status. ``phone_number_id`` picks the business number it is sent to (default
        ``self.phone_number_id``) and opens that number's 24-hour window. ``ValueError`` if there
        is no ``webhook_url``, the sender is not a phone number, a text is empty, or the kind or
        its content is not Meta's.
        """
        if self.webhook_url is None:
            raise ValueError("no webhook_url: start the emulator with the bot's webhook URL to post messages to it")
        wa_id = sender.removeprefix("+")
        if not wa_id.isdigit():
            raise ValueError(f"sender must be a phone number in digits (e.g. 15551234567), got {sender!r}")
        number = phone_number_id or self.phone_number_id
        if number not in self.numbers:
            raise ValueError(f"unknown business number {number!r}; the emulator has {sorted(self.numbers)}")
        wamid = "wamid." + base64.b64encode(f"inbound-{wa_id}-{next(self._inbound_ids):012d}".encode()).decode()
        now = self._wall_clock()
        message = inbound_message(wa_id, wamid, int(now), kind, text, content, reply_to, number)
        self.last_inbound[(number, wa_id)] = now
        value = ChangeValue(
            "whatsapp",
            Metadata("15550000000", number),
            contacts=[Contact(wa_id, Profile(name))],
            messages=[message],
        )
        self.conversation.append(
            ChatMessage("inbound", wamid, wa_id, number, kind, readable_inbound(message), now, reply_to=reply_to)
        )
        status = await self._post_webhook(_encode(self._envelope(value)))
        return wamid, status

    async def _inbound(self, body: bytes) -> Response:
        try:
            request = _decode_inbound(body)
            wamid, status = await self.post_inbound(
                request.from_,
                request.text,
                request.name,
                kind=request.type,
                content=request.content,
                reply_to=request.reply_to,
                phone_number_id=request.to,
            )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            return self._error(400, 100, f"(#100) Invalid parameter: {exc}", "OAuthException")
        return Response(200, _encode({"wamid": wamid, "webhook_status": status}), content_type="application/json")

    def _error(
        self, status: int, code: int, message: str, kind: str, *, details: str | None = None, subcode: int | None = None
    ) -> Response:
        self.answers[code] += 1
        error = GraphError(
            message=message,
            code=code,
            type=kind,
            error_subcode=subcode,
            error_data=ErrorData("whatsapp", details) if details else None,
            fbtrace_id=base64.b64encode(os.urandom(9)).decode(),
        )
        return Response(status, _encode(ErrorEnvelope(error)), content_type="application/json")

    def _new_wamid(self, to: str) -> str:
        raw = f"{to}\x15\x02\x00\x11\x18{next(self._wamids):020d}".encode()
        return "wamid." + base64.b64encode(raw).decode()

    # --- status webhooks ------------------------------------------------------------------

    def _spawn(self, coro: collections.abc.Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _webhook_target(self) -> tuple[HttpClient, str]:
        """The client for ``webhook_url``'s origin and its path, made again only when the URL changes."""
        assert self.webhook_url is not None
        if self._webhooks is None or self._webhooks_for != self.webhook_url:
            if self._webhooks is not None:
                self._spawn(self._webhooks.aclose())
            url = yarl.URL(self.webhook_url)
            self._webhooks = HttpClient(str(url.origin()), timeout=10.0)
            self._webhooks_for, self._webhooks_path = self.webhook_url, url.raw_path_qs
        return self._webhooks, self._webhooks_path

    async def _post_statuses(self, wamid: str, to: str, kinds: list[str], phone_number_id: str) -> None:
        for kind in kinds:
            if self.status_delay:
                await asyncio.sleep(self.status_delay)
            if self.webhook_url is None:
                return
            errors = [StatusError(131026, "Message undeliverable", "Message undeliverable")] if kind == "failed" else []
            status = Status(id=wamid, status=kind, timestamp=str(int(time.time())), recipient_id=to, errors=errors)
            await self._post_webhook(_encode(self.webhook_body([status], phone_number_id)))

    async def _post_webhook(self, body: bytes) -> int:
        """POST ``body`` to ``webhook_url``, signed if there is an app secret; the HTTP status, 0 if none came."""
        headers = {"content-type": "application/json"}
        if self._app_secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self._app_secret.encode())
        client, path = self._webhook_target()
        try:
            status = (await client.post(path, body, headers=headers)).status
        except HttpError:
            status = 0
        if 0 < status < 300:
            self.webhooks_posted += 1
        else:
            self.webhook_failures += 1
        return status

    def webhook_body(self, statuses: list[Status], phone_number_id: str | None = None) -> WebhookPayload:
        """The ``messages`` webhook envelope the Cloud API wraps ``statuses`` (of a number's messages) in."""
        metadata = Metadata("15550000000", phone_number_id or self.phone_number_id)
        return self._envelope(ChangeValue("whatsapp", metadata, statuses=statuses))

    @staticmethod
    def _envelope(value: ChangeValue) -> WebhookPayload:
        return WebhookPayload("whatsapp_business_account", [Entry("102290129340398", [Change("messages", value)])])
