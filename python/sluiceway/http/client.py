"""``HttpClient``: keep-alive HTTP/1.1 requests to one origin, at a fraction of aiohttp's cost.

A bot's supervisor spends most of its time in HTTP: every reply is a POST to the Cloud API,
and the status webhooks come back as more. Measured on uvloop on the 2-core benchmark machine,
an ``aiohttp.ClientSession`` POST costs ~170 µs of CPU; this client costs ~60 µs, because it
does only what talking to one JSON API needs: one pool of keep-alive connections to one
origin, each request written in one ``write``, the response parsed by ``httptools`` (llhttp,
the parser Node.js and uvicorn use) straight into a future. Interim (1xx) answers are skipped.
No cookies, redirects, compression, pipelining or streaming.

Proxies: ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (or lower-case) are honoured by default
(``trust_env=True``), as curl, requests and httpx do and unlike aiohttp: a bot often runs where
only an egress proxy reaches the internet, and there a client that ignores the variables simply
fails; loopback addresses are never proxied from the environment. ``trust_env=False`` ignores
the variables; ``proxy=`` names a proxy explicitly. An ``http://`` target
goes to the proxy in absolute form; an ``https://`` one through a ``CONNECT`` tunnel, TLS to
the target inside it. Credentials in the proxy URL travel in ``Proxy-Authorization`` (Basic)
and appear in no message: errors name the proxy by host and port only.

Errors are ``HttpError`` subclasses whose messages name the origin and what failed, never a
header (the bearer token lives in one). A request that fails is not retried here: a POST may
have reached the server, so whether to send it again is the caller's decision, and
``HttpError.sent`` tells it which case it is in.

Two timeouts, because they mean different things to a caller: ``connect_timeout`` bounds the
wait for a connection (a free one from the pool, or a new one: connect, TLS, proxy tunnel), and
nothing has been written when it runs out (``HttpPoolTimeout``, ``sent`` false: safe to retry);
``timeout`` starts when the request is written and bounds the wait for its answer
(``HttpTimeout``, ``sent`` true: the server may have acted on it). Counting the wait for a busy
pool against the answer's timeout made a saturated client time out requests the server had
already taken, and a caller that retried them sent them twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl as ssl_module
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Final, Protocol, cast

import httptools
import yarl

from sluiceway.errors import SluicewayError
from sluiceway.http.proxy import Proxy, Tunnel

#: Connections open at once, per client, unless told otherwise.
DEFAULT_MAX_CONNECTIONS: Final = 100
#: Seconds from writing a request to its complete answer.
DEFAULT_TIMEOUT: Final = 30.0
#: Seconds a request may wait for a connection (a free one, or a new one opened) before it is written.
DEFAULT_CONNECT_TIMEOUT: Final = 30.0
#: Seconds an idle connection is kept; servers commonly close theirs after 15-75 s, and
#: reusing one the server is closing at that moment fails the request.
DEFAULT_IDLE_TIMEOUT: Final = 10.0
#: The largest response body accepted (bytes): a protection against a runaway server.
DEFAULT_MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024


class HttpError(SluicewayError):
    """A request failed before a complete response arrived.

    ``sent`` is false when no byte of the request was written (the server cannot have seen it:
    safe to send again), true when it was written and the server may have acted on it.
    """

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class HttpTimeout(HttpError):
    """No complete response in time: within ``timeout`` of writing the request (``sent`` true), or,
    as the subclass ``HttpPoolTimeout``, no connection to write it on (``sent`` false)."""


class HttpPoolTimeout(HttpTimeout):
    """No connection within ``connect_timeout``: the request was never written (``sent`` is false)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=False)


class HttpConnectionError(HttpError):
    """Connecting failed (``sent`` false), or the connection broke or sent something that is not HTTP/1.1."""


class HttpResponseTooLarge(HttpConnectionError):
    """The response body went over ``max_response_bytes``; the connection was closed."""


class BodySink(Protocol):
    """Where a response body goes as it arrives, instead of into ``ClientResponse.body``."""

    def write(self, chunk: bytes, /) -> object: ...


class ClientResponse:
    """A complete response: ``status``, lower-cased ``headers`` and the raw ``body``."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"ClientResponse(status={self.status}, {len(self.body)} bytes)"


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request in flight, its answer parsed as it arrives."""

    def __init__(self, client: HttpClient) -> None:
        self._client = client
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[ClientResponse] | None = None
        self.idle_since = 0.0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        #: The current request's body destination, if it streams (see ``HttpClient.request``).
        self.sink: BodySink | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(HttpConnectionError(f"{self._client.origin} sent an invalid HTTP response: {error}"))
        except httptools.HttpParserUpgrade:
            pass  # a 101: on_message_complete has failed the request and closed the connection

    def eof_received(self) -> bool | None:
        # A response delimited by the end of the connection (no length, not chunked) ends here.
        with contextlib.suppress(httptools.HttpParserError):
            self._parser.feed_data(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._client._forget(self)
        self._fail(HttpConnectionError(f"connection to {self._client.origin} closed before the response was complete"))

    # -- httptools callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._client.max_response_bytes:
            self._fail(
                HttpResponseTooLarge(
                    f"response from {self._client.origin} is over {self._client.max_response_bytes} bytes"
                )
            )
            return
        if self.sink is not None:
            # A plain write in the loop's callback: chunks are at most a socket read (~64 KiB) and
            # go to the page cache, cheaper than a thread hop per chunk.
            self.sink.write(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            if status == 101:
                self._fail(HttpConnectionError(f"{self._client.origin} switched protocols unasked"))
            else:
                # An interim answer (100 Continue, 103 Early Hints): the final one follows on this connection.
                self._headers, self._body, self._size = {}, [], 0
            return
        waiter = self.waiter
        response = ClientResponse(status, self._headers, b"".join(self._body))
        keep_alive = self._parser.should_keep_alive()
        self.waiter = None
        self.sink = None
        self._headers, self._body, self._size = {}, [], 0
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        if keep_alive and self.transport is not None and not self.transport.is_closing():
            self._client._release(self)
        else:
            self.close()

    # -- used by the client ---------------------------------------------------------------

    def send(self, request: bytes, waiter: asyncio.Future[ClientResponse], sink: BodySink | None = None) -> None:
        assert self.transport is not None
        self.waiter = waiter
        self.sink = sink
        self.transport.write(request)

    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self._client._forget(self)

    def _fail(self, error: HttpError) -> None:
        waiter, self.waiter = self.waiter, None
        self.sink = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()


class HttpClient:
    """A pool of keep-alive HTTP/1.1 connections to one origin (``http://`` or ``https://``).

    Example::

        async with HttpClient("https://graph.facebook.com", headers={"Authorization": "Bearer ..."}) as http:
            response = await http.post("/v21.0/123/messages", body, content_type="application/json")
            if response.status == 200:
                ...

    ``headers`` go on every request; ``request(..., headers=)`` adds more for one request.
    At most ``max_connections`` are open; further requests wait up to ``connect_timeout`` for
    one to come free (or to be opened), and ``timeout`` starts once the request is written.

    ``proxy`` (an ``http://[user:password@]host:port`` URL) sends every request through that
    proxy; without it, ``trust_env`` (default True) takes the proxy from ``HTTP_PROXY`` /
    ``HTTPS_PROXY`` / ``NO_PROXY`` as curl does (see the module's docstring for why).

    Warning: one request per connection at a time (no pipelining), no redirects, no cookies,
    no compression: it is meant for JSON APIs one controls or knows, not for browsing.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ssl: ssl_module.SSLContext | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        url = yarl.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http:// or https:// URL with a host, got {base_url!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive, got {connect_timeout}")
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout}")
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be positive, got {max_response_bytes}")
        #: The URL requests are relative to, as given.
        self.base_url = base_url
        self._host: str = url.host
        self._port: int = url.port or (443 if url.scheme == "https" else 80)
        self.origin = f"{url.scheme}://{self._host}:{self._port}"
        self._base_path = url.path.rstrip("/")
        self._ssl: ssl_module.SSLContext | None = (
            (ssl or ssl_module.create_default_context()) if url.scheme == "https" else None
        )
        host_header = url.host if url.is_default_port() else f"{url.host}:{url.port}"
        self._proxy = Proxy(proxy) if proxy is not None else None
        if proxy is None and trust_env:
            self._proxy = Proxy.from_environment(url.scheme, url.host)
        #: Through a proxy, plain-http requests name the whole URL (absolute form); tunnelled ones do not.
        self._target = b""
        self._fixed_headers = f"Host: {host_header}\r\n".encode("latin-1") + _header_lines(headers or {})
        if self._proxy is not None and self._ssl is None:
            self._target = f"http://{host_header}".encode("latin-1")
            self._fixed_headers += self._proxy.authorization
        self.max_connections = max_connections
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_response_bytes = max_response_bytes
        self._clock = clock
        self._idle: collections.deque[_Connection] = collections.deque()
        self._open: set[_Connection] = set()
        self._connecting = 0
        #: Room for new connections kept for requests woken to open them (see ``_acquire``).
        self._reserved = 0
        #: Requests waiting for a connection, first come first served: each gets one handed over, or
        #: ``None`` when there is room to open one.
        self._waiting: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open now (busy or idle), not counting ones being established."""
        return len(self._open)

    async def post(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> ClientResponse:
        """``POST`` ``body`` to ``path`` (relative to the base URL's path); a Content-Type in ``headers`` wins."""
        if not headers:
            extra: Mapping[str, str] = {"Content-Type": content_type}
        elif any(name.lower() == "content-type" for name in headers):
            extra = headers
        else:
            extra = {"Content-Type": content_type, **headers}
        return await self.request("POST", path, body, headers=extra)

    async def get(
        self, path: str, *, headers: Mapping[str, str] | None = None, body_to: BodySink | None = None
    ) -> ClientResponse:
        """``GET`` ``path`` (relative to the base URL's path); ``body_to`` as in :meth:`request`."""
        return await self.request("GET", path, headers=headers, body_to=body_to)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        body_to: BodySink | None = None,
    ) -> ClientResponse:
        """Send one request and return the complete response; ``HttpError`` if none arrives.

        With ``body_to`` (anything with ``write(bytes)``, such as a file opened ``"wb"``) the
        response body is written there as it arrives and ``ClientResponse.body`` is empty: a
        large download never sits in memory. ``max_response_bytes`` still applies.
        """
        if self._closed:
            raise HttpConnectionError(f"client for {self.origin} is closed", sent=False)
        if not path.startswith("/") or any(c in path for c in "\r\n "):
            raise ValueError(f"path must start with '/' and contain no spaces or line breaks, got {path!r}")
        head = b"%s %s%s%s HTTP/1.1\r\n%sContent-Length: %d\r\n%s\r\n" % (
            method.encode("ascii"),
            self._target,
            self._base_path.encode("latin-1"),
            path.encode("latin-1"),
            self._fixed_headers,
            len(body),
            _header_lines(headers) if headers else b"",
        )
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[ClientResponse] = loop.create_future()
        # The waiter fails with HttpPoolTimeout until the request is written, with HttpTimeout after.
        timer = loop.call_later(self.connect_timeout, _expire_wait, waiter, self)
        connection: _Connection | None = None
        try:
            connection = await self._acquire(waiter)
            if waiter.done():
                # The wait ran out as the connection came: nothing was written, so it stays usable.
                self._release(connection)
                waiter.result()  # raises the HttpPoolTimeout
            timer.cancel()
            connection.send(head + body, waiter, body_to)
            timer = loop.call_later(self.timeout, _expire, waiter, self)
            return await waiter
        except BaseException:
            if connection is not None and connection.waiter is waiter:
                # Timed out or cancelled mid-request: a late answer would arrive on a connection
                # nobody reads, so it cannot be reused.
                connection.waiter = None
                connection.close()
            raise
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()
            elif not waiter.cancelled():
                waiter.exception()  # a timeout that raced a cancellation: mark it seen, not "never retrieved"

    async def _acquire(self, waiter: asyncio.Future[ClientResponse]) -> _Connection:
        """A usable idle connection, a new one, or the next one freed; fails with ``waiter``.

        First come, first served: while requests wait, a new one queues behind them; a freed
        connection goes straight to the first in line, and room for a new connection is kept
        for it. (Were the connection put back in the pool and the waiter merely woken, a request
        arriving before the waiter resumed would take it, and under load the waiter would go back
        to the end of the line again and again.)
        """
        first_in_line = False  # a newcomer queues behind the waiting; a woken request goes first
        while True:
            if first_in_line or not self._waiting:
                connection = self._take_idle()
                if connection is not None:
                    return connection
                if self._has_room():
                    return await self._connect(waiter)
            turn: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            if first_in_line:
                self._waiting.appendleft(turn)
            else:
                self._waiting.append(turn)
            try:
                await asyncio.wait((turn, waiter), return_when=asyncio.FIRST_COMPLETED)
                if waiter.done():
                    waiter.result()  # raises the timeout
            except BaseException:
                if not turn.done():
                    turn.cancel()
                elif (handed := turn.result()) is not None:
                    self._release(handed)  # it came as we gave up: the next in line gets it
                else:
                    self._reserved -= 1
                    self._wake_one()  # so does the room kept for us
                raise
            handed = turn.result()
            if handed is None:
                self._reserved -= 1
            if self._closed:
                raise HttpConnectionError(f"client for {self.origin} is closed", sent=False)
            if handed is not None:
                if handed.usable():
                    return handed
                handed.close()  # the server closed it meanwhile: open a new one in its place
            first_in_line = True

    def _has_room(self) -> bool:
        """Whether a new connection may be opened (room kept for a woken request does not count)."""
        return len(self._open) + self._connecting + self._reserved < self.max_connections

    def _take_idle(self) -> _Connection | None:
        now = self._clock()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the least likely to be stale
            if connection.usable() and now - connection.idle_since < self.idle_timeout:
                return connection
            connection.close()
        return None

    async def _connect(self, waiter: asyncio.Future[ClientResponse]) -> _Connection:
        self._connecting += 1
        try:
            connect = asyncio.ensure_future(self._new_connection())
            await asyncio.wait((connect, waiter), return_when=asyncio.FIRST_COMPLETED)
            if not connect.done():
                connect.cancel()
                waiter.result()  # raises the timeout
            try:
                connection = connect.result()
            except OSError as error:
                via = f" via {self._proxy.address}" if self._proxy is not None else ""
                message = f"cannot connect to {self.origin}{via}: {error.strerror or error}"
                raise HttpConnectionError(message, sent=False) from None
            except ValueError as error:  # the proxy refused or garbled the tunnel
                assert self._proxy is not None
                where = f"{self.origin} via {self._proxy.address}"
                raise HttpConnectionError(f"cannot tunnel to {where}: {error}", sent=False) from None
        finally:
            self._connecting -= 1
        if self._closed:
            connection.close()
            raise HttpConnectionError(f"client for {self.origin} is closed", sent=False)
        self._open.add(connection)
        return connection

    async def _new_connection(self) -> _Connection:
        """A new connection to the origin: direct, to the proxy, or TLS through a proxy's tunnel."""
        loop = asyncio.get_running_loop()
        proxy = self._proxy
        if proxy is None:
            _, connection = await loop.create_connection(
                lambda: _Connection(self), self._host, self._port, ssl=self._ssl
            )
            return connection
        if self._ssl is None:
            _, connection = await loop.create_connection(lambda: _Connection(self), proxy.host, proxy.port)
            return connection
        transport, tunnel = await loop.create_connection(Tunnel, proxy.host, proxy.port)
        try:
            host = f"[{self._host}]" if ":" in self._host else self._host  # an IPv6 literal needs its brackets
            authority = f"{host}:{self._port}".encode("latin-1")
            transport.write(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (authority, authority, proxy.authorization))
            answer = await tunnel.answer
            status_line = answer.split(b"\r\n", 1)[0]
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].startswith(b"2"):
                raise ValueError(f"the proxy answered {status_line.decode('latin-1')[:100]!r}")
            connection = _Connection(self)
            secure = await loop.start_tls(transport, connection, self._ssl, server_hostname=self._host)
        except BaseException:
            transport.close()
            raise
        if secure is None:  # the loop gave up on the handshake without raising
            raise OSError(f"TLS handshake with {self._host} failed")
        connection.connection_made(secure)
        return connection

    def _release(self, connection: _Connection) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(connection)
                return
        connection.idle_since = self._clock()
        self._idle.append(connection)

    def _forget(self, connection: _Connection) -> None:
        if connection in self._open:
            self._open.discard(connection)
            self._wake_one()

    def _wake_one(self) -> None:
        """Tell the first request in line that there is room for a new connection, and keep it for it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                self._reserved += 1
                return

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail with ``HttpConnectionError``."""
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
        while self._waiting:
            self._wake_one()  # each raises that the client is closed
        await asyncio.sleep(0)  # let the transports run their connection_lost

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _expire(waiter: asyncio.Future[ClientResponse], client: HttpClient) -> None:
    if not waiter.done():
        waiter.set_exception(HttpTimeout(f"no complete response from {client.origin} within {client.timeout} s"))


def _expire_wait(waiter: asyncio.Future[ClientResponse], client: HttpClient) -> None:
    if not waiter.done():
        message = f"no connection to {client.origin} within {client.connect_timeout} s; the request was not sent"
        waiter.set_exception(HttpPoolTimeout(message))


def _header_lines(headers: Mapping[str, str]) -> bytes:
    """``Name: value\\r\\n`` lines; a line break in a name or value is refused (header injection)."""
    lines = []
    for name, value in headers.items():
        if any(c in name for c in "\r\n:") or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} contains a line break or a colon in its name")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")
