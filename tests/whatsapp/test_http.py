"""The keep-alive HTTP/1.1 client under the transport: response framing, pooling, timeouts, failures."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from sluiceway.whatsapp.http import HttpError, KeepAlivePool, _Connection

HEADERS = {"Authorization": "Bearer secret-token", "Content-Type": "application/json"}


class _FakeTransport:
    """Records writes and aborts in place of a socket."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True


def _frame(status: int, body: bytes, framing: str, chunks: list[int], extra_headers: bytes = b"") -> bytes:
    head = b"HTTP/1.1 %d X\r\n%b" % (status, extra_headers)
    if framing == "length":
        return head + b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
    if framing == "close":
        return head + b"Connection: close\r\n\r\n" + body
    out, at = [head + b"Transfer-Encoding: chunked\r\n\r\n"], 0
    for size in [*chunks, len(body)]:
        piece = body[at : at + size]
        at += len(piece)
        if piece:
            out.append(b"%x;ext=1\r\n%b\r\n" % (len(piece), piece))
    out.append(b"0\r\nX-Trailer: t\r\n\r\n")
    return b"".join(out)


class _Wire:
    """A ``_Connection`` on a fake socket, on a loop that is closed on exit."""

    def __enter__(self) -> _Wire:
        self.loop = asyncio.new_event_loop()
        self.conn, self.fake = _Connection(), _FakeTransport()
        self.conn.connection_made(self.fake)  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.close()

    def ask(self) -> asyncio.Future[tuple[int, bytes]]:
        """Put one request in flight; its answer's future."""
        waiter: asyncio.Future[tuple[int, bytes]] = self.loop.create_future()
        self.conn.send(b"POST / HTTP/1.1\r\n\r\n", waiter)
        return waiter


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([200, 400, 401, 500, 503]),
    body=st.binary(max_size=600),
    framing=st.sampled_from(["length", "chunked", "close"]),
    chunks=st.lists(st.integers(1, 64), max_size=8),
    splits=st.lists(st.integers(0, 2000), max_size=6),
    interim=st.booleans(),
)
def test_any_framing_split_anywhere_parses_to_the_body(
    status: int, body: bytes, framing: str, chunks: list[int], splits: list[int], interim: bool
) -> None:
    """A response with any framing, delivered in any pieces (after an optional 100 Continue), yields its status and body."""
    wire = (b"HTTP/1.1 100 Continue\r\n\r\n" if interim else b"") + _frame(status, body, framing, chunks)
    cuts = sorted({min(s, len(wire)) for s in splits} | {0, len(wire)})
    with _Wire() as w:
        # Twice on one connection when it stays open: the parser resets between answers.
        for _ in range(1 if framing == "close" else 2):
            waiter = w.ask()
            for a, b in zip(cuts, cuts[1:]):
                w.conn.data_received(wire[a:b])
            if framing == "close":
                assert not waiter.done()
                w.conn.connection_lost(None)
            assert waiter.result() == (status, body)
            assert w.fake.aborted == (framing == "close")


def test_gzip_bodies_are_decoded() -> None:
    """A gzip-encoded answer comes back decoded, whether or not we asked for it."""
    with _Wire() as w:
        waiter = w.ask()
        w.conn.data_received(_frame(200, gzip.compress(b'{"ok":1}'), "length", [], b"Content-Encoding: gzip\r\n"))
        assert waiter.result() == (200, b'{"ok":1}')


@pytest.mark.parametrize(
    "wire",
    [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
)
def test_garbage_fails_the_request_and_the_connection(wire: bytes) -> None:
    """Bytes that are not an HTTP/1.x answer fail the request with HttpError and drop the connection."""
    with _Wire() as w:
        waiter = w.ask()
        w.conn.data_received(wire)
        with pytest.raises(HttpError, match="malformed"):
            waiter.result()
        assert w.fake.aborted and w.conn.closed


def test_a_reset_during_a_close_delimited_body_is_an_error() -> None:
    """A body delimited by the connection closing fails with HttpError if the connection was reset, not closed."""
    with _Wire() as w:
        waiter = w.ask()
        w.conn.data_received(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"mess")
        w.conn.connection_lost(ConnectionResetError("reset by peer"))
        with pytest.raises(HttpError, match="ConnectionResetError"):
            waiter.result()


# --- against a real socket ---------------------------------------------------------------

Answer = Callable[[bytes, int], Any]


class _Server:
    """A raw HTTP server on 127.0.0.1 whose answers a test scripts (``answer(request, n)`` → bytes or None to hang)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.open = 0
        self.peak = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                reply = self.answer(request, len(self.requests))
                if asyncio.iscoroutine(reply):
                    reply = await reply
                if reply is None:
                    await asyncio.sleep(3600)
                writer.write(reply)
                await writer.drain()
                if b"Connection: close" in reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


def _ok(body: bytes = b'{"ok":true}') -> bytes:
    return _frame(200, body, "length", [])


@contextlib.asynccontextmanager
async def _serving(
    answer: Answer, server_ssl: ssl.SSLContext | None = None, **pool: Any
) -> AsyncIterator[tuple[_Server, KeepAlivePool]]:
    server = _Server(answer)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=server_ssl)
    port = listener.sockets[0].getsockname()[1]
    scheme = "https" if server_ssl is not None else "http"
    client = KeepAlivePool(f"{scheme}://127.0.0.1:{port}", **{"timeout": 5.0, **pool})
    try:
        yield server, client
    finally:
        await client.close()
        listener.close()


def test_sequential_requests_share_one_connection() -> None:
    """Requests one after another reuse one keep-alive connection and carry the headers and body given."""

    async def scenario() -> None:
        async with _serving(lambda req, n: _ok(b"%d" % n)) as (server, pool):
            for i in range(1, 6):
                assert await pool.post("/v1/messages", b'{"i":%d}' % i, HEADERS) == (200, b"%d" % i)
            assert server.connections == 1
            assert server.requests[0].startswith(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:")
            assert b"Authorization: Bearer secret-token\r\n" in server.requests[0]
            assert server.requests[4].endswith(b'Content-Length: 7\r\n\r\n{"i":5}')

    asyncio.run(scenario())


def test_concurrency_is_bounded_by_max_connections() -> None:
    """Thirty concurrent requests over a pool of three all succeed on at most three connections."""

    async def slow(req: bytes, n: int) -> bytes:
        await asyncio.sleep(0.01)
        return _ok()

    async def scenario() -> None:
        async with _serving(slow, max_connections=3) as (server, pool):
            results = await asyncio.gather(*(pool.post("/", b"x", HEADERS) for _ in range(30)))
            assert results == [(200, b'{"ok":true}')] * 30
            assert server.peak <= 3 and server.connections <= 3

    asyncio.run(scenario())


def test_a_hung_request_times_out_and_the_pool_recovers() -> None:
    """A server that never answers gives TimeoutError after the timeout; the next request gets a fresh connection."""

    async def scenario() -> None:
        async with _serving(lambda req, n: None if n == 1 else _ok(), timeout=0.3) as (server, pool):
            with pytest.raises(TimeoutError):
                await pool.post("/", b"x", HEADERS)
            assert await pool.post("/", b"x", HEADERS) == (200, b'{"ok":true}')
            assert server.connections == 2

    asyncio.run(scenario())


def test_connection_close_and_dropped_connections() -> None:
    """``Connection: close`` answers are read to the end and not reused; a connection dropped mid-answer is an HttpError."""

    def answer(req: bytes, n: int) -> bytes:
        if n == 1:
            return _frame(200, b"bye", "close", [])
        if n == 2:
            return b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\npartial"
        return _ok()

    async def scenario() -> None:
        async with _serving(answer) as (server, pool):
            assert await pool.post("/", b"x", HEADERS) == (200, b"bye")
            with pytest.raises(HttpError, match="before the response was complete"):
                await pool.post("/", b"x", HEADERS)
            assert await pool.post("/", b"x", HEADERS) == (200, b'{"ok":true}')
            assert server.connections == 3

    asyncio.run(scenario())


def test_refused_connection_is_an_http_error_without_the_token() -> None:
    """Nothing listening gives an HttpError naming the address and not the request's headers."""

    async def scenario() -> None:
        listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        listener.close()
        await listener.wait_closed()
        pool = KeepAlivePool(f"http://127.0.0.1:{port}", timeout=5.0)
        with pytest.raises(HttpError, match=f"127.0.0.1:{port}") as caught:
            await pool.post("/", b"x", HEADERS)
        assert "secret-token" not in str(caught.value)
        await pool.close()

    asyncio.run(scenario())


def test_close_fails_requests_in_flight() -> None:
    """Closing the pool fails a request still waiting for its answer with HttpError."""

    async def scenario() -> None:
        async with _serving(lambda req, n: None) as (server, pool):
            pending = asyncio.ensure_future(pool.post("/", b"x", HEADERS))
            while not server.requests:
                await asyncio.sleep(0.01)
            await pool.close()
            with pytest.raises(HttpError):
                await asyncio.wait_for(pending, 5.0)

    asyncio.run(scenario())


def test_works_on_uvloop() -> None:
    """The pool runs on uvloop (whose transports are not asyncio.Transport subclasses), reusing its connection."""

    async def scenario() -> None:
        async with _serving(lambda req, n: _frame(200, b"chunked %d" % n, "chunked", [3])) as (server, pool):
            for i in range(1, 4):
                assert await pool.post("/", b"x", HEADERS) == (200, b"chunked %d" % i)
            assert server.connections == 1

    uvloop.run(scenario())


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [({"base_url": "ftp://example.com"}, "base_url"), ({"max_connections": 0}, "max_connections"),
     ({"timeout": 0.0}, "timeout")],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], problem: str) -> None:
    """Each invalid pool setting raises ValueError naming it."""
    with pytest.raises(ValueError, match=problem):
        KeepAlivePool(**{"base_url": "http://127.0.0.1:1", **kwargs})


def test_header_injection_is_refused() -> None:
    """A header value with a line break raises ValueError instead of splitting the request."""
    pool = KeepAlivePool("https://graph.facebook.com")
    with pytest.raises(ValueError, match="line break"):
        pool.request_head("/", {"Authorization": "Bearer x\r\nEvil: 1"})
    assert pool.request_head("/p", {"A": "b"}) == b"POST /p HTTP/1.1\r\nHost: graph.facebook.com\r\nA: b\r\nContent-Length: "


def _self_signed(tmp_path: Any) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for 127.0.0.1 and a client context trusting only it."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return server, ssl.create_default_context(cadata=cert_pem.decode())


def test_https_verifies_the_server_and_reuses_the_connection(tmp_path: Any) -> None:
    """Over TLS, requests reuse one verified connection; a client that does not trust the certificate gets HttpError."""
    server_ssl, client_ssl = _self_signed(tmp_path)

    async def scenario() -> None:
        async with _serving(lambda req, n: _ok(b"%d" % n), server_ssl, ssl_context=client_ssl) as (server, pool):
            assert [await pool.post("/", b"x", HEADERS) for _ in range(3)] == [(200, b"1"), (200, b"2"), (200, b"3")]
            assert server.connections == 1
        async with _serving(lambda req, n: _ok(), server_ssl) as (server, pool):
            with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED"):
                await pool.post("/", b"x", HEADERS)

    asyncio.run(scenario())
