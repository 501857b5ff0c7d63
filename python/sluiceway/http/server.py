"""``HttpServer``: an HTTP/1.1 server on asyncio protocols and httptools, for the webhook ingress.

Meta posts three status webhooks for every reply a bot sends, plus one per inbound message, so
at the Cloud API's 1,000 messages/s tier the ingress answers ~4,000 requests/s. On uvloop on the
2-core benchmark machine an ``aiohttp.web`` application costs ~105 µs of CPU per request before
any handler code; this server costs ~30 µs: requests are parsed by ``httptools`` (llhttp)
straight into a ``Request`` and each response leaves in one ``write``. It keeps what a webhook
endpoint needs: keep-alive, pipelined requests answered in order, chunked request bodies, a
body size limit enforced before the body is read, ``Expect: 100-continue``, idle timeouts,
and a graceful stop that lets handlers in progress finish.

The port faces the internet, so every resource a client can hold is bounded (constructor
settings, defaults in brackets):

- the request target, ``max_url_bytes`` [8 KiB, at most 16 KiB]: 414;
- the headers, ``max_header_bytes`` [16 KiB] and ``max_headers`` [100]: 431 (a header line that
  never ends is cut off at the sum of both byte limits);
- the body, ``max_body_bytes`` [3 MiB]: the handler sees ``body_too_large`` (413 from the ingress),
  decided from Content-Length before any of it is read;
- time: the headers must arrive within ``header_timeout`` [10 s] of the request's first byte and
  the body within ``body_timeout`` [30 s] of the headers (or of ``100 Continue``), else 408;
  a connection silent for ``keepalive_timeout`` [75 s] is closed, mid-request or not;
- connections, ``max_connections`` [4,096]: beyond it a new one gets a 503 and is closed at once;
- requests queued behind the one being handled, ``max_pipelined`` [16]: reading pauses at the
  limit, and more arriving in a single read are answered 503 after those owed, then the
  connection closes. Reading also pauses while the client does not read its answers.

llhttp is used strictly: Content-Length with Transfer-Encoding, two Content-Lengths, a bad chunk
size, bare LF line ends or NUL bytes get a 400 and the connection is closed, so no request can be
read two ways (request smuggling). Answers to HEAD carry no body; a response header name or value
with CR, LF or NUL is refused by ``Response`` (``ValueError``) and, if set later, logged and
answered 500 instead of being written. ``100 Continue`` is sent only once the answers owed to
earlier pipelined requests are written.

A handler that raises gets a 500 (logged); a malformed request gets a 400 and the connection
is closed. Handlers are not cancelled when a client goes away: the ingress must finish
handing an accepted message to the engine either way.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, cast

import httptools

from sluiceway.errors import SluicewayError
from sluiceway.http.messages import INTERNAL_ERROR, HttpDate, encode_response
from sluiceway.http.messages import Request as Request
from sluiceway.http.messages import Response as Response

logger = logging.getLogger("sluiceway.http")

#: Seconds a connection may sit without receiving a byte (between or within requests) before it is closed.
DEFAULT_KEEPALIVE_TIMEOUT: Final = 75.0
#: Seconds from a request's first byte to the end of its headers.
DEFAULT_HEADER_TIMEOUT: Final = 10.0
#: Seconds from the end of a request's headers (or the ``100 Continue``) to the end of its body.
DEFAULT_BODY_TIMEOUT: Final = 30.0
#: Bytes of header names and values per request (the request line not counted).
DEFAULT_MAX_HEADER_BYTES: Final = 16 * 1024
#: Header lines per request.
DEFAULT_MAX_HEADERS: Final = 100
#: Bytes of the request target (path and query).
DEFAULT_MAX_URL_BYTES: Final = 8 * 1024
#: The most ``max_url_bytes`` may be: longer targets are not HTTP that anyone legitimate sends.
MAX_URL_BYTES_CEILING: Final = 16 * 1024
#: Client connections open at once; keep it below the process's open-file limit (``ulimit -n``).
DEFAULT_MAX_CONNECTIONS: Final = 4096
#: Requests read ahead of the one being handled before the server stops reading the socket.
MAX_PIPELINED: Final = 16
#: Seconds between sweeps for idle connections.
SWEEP_INTERVAL: Final = 1.0
#: Seconds a refused client's bytes are still read (and dropped) after its answer, so that closing
#: on unread bytes does not reset the connection and destroy the answer before it is read.
LINGER_TIMEOUT: Final = 2.0

_SERVICE_UNAVAILABLE: Final = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
Handler = Callable[[Request], Awaitable[Response]]


class _Refusal(SluicewayError):
    """Raised from a parser callback to stop parsing; ``status`` is the answer owed, or None if already queued."""

    def __init__(self, status: int | None, reason: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_INF: Final = float("inf")
_Queued = tuple[Request | Response, bool]


class _Connection(asyncio.Protocol):
    """One client connection: parses requests as bytes arrive and answers them in order.

    Deadlines are kept as plain numbers that the server's sweep compares with its clock once
    a second, so a request costs no timer: ``deadline`` is when the request being read must
    be complete (headers, then body), infinity between requests.
    """

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        # What the request's headers may still use; counted down, so one test per header line.
        self._header_room = server.max_header_bytes
        self._headers_left = server.max_headers
        # Bytes received while a request's head (or a chunk header, or the trailers) is incomplete:
        # httptools buffers a header until its line ends, so the callbacks alone cannot bound one
        # that never ends.
        self._in_head = True
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._size = 0
        self._too_large = False
        self._pending: collections.deque[_Queued] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._reading = True
        self._write_paused = False
        self._discarding = False
        self._continue_owed = False
        self._peer_done = False
        self.last_active = server.clock()
        self.deadline = _INF

    @property
    def busy(self) -> bool:
        """A request is being handled or waits for its turn (one being read does not count)."""
        return self._task is not None

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server
        if len(server._connections) >= server.max_connections:
            # Refused before anything is read, so those already served keep their share.
            self._discarding = True
            transport.write(_SERVICE_UNAVAILABLE)  # type: ignore[attr-defined]
            transport.close()
            return
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        server._connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = self._server.clock()
        if self._discarding:
            return
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserCallbackError as error:
            refusal = error.__context__
            if isinstance(refusal, _Refusal):
                self._discarding = True
                if refusal.status is not None:
                    self._refuse(refusal.status, refusal.reason)
            else:
                logger.error("request parsing failed", exc_info=refusal)
                self._refuse(500, "internal server error")
        except httptools.HttpParserError as error:
            self._refuse(400, f"malformed request: {error}")
        else:
            if self._in_head and self._head_bytes > self._server.max_head_bytes:
                self._refuse(431, f"request head, chunk header or trailers over {self._server.max_head_bytes} bytes")

    def eof_received(self) -> bool | None:
        # A client may half-close after writing its last request: the answers owed still go out.
        if self._task is None:
            return None  # nothing owed (or a lingering refusal the client has read): the transport closes
        self._discarding = self._peer_done = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._server._connections.discard(self)

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its requests until it does.
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        wanted = not self._write_paused and len(self._pending) < self._server.max_pipelined
        if wanted != self._reading and self._transport is not None:
            if wanted:
                self._transport.resume_reading()
            else:
                self._transport.pause_reading()
            self._reading = wanted

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size, self._too_large = b"", {}, [], 0, False
        self._header_room, self._headers_left = self._server.max_header_bytes, self._server.max_headers
        self.deadline = self.last_active + self._server.header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._server.max_url_bytes:
            raise _Refusal(414, f"request target over {self._server.max_url_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_room -= len(name) + len(value)
        self._headers_left -= 1
        if self._header_room < 0 or self._headers_left < 0:
            server = self._server
            if self._headers_left < 0:
                raise _Refusal(431, f"more than {server.max_headers} request headers")
            raise _Refusal(431, f"request headers over {server.max_header_bytes} bytes")
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        # A repeated header's values are joined (RFC 9110 5.3) rather than the last one winning,
        # so a second Host or signature cannot quietly replace the first.
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self.deadline = self.last_active + self._server.body_timeout
        if "upgrade" in self._headers and "upgrade" in self._headers.get("connection", "").lower():
            # Refused before the handler sees it: llhttp would hand over the connection's bytes.
            raise _Refusal(400, "protocol upgrades are not supported")
        length = self._headers.get("content-length")
        if length is not None and int(length) > self._server.max_body_bytes:  # llhttp checked it is digits
            # Answer now rather than after reading a body that will be thrown away; the
            # connection closes after the answer, so the rest of the bytes need no parsing.
            self._dispatch(self._request(b"", too_large=True), keep_alive=False)
            raise _Refusal(None)
        if self._headers.get("expect", "").lower() == "100-continue":
            if self._task is None:
                self._send_continue()
            else:
                # Answers to earlier requests are still owed: the 100 must not overtake them.
                self._continue_owed = True

    def on_chunk_header(self) -> None:
        # What follows until on_body is a chunk-size line or, after the last chunk, the trailers.
        self._in_head = True
        self._head_bytes = 0

    def on_body(self, body: bytes) -> None:
        self._in_head = False
        self._size += len(body)
        if self._size > self._server.max_body_bytes:
            self._body = []
            self._dispatch(self._request(b"", too_large=True), keep_alive=False)
            raise _Refusal(None)
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = self._request(b"".join(self._body), too_large=False)
        self._in_head = True
        self.deadline = _INF
        self._dispatch(request, keep_alive=self._parser.should_keep_alive())

    def _request(self, body: bytes, *, too_large: bool) -> Request:
        url = httptools.parse_url(self._url) if self._url else None
        request = Request(
            self._parser.get_method().decode("ascii"),
            url.path.decode("latin-1") if url is not None and url.path else "/",
            url.query.decode("latin-1") if url is not None and url.query else "",
            self._headers,
            body,
            too_large,
        )
        self._url, self._headers, self._body = b"", {}, []
        return request

    def _dispatch(self, item: Request | Response, keep_alive: bool) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._answer(item, keep_alive))
            self._server._tasks.add(self._task)
        elif len(self._pending) < self._server.max_pipelined:
            self._pending.append((item, keep_alive))
            if len(self._pending) >= self._server.max_pipelined:
                self._update_reading()
        else:
            # More requests than the queue holds arrived in one read: they are refused, not kept.
            raise _Refusal(503, f"more than {self._server.max_pipelined} pipelined requests")

    def _send_continue(self) -> None:
        self._continue_owed = False
        if self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            # The client waited for this before sending the body: its time starts now.
            self.deadline = self._server.clock() + self._server.body_timeout

    # -- answering ------------------------------------------------------------------------

    async def _answer(self, item: Request | Response, keep_alive: bool) -> None:
        try:
            while True:
                if isinstance(item, Request):
                    try:
                        response = await self._server.handler(item)
                    except Exception:
                        logger.exception("handler failed for %s %s", item.method, item.path)
                        response = INTERNAL_ERROR
                    head_only = item.method == "HEAD"
                else:
                    response, head_only = item, False
                keep_alive = keep_alive and not self._server.stopping and not (self._peer_done and not self._pending)
                self._write(response, keep_alive, head_only, item)
                if not keep_alive:
                    self._finish()
                    return
                if not self._pending:
                    if self._continue_owed:
                        self._send_continue()
                    return
                item, keep_alive = self._pending.popleft()
                if not self._reading:
                    self._update_reading()
        finally:
            self._server._tasks.discard(cast(asyncio.Task[None], self._task))
            self._task = None
            self.last_active = self._server.clock()

    def _write(self, response: Response, keep_alive: bool, head_only: bool, item: Request | Response) -> None:
        if self._transport is None:
            return  # the client left; the handler's work is done regardless
        try:
            data = encode_response(response, keep_alive, self._server.date.line(), head_only)
        except Exception:
            # Never write a response that could split into two: answer 500 instead.
            what = f"{item.method} {item.path}" if isinstance(item, Request) else "a refusal"
            logger.exception("handler returned an invalid response for %s", what)
            data = encode_response(INTERNAL_ERROR, keep_alive, self._server.date.line(), head_only)
        self._transport.write(data)

    def _refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` after any answers still owed, then close; nothing more is read."""
        self._discarding = True
        response = Response.text(status, reason)
        if self._task is None:
            self._write(response, False, False, response)
            self._finish()
        else:
            self._pending.append((response, False))

    def _finish(self) -> None:
        """Close after the last answer; a client cut off mid-stream gets a half-close and ``LINGER_TIMEOUT``."""
        if self._discarding and not self._peer_done and self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()
            self.deadline = self._server.clock() + LINGER_TIMEOUT  # the sweep closes it then, if the client has not
        else:
            self.close()

    def expire(self) -> None:
        """Close for lack of progress: a 408 if a request was being read, silently between requests."""
        if self.deadline != _INF and not self._discarding:
            self._refuse(408, "request not received in time")
        else:
            self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._server._connections.discard(self)


class HttpServer:
    """Serves ``handler`` over HTTP/1.1 on ``host``:``port`` (127.0.0.1 and a free port by default).

    Example::

        async def handler(request: Request) -> Response:
            return Response.text(200, f"you sent {len(request.body)} bytes")

        server = HttpServer(handler, max_body_bytes=1 << 20)
        await server.start()
        print(server.url)          # http://127.0.0.1:<port>
        ...
        await server.stop()

    Warning: no TLS (put it behind a TLS-terminating proxy, as Meta's webhooks require https),
    no HTTP/2, and bodies are buffered whole (up to ``max_body_bytes``).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_body_bytes: int = 3 * 1024 * 1024,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_url_bytes: int = DEFAULT_MAX_URL_BYTES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_pipelined: int = MAX_PIPELINED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (
            ("max_body_bytes", max_body_bytes),
            ("keepalive_timeout", keepalive_timeout),
            ("header_timeout", header_timeout),
            ("body_timeout", body_timeout),
            ("max_header_bytes", max_header_bytes),
            ("max_headers", max_headers),
            ("max_url_bytes", max_url_bytes),
            ("max_connections", max_connections),
            ("max_pipelined", max_pipelined),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if max_url_bytes > MAX_URL_BYTES_CEILING:
            raise ValueError(f"max_url_bytes must be at most {MAX_URL_BYTES_CEILING}, got {max_url_bytes}")
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keepalive_timeout = keepalive_timeout
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_url_bytes = max_url_bytes
        #: An unfinished head is cut off here: the target, the headers, and their separators.
        self.max_head_bytes = max_url_bytes + max_header_bytes + 4 * max_headers + 64
        self.max_connections = max_connections
        self.max_pipelined = max_pipelined
        self.clock = clock
        self.date = HttpDate()
        self.stopping = False
        self.host = ""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``http://host:port`` once started."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return len(self._connections)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host``:``port`` (0: a free port; see ``self.port``)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def _sweep(self) -> None:
        """Expire connections past a deadline or idle (one timer for all, not one per request)."""
        interval = min(SWEEP_INTERVAL, self.keepalive_timeout, self.header_timeout, self.body_timeout)
        while True:
            await asyncio.sleep(interval)
            now = self.clock()
            cutoff = now - self.keepalive_timeout
            # A connection whose handler is working is left alone: that time is the server's, not the client's.
            for connection in [
                c for c in self._connections if not c.busy and (c.deadline <= now or c.last_active < cutoff)
            ]:
                connection.expire()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop listening, let handlers in progress answer for up to ``timeout`` s, cancel the rest, close every
        connection.
        """
        self.stopping = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in [c for c in self._connections if not c.busy]:
            connection.close()
        if self._tasks and timeout > 0:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        if self._tasks:
            late = list(self._tasks)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for connection in list(self._connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
