"""HttpClient against real aiohttp servers on 127.0.0.1: answers, keep-alive, limits, failures."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from sluiceway.http import HttpClient, HttpConnectionError, HttpPoolTimeout, HttpTimeout
from sluiceway.testing.waiting import wait_until

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN = "Bearer do-not-leak-me"


class Server:
    """An aiohttp app on a free port that records each request and the connection it came on."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.peers: list[object] = []
        self.url = ""


@contextlib.asynccontextmanager
async def serving(handler: Handler, ssl_context: ssl.SSLContext | None = None, **runner: Any) -> AsyncIterator[Server]:
    server = Server()

    async def record(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.requests.append((request.method, request.path, dict(request.headers), body))
        server.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    app_runner = web.AppRunner(app, access_log=None, **runner)
    await app_runner.setup()
    await web.TCPSite(app_runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
    host, port = app_runner.addresses[0][:2]
    server.url = f"{'https' if ssl_context else 'http'}://{host}:{port}"
    try:
        yield server
    finally:
        await app_runner.cleanup()


async def ok(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b'{"ok":true}', content_type="application/json", headers={"X-Answer": "42"})


def test_post_sends_headers_and_body_and_returns_the_answer() -> None:
    """A POST carries Host, the client's and the call's headers and the body; the answer comes back whole."""

    async def scenario() -> None:
        async with serving(ok) as server, HttpClient(server.url + "/v21.0", headers={"Authorization": TOKEN}) as http:
            response = await http.post("/123/messages", b'{"to":"1"}', headers={"X-Request": "a"})
            assert (response.status, response.body, response.headers["x-answer"]) == (200, b'{"ok":true}', "42")
            method, path, headers, body = server.requests[0]
            assert (method, path, body) == ("POST", "/v21.0/123/messages", b'{"to":"1"}')
            assert headers["Authorization"] == TOKEN
            assert headers["Content-Type"] == "application/json"
            assert headers["X-Request"] == "a"
            assert headers["Host"] == server.url.removeprefix("http://")
            get = await http.get("/health")
            assert get.status == 200 and server.requests[1][:2] == ("GET", "/v21.0/health")

    asyncio.run(scenario())


def test_sequential_requests_reuse_one_connection() -> None:
    """Keep-alive: twenty requests one after another travel over a single connection."""

    async def scenario() -> None:
        async with serving(ok) as server, HttpClient(server.url) as http:
            for i in range(20):
                assert (await http.post("/x", str(i).encode())).status == 200
            assert len(set(server.peers)) == 1
            assert http.open_connections == 1

    asyncio.run(scenario())


def test_connection_close_answer_is_not_reused() -> None:
    """A response with ``Connection: close`` ends its connection; the next request opens a new one and succeeds."""

    async def closing(request: web.Request) -> web.StreamResponse:
        response = web.Response(text="bye")
        response.force_close()
        return response

    async def scenario() -> None:
        async with serving(closing) as server, HttpClient(server.url) as http:
            for _ in range(3):
                assert (await http.post("/x", b"")).body == b"bye"
            assert len(set(server.peers)) == 3

    asyncio.run(scenario())


@settings(max_examples=15)
@given(
    answers=st.lists(
        st.tuples(
            st.sampled_from([200, 201, 204, 400, 404, 429, 500, 503]),
            st.binary(max_size=70_000),
            st.booleans(),  # chunked
            st.booleans(),  # close the connection after
        ),
        min_size=1,
        max_size=8,
    )
)
def test_every_answer_arrives_exactly_as_sent(answers: list[tuple[int, bytes, bool, bool]]) -> None:
    """Whatever mix of statuses, sizes, chunked or sized bodies and closes the server sends, each response is returned
    exactly.
    """
    queue = list(answers)

    async def scripted(request: web.Request) -> web.StreamResponse:
        status, body, chunked, close = queue.pop(0)
        if status == 204:
            body = b""
        response = web.StreamResponse(status=status)
        if chunked and status != 204:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        if close:
            response.force_close()
        await response.prepare(request)
        for start in range(0, len(body), 16_384):
            await response.write(body[start : start + 16_384])
        await response.write_eof()
        return response

    async def scenario() -> None:
        async with serving(scripted) as server, HttpClient(server.url, max_connections=2) as http:
            for status, body, _, _ in answers:
                response = await http.post("/x", b"q")
                assert response.status == status
                assert response.body == (b"" if status == 204 else body)
                assert http.open_connections <= 2

    asyncio.run(scenario())


@settings(max_examples=6)
@given(limit=st.integers(1, 5), requests=st.integers(1, 20))
def test_never_more_connections_than_the_limit(limit: int, requests: int) -> None:
    """With ``max_connections`` = n, at most n requests are ever in flight at the server, and all complete."""

    async def scenario() -> None:
        gate = asyncio.Event()
        in_flight = peak = 0

        async def held(request: web.Request) -> web.StreamResponse:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await gate.wait()
            in_flight -= 1
            return web.Response(text="done")

        async with serving(held) as server, HttpClient(server.url, max_connections=limit) as http:
            calls = [asyncio.ensure_future(http.post("/x", b"")) for _ in range(requests)]
            await wait_until(lambda: in_flight == min(limit, requests), what="the server to hold the limit's worth")
            for _ in range(3):
                await asyncio.sleep(0)  # give an over-eager client every chance to exceed the limit
            gate.set()
            assert [r.body for r in await asyncio.gather(*calls)] == [b"done"] * requests
            assert peak == min(limit, requests)
            assert len(set(server.peers)) <= limit

    asyncio.run(scenario())


def test_a_hung_server_times_out_and_its_connection_is_dropped() -> None:
    """No answer within ``timeout`` raises HttpTimeout; that connection is closed, and the next request works."""

    async def scenario() -> None:
        never = asyncio.Event()

        async def maybe_hang(request: web.Request) -> web.StreamResponse:
            if request.path == "/hang":
                await never.wait()
            return web.Response(text="fine")

        async with serving(maybe_hang) as server, HttpClient(server.url, timeout=0.3) as http:
            with pytest.raises(HttpTimeout, match=r"within 0\.3 s") as hung:
                await http.post("/hang", b"")
            assert hung.value.sent is True  # written: the server may have acted on it
            assert http.open_connections == 0
            assert (await http.post("/ok", b"")).body == b"fine"
            never.set()

    asyncio.run(scenario())


@settings(max_examples=8, deadline=None)
@given(waiting=st.integers(1, 4), keep_alive=st.booleans())
def test_requests_waiting_for_a_connection_are_sent_first_come_first_served(waiting: int, keep_alive: bool) -> None:
    """A request made while others wait for the one connection goes after them, never ahead.

    The newcomer is made at the worst moment: while the answer that frees the connection is
    being read (from the streamed body's sink), before the first waiter has resumed. With
    ``keep_alive`` off the connection closes after each answer and the first waiter must open
    a new one: the newcomer must not open it first either.
    """

    async def scenario() -> None:
        release = asyncio.Event()

        async def held(request: web.Request) -> web.StreamResponse:
            if request.path == "/first":
                await release.wait()
            return web.Response(text="x" * 8, headers={} if keep_alive else {"Connection": "close"})

        async with serving(held) as server, HttpClient(server.url, max_connections=1) as http:
            newcomers: list[asyncio.Future[Any]] = []

            class SubmitOnAnswer:
                def write(self, data: bytes) -> None:
                    if not newcomers:
                        newcomers.append(asyncio.ensure_future(http.post("/newcomer", b"")))

            first = asyncio.ensure_future(http.request("POST", "/first", b"", body_to=SubmitOnAnswer()))
            await wait_until(lambda: len(server.requests) == 1, what="the first request to arrive")
            queued = [asyncio.ensure_future(http.post(f"/waiting-{i}", b"")) for i in range(waiting)]
            for _ in range(3):
                await asyncio.sleep(0)  # every waiter is in line
            release.set()
            await asyncio.gather(first, *queued)
            await asyncio.gather(*newcomers)
            expected = ["/first", *(f"/waiting-{i}" for i in range(waiting)), "/newcomer"]
            assert [path for _, path, _, _ in server.requests] == expected

    asyncio.run(scenario())


def test_waiting_for_a_free_connection_is_bounded_and_sends_nothing() -> None:
    """When every connection stays busy, a waiting request fails after connect_timeout, marked as never sent."""

    async def scenario() -> None:
        never = asyncio.Event()

        async def hang(request: web.Request) -> web.StreamResponse:
            await never.wait()
            return web.Response()

        async with (
            serving(hang) as server,
            HttpClient(server.url, max_connections=1, timeout=30, connect_timeout=0.3) as http,
        ):
            first = asyncio.ensure_future(http.post("/a", b""))
            await wait_until(lambda: len(server.requests) == 1, what="the first request to arrive")
            with pytest.raises(HttpPoolTimeout, match="was not sent") as waited:
                await http.post("/b", b"")
            assert waited.value.sent is False
            assert [path for _, path, _, _ in server.requests] == ["/a"]
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            never.set()

    asyncio.run(scenario())


def test_the_answer_timeout_starts_when_the_request_is_written() -> None:
    """Requests queued behind a busy connection longer than ``timeout`` still get their answers, each sent once."""

    async def scenario() -> None:
        async def slow(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(0.2)
            return web.Response(text=request.path)

        async with serving(slow) as server, HttpClient(server.url, max_connections=1, timeout=1.0) as http:
            # The last of eight waits ~1.4 s for the one connection, then ~0.2 s for its answer.
            answers = await asyncio.gather(*(http.post(f"/{n}", b"") for n in range(8)))
            assert [a.body for a in answers] == [f"/{n}".encode() for n in range(8)]
            assert sorted(path for _, path, _, _ in server.requests) == [f"/{n}" for n in range(8)]

    asyncio.run(scenario())


def test_cancelling_a_request_does_not_leave_its_connection_for_reuse() -> None:
    """A caller cancelled mid-request loses that connection: a late answer can never be read by the next request."""

    async def scenario() -> None:
        release = asyncio.Event()

        async def slow(request: web.Request) -> web.StreamResponse:
            if request.path == "/slow":
                await release.wait()
                return web.Response(text="late")
            return web.Response(text="mine")

        async with serving(slow) as server, HttpClient(server.url, max_connections=1) as http:
            call = asyncio.ensure_future(http.post("/slow", b""))
            await wait_until(lambda: len(server.requests) == 1, what="the slow request to arrive")
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            release.set()
            assert (await http.post("/fast", b"")).body == b"mine"

    asyncio.run(scenario())


def test_server_closing_an_idle_connection_is_survived() -> None:
    """When the server closes a kept-alive connection, the client notices and the next request opens a fresh one."""

    async def scenario() -> None:
        async with serving(ok, keepalive_timeout=0.2) as server, HttpClient(server.url) as http:
            assert (await http.post("/x", b"")).status == 200
            await wait_until(lambda: http.open_connections == 0, what="the server to close the idle connection")
            assert (await http.post("/x", b"")).status == 200
            assert len(set(server.peers)) == 2

    asyncio.run(scenario())


def test_connection_broken_mid_response_is_an_error() -> None:
    """A server that drops the connection before answering raises HttpConnectionError naming the origin."""

    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    async def scenario() -> None:
        async with serving(drop) as server, HttpClient(server.url) as http:
            with pytest.raises(HttpConnectionError, match="closed before the response was complete") as raised:
                await http.post("/x", b"")
            assert server.url.removeprefix("http://") in str(raised.value)

    asyncio.run(scenario())


def test_refused_connection_and_oversized_answers_are_errors_without_secrets() -> None:
    """Nothing listening, or an answer over ``max_response_bytes``, raise HttpConnectionError; no header value appears
    in them.
    """

    async def big(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 5000)

    async def scenario() -> None:
        async with serving(big) as server:
            async with HttpClient(server.url, headers={"Authorization": TOKEN}, max_response_bytes=1000) as http:
                with pytest.raises(HttpConnectionError, match="over 1000 bytes") as too_big:
                    await http.post("/x", b"")
            port = int(server.url.rsplit(":", 1)[1])
        async with HttpClient(f"http://127.0.0.1:{port}", headers={"Authorization": TOKEN}) as http:
            with pytest.raises(HttpConnectionError, match="cannot connect") as refused:
                await http.post("/x", b"")
            assert refused.value.sent is False
        for error in (too_big.value, refused.value):
            assert "do-not-leak-me" not in str(error) and error.__cause__ is None

    asyncio.run(scenario())


def test_bad_arguments_are_refused_by_name() -> None:
    """Wrong URLs, limits and header values raise ValueError naming the problem, before any I/O."""
    with pytest.raises(ValueError, match="base_url"):
        HttpClient("ftp://example.com")
    with pytest.raises(ValueError, match="max_connections"):
        HttpClient("http://127.0.0.1:1", max_connections=0)
    with pytest.raises(ValueError, match="timeout"):
        HttpClient("http://127.0.0.1:1", timeout=0)
    with pytest.raises(ValueError, match="connect_timeout"):
        HttpClient("http://127.0.0.1:1", connect_timeout=-1)
    with pytest.raises(ValueError, match="header"):
        HttpClient("http://127.0.0.1:1", headers={"X-Evil": "a\r\nInjected: yes"})

    async def scenario() -> None:
        async with HttpClient("http://127.0.0.1:1") as http:
            with pytest.raises(ValueError, match="path"):
                await http.post("no-slash", b"")
            with pytest.raises(ValueError, match="header"):
                await http.post("/x", b"", headers={"X-Evil": "a\nb"})

    asyncio.run(scenario())


def test_closed_client_refuses_requests() -> None:
    """After ``aclose`` a request fails with HttpConnectionError instead of opening connections again."""

    async def scenario() -> None:
        async with serving(ok) as server:
            http = HttpClient(server.url)
            await http.post("/x", b"")
            await http.aclose()
            assert http.open_connections == 0
            with pytest.raises(HttpConnectionError, match="closed"):
                await http.post("/x", b"")

    asyncio.run(scenario())


def _self_signed(tmp_path: Any) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for 127.0.0.1 and a client context trusting only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
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


def test_https_verifies_the_server_and_keeps_the_connection(tmp_path: Any) -> None:
    """Over https, requests reuse one verified connection; a client that does not trust the certificate gets a
    connection error.
    """
    server_ssl, client_ssl = _self_signed(tmp_path)

    async def scenario() -> None:
        async with serving(ok, server_ssl) as server:
            async with HttpClient(server.url, ssl=client_ssl) as http:
                for i in range(3):
                    assert (await http.post("/x", str(i).encode())).body == b'{"ok":true}'
                assert len(set(server.peers)) == 1
            async with HttpClient(server.url) as untrusting:
                with pytest.raises(HttpConnectionError, match="cannot connect"):
                    await untrusting.post("/x", b"")
            assert len(server.requests) == 3

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
    ],
    ids=["100", "100 and 103"],
)
def test_interim_answers_are_skipped_for_the_final_one(interim: bytes) -> None:
    """1xx answers before the real one are read past: the caller gets the final status, its headers and body only."""

    async def scenario() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for _ in range(2):  # two requests on the kept-alive connection
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                writer.write(interim + b"HTTP/1.1 201 Created\r\nX-Final: yes\r\nContent-Length: 4\r\n\r\ndone")
            writer.close()
            done.set()

        done = asyncio.Event()
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        async with HttpClient(f"http://{host}:{port}") as http:
            for _ in range(2):
                response = await http.post("/x", b"{}")
                assert (response.status, response.body, response.headers) == (
                    201,
                    b"done",
                    {"x-final": "yes", "content-length": "4"},
                )
        await done.wait()
        server.close()

    asyncio.run(scenario())


def test_an_unasked_protocol_switch_is_an_error() -> None:
    """A 101 to a plain request is not an answer: HttpConnectionError, and the connection is dropped."""

    async def scenario() -> None:
        async def switch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00"
            )
            await reader.read()  # until the client drops the connection
            writer.close()
            done.set()

        done = asyncio.Event()
        server = await asyncio.start_server(switch, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        async with HttpClient(f"http://{host}:{port}") as http:
            with pytest.raises(HttpConnectionError, match="switched protocols"):
                await http.get("/x")
            assert http.open_connections == 0
        await done.wait()
        server.close()

    asyncio.run(scenario())
