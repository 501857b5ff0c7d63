"""HttpServer over real sockets: answers, keep-alive, pipelining, limits, malformed input, stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluiceway.http import HttpClient, HttpServer, Request, Response
from sluiceway.http.server import Handler
from sluiceway.testing.waiting import wait_until


async def echo(request: Request) -> Response:
    """Answers with what it saw, so tests can check the parsing."""
    summary = (
        f"{request.method} {request.path} ?{request.query_string} "
        f"{len(request.body)} too_large={request.body_too_large}"
    )
    return Response(200, summary.encode() + b"\n" + request.body, headers={"X-Seen": request.headers.get("x-tag", "")})


@contextlib.asynccontextmanager
async def serving(handler: Handler = echo, **options: Any) -> AsyncIterator[HttpServer]:
    server = HttpServer(handler, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def raw_exchange(server: HttpServer, data: bytes, *, until_closed: bool = True, expect: int = 1) -> bytes:
    """Send raw bytes; read until the server closes (or ``expect`` complete responses arrived)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(data)
    received = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 30)
            if not chunk:
                break
            received += chunk
            if not until_closed and received.count(b"HTTP/1.1 ") >= expect and received.endswith(b"\n"):
                break
    finally:
        writer.close()
    return received


def test_requests_are_parsed_and_answered() -> None:
    """Method, path, query, headers and body reach the handler; status, headers and body reach the client."""

    async def scenario() -> None:
        async with serving() as server, HttpClient(server.url) as http:
            response = await http.post("/webhook?a=1&b=two", b"hello", headers={"X-Tag": "t1"})
            assert response.status == 200
            assert response.body == b"POST /webhook ?a=1&b=two 5 too_large=False\nhello"
            assert response.headers["x-seen"] == "t1"
            assert response.headers["content-type"].startswith("text/plain")
            assert "date" in response.headers
            assert (await http.get("/")).body.startswith(b"GET / ? 0")

    asyncio.run(scenario())


def test_query_parameters_are_decoded() -> None:
    """``Request.query`` decodes percent-escapes and keeps blank values."""
    request = Request("GET", "/webhook", "hub.mode=subscribe&hub.challenge=12%2034&empty=", {}, b"")
    assert request.query == {"hub.mode": "subscribe", "hub.challenge": "12 34", "empty": ""}


def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    """Sequential requests from a keep-alive client share one connection."""

    async def scenario() -> None:
        async with serving() as server, HttpClient(server.url) as http:
            for i in range(25):
                assert (await http.post("/x", str(i).encode())).body.endswith(str(i).encode())
            assert server.connections == 1

    asyncio.run(scenario())


def test_pipelined_requests_are_answered_in_order() -> None:
    """Requests written back to back on one connection get their answers in the same order, even when handlers finish
    out of order.
    """

    async def uneven(request: Request) -> Response:
        await asyncio.sleep(0.05 if request.path == "/slow" else 0)
        return Response(200, request.path.encode())

    async def scenario() -> None:
        async with serving(uneven) as server:
            requests = (
                b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in ("/slow", "/a", "/b", "/c"))
                + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            answer = await raw_exchange(server, requests)
            bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in answer.split(b"HTTP/1.1 200 OK")[1:]]
            assert bodies == [b"/slow", b"/a", b"/b", b"/c", b"/last"]
            assert b"Connection: close" in answer

    asyncio.run(scenario())


@settings(max_examples=20)
@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
            st.from_regex(r"/[a-z0-9/_.-]{0,30}", fullmatch=True),
            st.binary(max_size=40_000),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_bodies_of_any_size_and_framing_arrive_whole(requests: list[tuple[str, str, bytes, bool]]) -> None:
    """Sized and chunked request bodies of any length reach the handler byte for byte."""

    async def scenario() -> None:
        async with serving(max_body_bytes=1 << 20) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            try:
                for method, path, body, chunked in requests:
                    if chunked:
                        chunks = [body[i : i + 7000] for i in range(0, len(body), 7000)]
                        framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
                        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                    else:
                        framed = body
                        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    writer.write(head + framed)
                    status_line = await reader.readline()
                    headers: dict[bytes, bytes] = {}
                    while (line := await reader.readline()) != b"\r\n":
                        name, _, value = line.partition(b":")
                        headers[name.strip().lower()] = value.strip()
                    answer = await reader.readexactly(int(headers[b"content-length"]))
                    assert status_line.startswith(b"HTTP/1.1 200")
                    assert answer == f"{method} {path} ? {len(body)} too_large=False\n".encode() + body
            finally:
                writer.close()

    asyncio.run(scenario())


def test_declared_oversized_body_is_refused_before_it_is_read() -> None:
    """A Content-Length over ``max_body_bytes`` reaches the handler as ``body_too_large`` at once, and the connection
    closes.
    """

    async def scenario() -> None:
        async with serving(max_body_bytes=1000) as server:
            # Only the headers are sent: the answer must not wait for the 5,000 bytes.
            answer = await raw_exchange(server, b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            assert b"too_large=True" in answer and b"Connection: close" in answer

    asyncio.run(scenario())


def test_chunked_body_over_the_limit_is_flagged_not_buffered() -> None:
    """A chunked body that grows past ``max_body_bytes`` arrives as ``body_too_large`` with an empty body."""

    async def scenario() -> None:
        async with serving(max_body_bytes=1000) as server:
            chunk = b"y" * 800
            data = (
                b"POST /w HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 3
                + b"0\r\n\r\n"
            )
            answer = await raw_exchange(server, data)
            assert b"POST /w ? 0 too_large=True" in answer and b"Connection: close" in answer

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "garbage",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost x-no-colon\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    ],
)
def test_malformed_requests_get_400_and_the_server_lives_on(garbage: bytes) -> None:
    """Bytes that are not HTTP/1.1 get a 400 naming the problem and a closed connection; the next client is served."""

    async def scenario() -> None:
        async with serving() as server:
            answer = await raw_exchange(server, garbage)
            assert answer.startswith(b"HTTP/1.1 400 Bad Request") and b"malformed request" in answer
            async with HttpClient(server.url) as http:
                assert (await http.get("/ok")).status == 200

    asyncio.run(scenario())


def test_upgrade_requests_are_refused() -> None:
    """A protocol upgrade (e.g. WebSocket) is answered 400: this server speaks HTTP/1.1 only."""

    async def scenario() -> None:
        async with serving() as server:
            answer = await raw_exchange(
                server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 400") and b"upgrades are not supported" in answer

    asyncio.run(scenario())


def test_a_failing_handler_answers_500_and_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    """A handler exception becomes a logged 500; the same connection then serves the next request."""

    async def flaky(request: Request) -> Response:
        if request.path == "/boom":
            raise RuntimeError("handler bug")
        return Response(200, b"fine")

    async def scenario() -> None:
        async with serving(flaky) as server, HttpClient(server.url) as http:
            assert (await http.get("/boom")).status == 500
            assert (await http.get("/ok")).body == b"fine"
            assert server.connections == 1

    asyncio.run(scenario())
    assert "handler failed for GET /boom" in caplog.text


def test_http_1_0_and_connection_close_end_the_connection() -> None:
    """HTTP/1.0 without keep-alive, and ``Connection: close``, get one answer and a closed connection."""

    async def scenario() -> None:
        async with serving() as server:
            for request in (b"GET /a HTTP/1.0\r\n\r\n", b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
                answer = await raw_exchange(server, request)  # returns only once the server closes
                assert answer.count(b"HTTP/1.1 200") == 1

    asyncio.run(scenario())


def test_expect_100_continue_is_honoured() -> None:
    """A client that waits for ``100 Continue`` before sending its body gets it, then the answer."""

    async def scenario() -> None:
        async with serving() as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30) == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"body")
            assert (await asyncio.wait_for(reader.readline(), 30)).startswith(b"HTTP/1.1 200")
            writer.close()

    asyncio.run(scenario())


def test_idle_connections_are_closed_after_the_keepalive_timeout() -> None:
    """A connection with no request in progress is closed once ``keepalive_timeout`` passes."""

    async def scenario() -> None:
        async with serving(keepalive_timeout=0.2) as server, HttpClient(server.url) as http:
            await http.get("/x")
            assert server.connections == 1
            await wait_until(lambda: server.connections == 0, what="the idle connection to be closed")

    asyncio.run(scenario())


def test_stop_lets_handlers_in_progress_answer() -> None:
    """``stop`` waits for a handler that is still working and delivers its answer, then refuses new connections."""

    async def scenario() -> None:
        started, release = asyncio.Event(), asyncio.Event()

        async def slow(request: Request) -> Response:
            started.set()
            await release.wait()
            return Response(200, b"finished")

        server = HttpServer(slow)
        await server.start()
        async with HttpClient(server.url) as http:
            call = asyncio.ensure_future(http.get("/work"))
            await started.wait()
            stopping = asyncio.ensure_future(server.stop())
            await asyncio.sleep(0)
            assert not stopping.done()
            release.set()
            response = await call
            await stopping
            assert response.body == b"finished" and response.headers.get("connection") == "close"
        with pytest.raises(OSError):
            await asyncio.open_connection(server.host, server.port)

    asyncio.run(scenario())


def test_bad_arguments_are_refused_by_name() -> None:
    """Non-positive limits raise ValueError naming the argument."""
    with pytest.raises(ValueError, match="max_body_bytes"):
        HttpServer(echo, max_body_bytes=0)
    with pytest.raises(ValueError, match="keepalive_timeout"):
        HttpServer(echo, keepalive_timeout=0)


def test_stop_cancels_handlers_that_outlive_the_timeout() -> None:
    """A handler still running when ``stop``'s timeout ends is cancelled, and ``stop`` returns."""

    async def scenario() -> None:
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def hang(request: Request) -> Response:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return Response()

        server = HttpServer(hang)
        await server.start()
        _reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await started.wait()
        await server.stop(timeout=0.05)
        assert cancelled.is_set() and server.connections == 0
        writer.close()

    asyncio.run(scenario())
