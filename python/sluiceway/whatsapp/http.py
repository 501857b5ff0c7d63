"""A thin HTTP/1.1 keep-alive client for one origin, on asyncio protocols: the sender's hot path.

Why not aiohttp here: every Cloud API send is the same small ``POST`` to the same
URL with the same headers, answered by a small JSON body. aiohttp builds a request
object, header multidicts, a payload object, a timer context and a response object
per call, which on a busy sender costs more CPU than everything else the sender does
(``python -m bench sender``: a bare aiohttp post loop alone measured 0.45× of a whole
aiohttp + aiolimiter + tenacity sender). Here a request is one pre-built ``bytes``
head plus the body, written with one ``transport.write``; the answer is parsed from
the buffer the event loop hands us; one timer per request enforces the timeout.

What it does handle (RFC 9112): ``Content-Length`` and ``chunked`` bodies (with
chunk extensions and trailers), bodies delimited by the connection closing, ``1xx``
interim answers, ``Connection: close`` in either HTTP version's default, gzip/deflate
``Content-Encoding`` (we never ask for it, but a server may send it), TLS, a pool of
keep-alive connections with an idle timeout, and a total timeout covering waiting for
a connection, connecting, writing and reading. What it does not: redirects, proxies,
cookies, pipelining, HTTP/2 — the Cloud API needs none of them.

Errors are :class:`HttpError` (a ``ConnectionError``) or ``TimeoutError``; neither
carries the request (so never the ``Authorization`` header).
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import time
import zlib
from collections import deque
from typing import cast

import yarl

#: Largest response head or body accepted, in bytes; the Cloud API answers a few hundred.
MAX_RESPONSE_BYTES = 1 << 20
#: Seconds an idle keep-alive connection is kept before it is closed rather than reused
#: (servers drop idle connections too; reusing one they dropped fails the request).
DEFAULT_KEEPALIVE_TIMEOUT = 30.0

_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"


class HttpError(ConnectionError):
    """The connection failed, closed early, or the server answered something that is not HTTP/1.x."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request in flight, its answer parsed as it arrives."""

    __slots__ = (
        "_body_left", "_buf", "_chunked", "_encoding", "_head_done", "_keep_alive", "_parts", "_status",
        "_until_close", "_waiter", "closed", "idle_since", "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._buf = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._head_done = False
        self._status = 0
        self._keep_alive = True
        self._chunked = False
        self._until_close = False
        self._body_left = 0
        self._encoding = b""
        self._parts: list[bytes] = []

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._until_close and self._head_done and exc is None:
                self._complete(bytes(self._buf))
            else:
                reason = f": {type(exc).__name__}: {exc}" if exc is not None else ""
                waiter.set_exception(HttpError(f"connection closed before the response was complete{reason}"))
        self._waiter = None

    def eof_received(self) -> bool | None:
        return None  # close our side too: connection_lost finishes a close-delimited body

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is out of step
            self.abort()
            return
        buf = self._buf
        buf += data
        try:
            self._parse()
        except (ValueError, IndexError) as exc:
            self._fail(HttpError(f"malformed HTTP response: {exc}"))
        if len(buf) > MAX_RESPONSE_BYTES:
            self._fail(HttpError(f"HTTP response over {MAX_RESPONSE_BYTES} bytes"))

    # --- requests --------------------------------------------------------------------

    def send(self, request: bytes, waiter: asyncio.Future[tuple[int, bytes]]) -> None:
        self._waiter = waiter
        assert self.transport is not None
        self.transport.write(request)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def timed_out(self) -> None:
        self._fail(TimeoutError("no complete HTTP response within the timeout"))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def _complete(self, body: bytes) -> None:
        if self._encoding and body:
            # 32 + MAX_WBITS: zlib detects gzip or zlib framing itself.
            try:
                body = zlib.decompress(body, 32 + zlib.MAX_WBITS)
            except zlib.error as exc:
                raise ValueError(f"bad {self._encoding.decode()} body: {exc}") from None
        waiter = self._waiter
        self._waiter = None
        if not self._keep_alive or self._until_close or self._buf:
            self.abort()  # the server will close, or sent more than one answer: never reuse
        status = self._status
        self._reset()
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))

    def _parse(self) -> None:
        buf = self._buf
        while not self._head_done:
            end = buf.find(_HEAD_END)
            if end < 0:
                return
            self._read_head(bytes(buf[:end]))
            del buf[: end + 4]
            if 100 <= self._status < 200:  # interim answer (100 Continue...): the real one follows
                self._reset()
        if self._until_close:
            return
        if not self._chunked:
            if len(buf) >= self._body_left:
                body = bytes(buf[: self._body_left])
                del buf[: self._body_left]
                self._complete(body)
            return
        parts = self._parts
        while True:
            if self._body_left < 0:  # reading the trailer section after the last chunk
                end = buf.find(_CRLF)
                if end < 0:
                    return
                del buf[: end + 2]
                if end == 0:
                    self._complete(b"".join(parts))
                    return
                continue
            if self._body_left == 0:  # at a chunk-size line
                end = buf.find(_CRLF)
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";", 1)[0].strip(), 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                del buf[: end + 2]
                if size == 0:
                    self._body_left = -1
                    continue
                self._body_left = size + 2  # the chunk and its CRLF
            if len(buf) < self._body_left:
                return
            if buf[self._body_left - 2 : self._body_left] != _CRLF:
                raise ValueError("chunk not followed by CRLF")
            parts.append(bytes(buf[: self._body_left - 2]))
            del buf[: self._body_left]
            self._body_left = 0

    def _read_head(self, head: bytes) -> None:
        lines = head.split(_CRLF)
        version, _, rest = lines[0].partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        self._status = int(rest[:3])
        self._keep_alive = version != b"HTTP/1.0"
        length: int | None = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
                if length < 0:
                    raise ValueError("negative Content-Length")
            elif name == b"transfer-encoding":
                self._chunked = value.strip().lower().endswith(b"chunked")
            elif name == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    self._keep_alive = False
                elif b"keep-alive" in tokens:
                    self._keep_alive = True
            elif name == b"content-encoding":
                encoding = value.strip().lower()
                if encoding not in (b"", b"identity"):
                    if encoding not in (b"gzip", b"deflate", b"x-gzip"):
                        raise ValueError(f"unsupported Content-Encoding {encoding.decode(errors='replace')!r}")
                    self._encoding = encoding
        self._head_done = True
        if self._chunked:
            self._body_left = 0
        elif self._status in (204, 304) or 100 <= self._status < 200:
            self._body_left = 0
        elif length is not None:
            self._body_left = length
        else:
            self._until_close = True


class KeepAlivePool:
    """Keep-alive HTTP/1.1 connections to one origin and a ``post`` that reuses them.

    Example::

        pool = KeepAlivePool("https://graph.facebook.com", max_connections=100, timeout=10.0)
        status, body = await pool.post("/v23.0/123/messages", b'{"to": ...}', {"Authorization": "Bearer ..."})
        await pool.close()

    Warning: a ``POST`` that fails on a connection the server had just closed is not
    resent (the server may have acted on it); the caller decides, as with aiohttp.
    """

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 100,
        timeout: float = 10.0,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
        ssl_context: _ssl.SSLContext | None = None,
    ) -> None:
        url = yarl.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.host = url.host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl: _ssl.SSLContext | None = None
        if url.scheme == "https":
            self._ssl = ssl_context or _ssl.create_default_context()
        default_port = self.port == (443 if url.scheme == "https" else 80)
        host = f"[{url.host}]" if ":" in url.host else url.host  # an IPv6 literal
        self.host_header = host if default_port else f"{host}:{self.port}"
        self.max_connections = max_connections
        self.timeout = timeout
        self.keepalive_timeout = keepalive_timeout
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()  # idle and busy, so close() reaches requests in flight
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    def request_head(self, path: str, headers: dict[str, str]) -> bytes:
        """The fixed part of a ``POST`` to ``path``: request line and headers up to ``Content-Length: ``."""
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        for name, value in headers.items():
            if any(c in f"{name}{value}" for c in "\r\n"):
                raise ValueError(f"header {name!r} contains a line break")
        return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """``POST body`` to ``path``; the status and (decoded) body. ``HttpError`` or ``TimeoutError`` on failure."""
        return await self.send(self.request_head(path, headers), body)

    async def send(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """Send a request whose head came from :meth:`request_head`; the status and body."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        conn = self._take_idle()
        if conn is None:
            conn = await asyncio.wait_for(self._acquire(loop), max(0.0, deadline - loop.time()))
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        timer = loop.call_at(deadline, conn.timed_out)
        try:
            conn.send(b"%b%d\r\n\r\n%b" % (head, len(body), body), waiter)
            result = await waiter
        except BaseException:
            conn.abort()  # cancelled or failed mid-request: its state is unknown
            self._done(conn)
            raise
        finally:
            timer.cancel()
        self._done(conn)
        return result

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed and time.monotonic() - conn.idle_since < self.keepalive_timeout:
                return conn
            conn.abort()
            self._forget(conn)
        return None

    async def _acquire(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        while True:
            if self._closed:
                raise HttpError("the connection pool is closed")
            conn = self._take_idle()
            if conn is not None:
                return conn
            if self._open < self.max_connections:
                self._open += 1
                try:
                    _, protocol = await loop.create_connection(
                        _Connection, self.host, self.port, ssl=self._ssl,
                        server_hostname=self.host if self._ssl is not None else None,
                    )
                except OSError as exc:
                    self._open -= 1
                    self._wake_one()
                    raise HttpError(f"cannot connect to {self.host}:{self.port}: {type(exc).__name__}: {exc}") from None
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
                self._all.add(protocol)
                return protocol
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken just as we gave up: pass the turn on
                else:
                    waiter.cancel()
                raise

    def _done(self, conn: _Connection) -> None:
        """A request finished on ``conn``: keep it for the next one, or count it closed."""
        if conn.closed or self._closed:
            conn.abort()
            self._forget(conn)
        else:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        self._wake_one()

    def _forget(self, conn: _Connection) -> None:
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close every connection; requests in flight fail with ``HttpError``."""
        self._closed = True
        for conn in list(self._all):
            conn.abort()
        self._idle.clear()
        self._all.clear()
        self._open = 0
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        await asyncio.sleep(0)  # let the transports run connection_lost

    @property
    def closed(self) -> bool:
        return self._closed
