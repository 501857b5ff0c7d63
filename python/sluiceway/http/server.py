"""``HttpServer``: an HTTP/1.1 server on asyncio protocols and httptools, for the webhook ingress.

Meta posts three status webhooks for every reply a bot sends, plus one per inbound message, so
at the Cloud API's 1,000 messages/s tier the ingress answers ~4,000 requests/s. On uvloop on the
2-core benchmark machine an ``aiohttp.web`` application costs ~105 µs of CPU per request before
any handler code; this server costs ~33 µs: requests are parsed by ``httptools`` (llhttp)
straight into a ``Request`` and each response leaves in one ``write``. It keeps what a webhook
endpoint needs: keep-alive, pipelined requests answered in order, chunked request bodies, a
body size limit enforced before the body is read, ``Expect: 100-continue``, idle timeouts,
and a graceful stop that lets handlers in progress finish.

A handler that raises gets a 500 (logged); a malformed request gets a 400 and the connection
is closed. Handlers are not cancelled when a client goes away: the ingress must finish
handing an accepted message to the engine either way.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import http
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, cast
from urllib.parse import parse_qsl

import httptools

logger = logging.getLogger("sluiceway.http")

#: Seconds a connection may sit without a request in progress before the server closes it.
DEFAULT_KEEPALIVE_TIMEOUT: Final = 75.0
#: Requests read ahead of the one being handled before the server stops reading the socket.
MAX_PIPELINED: Final = 16
#: Seconds between sweeps for idle connections.
SWEEP_INTERVAL: Final = 1.0

_REASONS: Final = {status.value: status.phrase.encode("latin-1") for status in http.HTTPStatus}


class Request:
    """One request: ``method``, ``path`` (percent-encoded, no query), ``query_string``, lower-cased ``headers``, ``body``.

    ``body_too_large`` is true when the body exceeded the server's ``max_body_bytes``: it was
    not read (``body`` is empty) and the connection closes after the response.
    """

    __slots__ = ("body", "body_too_large", "headers", "method", "path", "query_string")

    def __init__(
        self, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes, body_too_large: bool = False
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.body_too_large = body_too_large

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters (the last value of a repeated name wins)."""
        return dict(parse_qsl(self.query_string, keep_blank_values=True))


class Response:
    """What a handler answers: ``status``, ``body`` and its ``content_type``, and extra ``headers``."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers

    @classmethod
    def text(cls, status: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
        """A ``text/plain`` response."""
        return cls(status, text.encode(), headers=headers)


Handler = Callable[[Request], Awaitable[Response]]


class _HttpDate:
    """The ``Date`` header value, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"Date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._line


class _Connection(asyncio.Protocol):
    """One client connection: parses requests as bytes arrive and answers them in order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._too_large = False
        self._pending: collections.deque[tuple[Request, bool]] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._reading = True
        self._discarding = False
        self.last_active = server.clock()

    @property
    def busy(self) -> bool:
        """A request is being read, queued or handled."""
        return self._task is not None or bool(self._url)

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        self._server._connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = self._server.clock()
        if self._discarding:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as error:
            self._refuse(400, f"malformed request: {error}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._server._connections.discard(self)

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size, self._too_large = b"", {}, [], 0, False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._server.max_body_bytes:
            # Answer now rather than after reading a body that will be thrown away; the
            # connection closes after the answer, so the rest of the bytes need no parsing.
            self._discarding = True
            self._dispatch(self._request(b"", too_large=True), keep_alive=False)
        elif self._headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._too_large or self._discarding:
            return
        self._size += len(body)
        if self._size > self._server.max_body_bytes:
            self._too_large = True
            self._body = []
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._discarding:
            return
        request = self._request(b"".join(self._body), too_large=self._too_large)
        self._dispatch(request, keep_alive=self._parser.should_keep_alive() and not self._too_large)

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

    def _dispatch(self, request: Request, keep_alive: bool) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._answer(request, keep_alive))
            self._server._tasks.add(self._task)
        else:
            self._pending.append((request, keep_alive))
            if len(self._pending) >= MAX_PIPELINED and self._transport is not None:
                self._transport.pause_reading()
                self._reading = False

    # -- answering ------------------------------------------------------------------------

    async def _answer(self, request: Request, keep_alive: bool) -> None:
        try:
            while True:
                try:
                    response = await self._server.handler(request)
                except Exception:
                    logger.exception("handler failed for %s %s", request.method, request.path)
                    response = Response.text(500, "internal server error")
                keep_alive = keep_alive and not self._server.stopping
                self._write(response, keep_alive)
                if not keep_alive:
                    self.close()
                    return
                if not self._pending:
                    return
                request, keep_alive = self._pending.popleft()
                if not self._reading and self._transport is not None:
                    self._transport.resume_reading()
                    self._reading = True
        finally:
            self._server._tasks.discard(cast(asyncio.Task[None], self._task))
            self._task = None
            self.last_active = self._server.clock()

    def _write(self, response: Response, keep_alive: bool) -> None:
        if self._transport is None:
            return  # the client left; the handler's work is done regardless
        status = response.status
        extra = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in response.headers.items()) if response.headers else b""
        self._transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s%s\r\n%s"
            % (
                status,
                _REASONS.get(status, b"Unknown"),
                response.content_type.encode("latin-1"),
                len(response.body),
                self._server.date.line(),
                b"" if keep_alive else b"Connection: close\r\n",
                extra,
                response.body,
            )
        )

    def _refuse(self, status: int, reason: str) -> None:
        self._write(Response.text(status, reason), keep_alive=False)
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        if keepalive_timeout <= 0:
            raise ValueError(f"keepalive_timeout must be positive, got {keepalive_timeout}")
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keepalive_timeout = keepalive_timeout
        self.clock = clock
        self.date = _HttpDate()
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
        """Close connections idle past ``keepalive_timeout`` (one timer for all, not one per request)."""
        while True:
            await asyncio.sleep(min(SWEEP_INTERVAL, self.keepalive_timeout))
            cutoff = self.clock() - self.keepalive_timeout
            for connection in [c for c in self._connections if not c.busy and c.last_active < cutoff]:
                connection.close()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop listening, let handlers in progress answer for up to ``timeout`` s, cancel the rest, close every connection."""
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
