"""HttpClient through a forward proxy: absolute-form requests, CONNECT tunnels with TLS inside, the
proxy environment variables, credentials, and 1xx interim answers.

The proxy is a few lines of asyncio that record what they were sent and pass bytes on; the name
``target.test`` exists only in its table, so a request that reaches it went through the proxy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sluiceway.http import HttpClient, HttpConnectionError, HttpServer, Request, Response

TARGET = "target.test"
SECRET = "s3cr%3At"  # percent-encoded in the URL: the password is "s3cr:t"


class Handlers:
    """The connection handlers of an asyncio.start_server, so a test can end them all before its loop ends."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    def track(self, *writers: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.update(writers)

    async def close(self, server: asyncio.Server) -> None:
        server.close()
        for writer in self.writers:
            writer.close()  # each handler then sees its connection end and returns
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=30)
        await server.wait_closed()


class ForwardProxy:
    """Records each request head it gets; relays absolute-form requests and CONNECT tunnels to ``routes``."""

    def __init__(self, routes: dict[str, tuple[str, int]], require_auth: str | None = None) -> None:
        self.routes = routes
        self.require_auth = require_auth
        self.heads: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._handlers = Handlers()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        assert self._server is not None
        await self._handlers.close(self._server)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.track(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
            if self.require_auth is not None and f"Proxy-Authorization: {self.require_auth}".encode() not in head:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                return
            if method == b"CONNECT":
                host, _, port = target.decode().rpartition(":")
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.routes[f"{host}:{port}"])
                self._handlers.track(upstream_writer)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                # Absolute form: every request on this connection is for the one origin our client talks to.
                authority = target.split(b"/")[2].decode()
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.routes[authority])
                self._handlers.track(upstream_writer)
                reader = _Rewriting(reader, self, head)  # type: ignore[assignment]
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _to_origin_form(head: bytes) -> bytes:
        line, rest = head.split(b"\r\n", 1)
        method, target, version = line.split(b" ")
        path = b"/" + target.split(b"/", 3)[3] if target.count(b"/") >= 3 else b"/"
        return b"%s %s %s\r\n%s" % (method, path, version, rest)


class _Rewriting:
    """Reads further requests on a proxied connection, recording and rewriting each head (bodies are tiny here)."""

    def __init__(self, reader: asyncio.StreamReader, proxy: ForwardProxy, first: bytes) -> None:
        self._reader, self._proxy, self._first = reader, proxy, first

    async def read(self, n: int) -> bytes:
        head, self._first = self._first, b""
        if not head:
            head = await self._reader.readuntil(b"\r\n\r\n")
            self._proxy.heads.append(head)
        length = (
            int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if b"content-length" in head.lower()
            else 0
        )
        return self._proxy._to_origin_form(head) + await self._reader.readexactly(length)


async def _pipe(reader: asyncio.StreamReader | _Rewriting, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def echo(request: Request) -> Response:
    return Response(200, f"{request.method} {request.path} host={request.headers.get('host')}".encode())


@contextlib.asynccontextmanager
async def origin(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[tuple[str, int]]:
    """An origin server on 127.0.0.1 (https when given a context): its (host, port)."""
    if ssl_context is None:
        server = HttpServer(echo)
        await server.start()
        try:
            yield server.host, server.port
        finally:
            await server.stop()
        return

    handlers = Handlers()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.track(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
                line = head.split(b"\r\n", 1)[0].decode()
                body = f"{line.split()[0]} {line.split()[1]} tls".encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        writer.close()

    tls_server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield tls_server.sockets[0].getsockname()[:2]
    finally:
        await handlers.close(tls_server)


@contextlib.asynccontextmanager
async def proxying(routes: dict[str, tuple[str, int]], require_auth: str | None = None) -> AsyncIterator[ForwardProxy]:
    proxy = ForwardProxy(routes, require_auth)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_http_through_the_environment_proxy_in_absolute_form(no_proxy_env: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set, requests go to the proxy as absolute URLs with the target's Host, over one kept-alive
    connection.
    """

    async def scenario() -> None:
        async with origin() as (host, port), proxying({f"{TARGET}:{port}": (host, port)}) as proxy:
            no_proxy_env.setenv("HTTP_PROXY", proxy.url)
            async with HttpClient(f"http://{TARGET}:{port}/api") as http:
                for i in range(3):
                    response = await http.post(f"/m{i}", b"{}")
                    assert (response.status, response.body) == (200, f"POST /api/m{i} host={TARGET}:{port}".encode())
            assert [h.split(b"\r\n", 1)[0] for h in proxy.heads] == [
                f"POST http://{TARGET}:{port}/api/m{i} HTTP/1.1".encode() for i in range(3)
            ]
            assert http.open_connections == 0

    asyncio.run(scenario())


def _certificate(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for ``target.test`` and 127.0.0.1, and a client context trusting only that certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TARGET)])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName(TARGET), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
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


def test_https_through_a_connect_tunnel_with_credentials(
    tmp_path: Path, no_proxy_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """HTTPS_PROXY with user:password: one CONNECT carrying Proxy-Authorization, TLS to the target inside, the secret
    logged nowhere.
    """
    server_ssl, client_ssl = _certificate(tmp_path)
    expected_auth = "Basic " + base64.b64encode(b"bot:s3cr:t").decode()
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with (
            origin(server_ssl) as (host, port),
            proxying({f"{TARGET}:{port}": (host, port)}, expected_auth) as proxy,
        ):
            no_proxy_env.setenv("HTTPS_PROXY", proxy.url.replace("http://", f"http://bot:{SECRET}@"))
            async with HttpClient(f"https://{TARGET}:{port}", ssl=client_ssl) as http:
                for i in range(3):
                    assert (await http.post(f"/m{i}", b"{}")).body == f"POST /m{i} tls".encode()
            assert len(proxy.heads) == 1  # one tunnel, kept alive; the requests inside it are encrypted
            connect = proxy.heads[0]
            assert connect.startswith(f"CONNECT {TARGET}:{port} HTTP/1.1\r\nHost: {TARGET}:{port}\r\n".encode())
            assert f"Proxy-Authorization: {expected_auth}\r\n".encode() in connect

    asyncio.run(scenario())
    assert "s3cr" not in caplog.text and SECRET not in caplog.text


def test_a_refusing_proxy_is_an_error_that_names_it_without_credentials(no_proxy_env: pytest.MonkeyPatch) -> None:
    """A 407 to CONNECT fails the request with HttpConnectionError naming the proxy's address, not its password."""

    async def scenario() -> None:
        async with proxying({}, require_auth="Basic never") as proxy:
            url = proxy.url.replace("http://", f"http://bot:{SECRET}@")
            async with HttpClient(f"https://{TARGET}:443", proxy=url) as http:
                with pytest.raises(HttpConnectionError, match="407") as refused:
                    await http.get("/")
            assert proxy.url in str(refused.value)
            assert "bot" not in str(refused.value) and "s3cr" not in str(refused.value)

    asyncio.run(scenario())


def test_no_proxy_trust_env_and_loopback_skip_the_proxy(no_proxy_env: pytest.MonkeyPatch) -> None:
    """NO_PROXY, ``trust_env=False`` and loopback targets connect directly; an explicit ``proxy=`` is always used."""

    async def scenario() -> None:
        async with origin() as (host, port), proxying({f"{host}:{port}": (host, port)}) as proxy:
            no_proxy_env.setenv("HTTP_PROXY", proxy.url)
            # target.test resolves nowhere: a direct attempt fails, and the error names no proxy.
            no_proxy_env.setenv("NO_PROXY", f"example.com,{TARGET}")
            async with HttpClient(f"http://{TARGET}:{port}") as bypassing:
                with pytest.raises(HttpConnectionError, match="cannot connect") as direct:
                    await bypassing.get("/")
                assert "via" not in str(direct.value)
            no_proxy_env.delenv("NO_PROXY")
            async with HttpClient(f"http://{TARGET}:{port}", trust_env=False) as ignoring:
                with pytest.raises(HttpConnectionError, match="cannot connect"):
                    await ignoring.get("/")
            async with HttpClient(f"http://{host}:{port}") as local:
                assert (await local.get("/here")).status == 200
            assert proxy.heads == []
            async with HttpClient(f"http://{host}:{port}", proxy=proxy.url, trust_env=False) as explicit:
                assert (await explicit.get("/there")).status == 200
            assert [h.split(b"\r\n", 1)[0] for h in proxy.heads] == [
                f"GET http://{host}:{port}/there HTTP/1.1".encode()
            ]

    asyncio.run(scenario())


def test_bad_proxy_urls_are_refused_by_name(no_proxy_env: pytest.MonkeyPatch) -> None:
    """Only http:// proxies are supported; the error shows the proxy without its credentials."""
    with pytest.raises(ValueError, match="proxy must be an http:// URL") as bad:
        HttpClient("https://graph.facebook.com", proxy=f"socks5://bot:{SECRET}@127.0.0.1:1080")
    assert SECRET not in str(bad.value) and "bot" not in str(bad.value)
    no_proxy_env.setenv("HTTPS_PROXY", "ftp://proxy.example:21")
    with pytest.raises(ValueError, match="proxy"):
        HttpClient("https://graph.facebook.com")
