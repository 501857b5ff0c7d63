"""HttpServer against hostile clients: size limits, deadlines, connection and pipelining caps, response safety.

Every limit is checked through a real socket; deadlines run on a ``ManualClock`` so they are
deterministic (the server's sweep compares the clock once a second of real time).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import socket
import statistics
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluiceway.http import HttpClient, HttpServer, Request, Response
from sluiceway.http.server import MAX_URL_BYTES_CEILING, Handler
from sluiceway.testing.clock import ManualClock
from sluiceway.testing.waiting import wait_until


async def echo(request: Request) -> Response:
    return Response(200, f"{request.method} {request.path} {len(request.body)}".encode())


@contextlib.asynccontextmanager
async def serving(handler: Handler = echo, **options: Any) -> AsyncIterator[HttpServer]:
    server = HttpServer(handler, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := await asyncio.wait_for(reader.read(65536), 30):
        received += chunk
    return received


async def exchange(server: HttpServer, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(data)
    try:
        return await read_to_end(reader)
    finally:
        writer.close()


async def request_begun(server: HttpServer) -> None:
    """Wait until the server has read the start of a request on every connection.

    The deadline tests move a ManualClock, so they must not move it before the bytes they
    sent were read; the connection's deadline (private) is the one sign of that.
    """
    await wait_until(
        lambda: server._connections and all(c.deadline != math.inf for c in server._connections),
        what="the server to read the request's first bytes",
    )


def responses(answer: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each response in a stream of them, framed by Content-Length."""
    found = []
    while answer:
        head, _, answer = answer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next((int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:")), 0)
        status = int(lines[0].split()[1])
        if status == 100:
            length = 0
        found.append((status, answer[:length]))
        answer = answer[length:]
    return found


def statuses(answer: bytes) -> list[int]:
    return [status for status, _ in responses(answer)]


# -- sizes ---------------------------------------------------------------------------------------

MAX_URL, MAX_HEADERS, MAX_HEADER_BYTES = 200, 8, 300


@settings(max_examples=40)
@given(
    path_length=st.integers(1, MAX_URL + 20),
    headers=st.lists(
        st.tuples(
            st.from_regex(r"X-[A-Za-z0-9]{1,20}", fullmatch=True), st.from_regex(r"[a-z0-9]{1,80}", fullmatch=True)
        ),
        max_size=MAX_HEADERS + 3,
    ),
)
def test_target_and_header_limits_match_the_reference(path_length: int, headers: list[tuple[str, str]]) -> None:
    """414 for a target over ``max_url_bytes``, else 431 over ``max_headers`` or ``max_header_bytes``, else served."""
    fields = [("Host", "x"), *headers, ("Connection", "close")]
    if path_length > MAX_URL:
        expected = 414
    elif len(fields) > MAX_HEADERS or sum(len(n) + len(v) for n, v in fields) > MAX_HEADER_BYTES:
        expected = 431
    else:
        expected = 200
    head = f"GET /{'p' * (path_length - 1)} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n"

    async def scenario() -> None:
        async with serving(max_url_bytes=MAX_URL, max_headers=MAX_HEADERS, max_header_bytes=MAX_HEADER_BYTES) as server:
            assert statuses(await exchange(server, head.encode())) == [expected]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("head", "endless", "status"),
    [
        (b"GET / HTTP/1.1\r\n" + b"X-Many: y\r\n" * 150 + b"\r\n", b"", 431),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"v" * 20_000 + b"\r\n\r\n", b"", 431),
        # A line that never ends: httptools would buffer it forever; the head's byte cap cuts it.
        (b"GET / HTTP/1.1\r\nX-Endless: ", b"v", 431),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"", 414),
        (b"GET /?", b"q", 414),
        # Trailers after a chunked body count like headers.
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Trailer: ", b"t", 431),
    ],
    ids=["150 headers", "20k header", "endless header", "9k target", "endless target", "endless trailer"],
)
def test_oversized_heads_are_refused_with_the_right_status(head: bytes, endless: bytes, status: int) -> None:
    """With the default limits a flood of headers, a huge header, an endless line or a long target get 431/414 and a
    close.
    """

    async def scenario() -> None:
        async with serving() as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(head)
            answer = asyncio.ensure_future(read_to_end(reader))
            sent = 0
            while endless and not answer.done():
                assert sent < 50 * 2**20, "50 MB sent and still not refused"
                writer.write(endless * 16384)
                sent += 16384
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                await asyncio.sleep(0)
            assert statuses(await answer) == [status]
            writer.close()
            await wait_until(lambda: server.connections == 0, what="the refused connection to close")

    asyncio.run(scenario())


def test_url_limit_cannot_exceed_the_ceiling() -> None:
    """``max_url_bytes`` above 16 KiB, or any non-positive limit, is refused by name."""
    with pytest.raises(ValueError, match="max_url_bytes must be at most"):
        HttpServer(echo, max_url_bytes=MAX_URL_BYTES_CEILING + 1)
    for name in (
        "header_timeout",
        "body_timeout",
        "max_header_bytes",
        "max_headers",
        "max_connections",
        "max_pipelined",
    ):
        with pytest.raises(ValueError, match=name):
            HttpServer(echo, **{name: 0})


# -- deadlines -----------------------------------------------------------------------------------


def test_headers_must_arrive_within_the_header_timeout() -> None:
    """A client dripping its headers gets a 408 and a close once ``header_timeout`` has passed since its first byte."""

    async def scenario() -> None:
        clock = ManualClock()
        async with serving(clock=clock, header_timeout=10, keepalive_timeout=1000) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            await request_begun(server)
            clock.advance(5)
            writer.write(b"X-Drip: 1\r\n")  # activity does not extend the header deadline
            clock.advance(5.5)
            answer = await read_to_end(reader)
            assert statuses(answer) == [408] and b"Connection: close" in answer
            writer.close()
            # A slow client that finishes in time is served.
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            await request_begun(server)
            clock.advance(9)
            writer.write(b"Connection: close\r\n\r\n")
            assert statuses(await read_to_end(reader)) == [200]
            writer.close()

    asyncio.run(scenario())


def test_body_must_arrive_within_the_body_timeout() -> None:
    """A body sent slower than ``body_timeout`` allows gets a 408; the handler never sees the request."""
    seen: list[str] = []

    async def record(request: Request) -> Response:
        seen.append(request.path)
        return Response()

    async def scenario() -> None:
        clock = ManualClock()
        async with serving(record, clock=clock, body_timeout=30, keepalive_timeout=1000) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            await writer.drain()
            await request_begun(server)
            for _ in range(4):
                clock.advance(8)
                writer.write(b"x")
            assert statuses(await read_to_end(reader)) == [408]
            assert seen == []
            writer.close()

    asyncio.run(scenario())


def test_keepalive_timeout_applies_to_half_read_requests() -> None:
    """A request left half-read and silent is closed after ``keepalive_timeout`` even when its other deadlines are
    far.
    """

    async def scenario() -> None:
        clock = ManualClock()
        async with serving(clock=clock, keepalive_timeout=5, header_timeout=1000, body_timeout=1000) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            await writer.drain()
            await request_begun(server)
            clock.advance(6)
            assert statuses(await read_to_end(reader)) == [408]
            await wait_until(lambda: server.connections == 0, what="the half-read connection to close")
            writer.close()

    asyncio.run(scenario())


# -- connections and pipelining ------------------------------------------------------------------


def test_connections_beyond_the_cap_are_refused_without_hurting_the_others() -> None:
    """Past ``max_connections`` a new connection gets a 503 and is closed; the open ones are still served."""

    async def scenario() -> None:
        async with serving(max_connections=2) as server:
            held = [await asyncio.open_connection(server.host, server.port) for _ in range(2)]
            for _, writer in held:
                writer.write(b"GET /held HTTP/1.1\r\nHost: x\r\n")
                await writer.drain()
            await wait_until(lambda: server.connections == 2, what="two connections")
            # Refused at once, before it could send anything.
            reader, writer = await asyncio.open_connection(server.host, server.port)
            assert statuses(await read_to_end(reader)) == [503]
            writer.close()
            for reader, writer in held:
                writer.write(b"Connection: close\r\n\r\n")
                assert statuses(await read_to_end(reader)) == [200]
                writer.close()
            await wait_until(lambda: server.connections == 0, what="the connections to close")
            assert statuses(await exchange(server, b"GET / HTTP/1.0\r\n\r\n")) == [200]

    asyncio.run(scenario())


def test_a_pipelining_flood_is_answered_in_order_then_cut_off() -> None:
    """More requests in one read than ``max_pipelined`` holds: those held are answered in order, then a 503 and a
    close.
    """

    async def scenario() -> None:
        gate = asyncio.Event()

        async def gated(request: Request) -> Response:
            await gate.wait()
            return Response(200, request.path.encode())

        async with serving(gated, max_pipelined=4) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50)))
            await wait_until(lambda: len(server._tasks) == 1, what="the first request to be handled")
            gate.set()
            got = responses(await read_to_end(reader))
            assert got[:5] == [(200, b"/%d" % i) for i in range(5)]
            assert [status for status, _ in got[5:]] == [503]
            writer.close()

    asyncio.run(scenario())


def test_pipelining_within_the_limit_gets_every_answer_in_order() -> None:
    """A client keeping ``max_pipelined`` + 1 requests in flight gets all 300 answers in order and is never refused."""

    async def scenario() -> None:
        async with serving(max_pipelined=4) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            window = asyncio.Semaphore(5)  # one being handled, four queued: exactly the limit

            async def send() -> None:
                for i in range(300):
                    await window.acquire()
                    writer.write(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)

            sender = asyncio.ensure_future(send())
            paths = []
            for _ in range(300):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                assert head.startswith(b"HTTP/1.1 200 OK")
                paths.append((await reader.readexactly(length)).split()[1])
                window.release()
            await sender
            assert paths == [b"/%d" % i for i in range(300)]
            writer.close()

    asyncio.run(scenario())


# -- responses -----------------------------------------------------------------------------------


def test_head_gets_the_length_but_no_body() -> None:
    """A HEAD answer carries Content-Length and no body, so the next pipelined answer follows at once."""

    async def scenario() -> None:
        async with serving() as server:
            answer = await exchange(
                server, b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            first, second = answer.split(b"HTTP/1.1 ")[1:]
            assert b"Content-Length: %d\r\n" % len(b"HEAD /h 0") in first and first.endswith(b"\r\n\r\n")
            assert second.endswith(b"\r\n\r\nGET /g 0")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "build",
    [
        lambda: Response(200, headers={"X-Split": "a\r\nSet-Cookie: stolen=1"}),
        lambda: Response(200, headers={"X-Split": "a\nb"}),
        lambda: Response(200, headers={"X-Nul": "a\x00b"}),
        lambda: Response(200, headers={"Bad Name": "v"}),
        lambda: Response(200, headers={"X-Colon:": "v"}),
        lambda: Response(200, headers={"Content-Length": "0"}),
        lambda: Response(200, content_type="text/plain\r\nX-Injected: 1"),
        lambda: Response(100),
        lambda: Response(600),
    ],
    ids=["crlf", "lf", "nul", "space in name", "colon in name", "framing header", "content type", "1xx", "600"],
)
def test_responses_that_could_split_are_refused(build: Any) -> None:
    """Header names that are not tokens, values with CR/LF/NUL, framing headers and non-final statuses raise
    ValueError.
    """
    with pytest.raises(ValueError, match="response"):
        build()


def test_a_response_spoiled_after_construction_becomes_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    """Headers set after the constructor checked them are checked again before writing: one 500, never a split
    response.
    """

    async def spoil(request: Request) -> Response:
        response = Response(200, b"fine")
        response.headers = {"X-Split": "a\r\nSet-Cookie: stolen=1"}
        return response

    async def scenario() -> None:
        async with serving(spoil) as server:
            answer = await exchange(server, b"GET /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert statuses(answer) == [500] and b"stolen" not in answer

    asyncio.run(scenario())
    assert "invalid response for GET /s" in caplog.text


def test_100_continue_waits_for_the_answers_owed() -> None:
    """A pipelined request expecting 100 Continue gets it only after the answer to the request before it."""

    async def scenario() -> None:
        gate = asyncio.Event()

        async def gated(request: Request) -> Response:
            if request.path == "/slow":
                await gate.wait()
            return Response(200, request.path.encode() + b" " + request.body)

        async with serving(gated) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
            )
            await wait_until(lambda: len(server._tasks) == 1, what="the slow request to be handled")
            gate.set()
            first = await asyncio.wait_for(reader.readuntil(b"/slow "), 30)
            assert first.startswith(b"HTTP/1.1 200 OK")
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30) == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"body")
            rest = await read_to_end(reader)
            assert statuses(rest) == [200] and rest.endswith(b"/w body")
            writer.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "shape",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nHost: x\nX-Bare: lf\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
    ],
    ids=[
        "CL+TE",
        "TE+CL",
        "two CL",
        "CL list",
        "bad chunk size",
        "chunk size overflow",
        "bare LF chunks",
        "TE not ending chunked",
        "bare LF request",
        "bare LF header",
        "obs-fold",
        "space before colon",
        "NUL in target",
        "NUL in header",
    ],
)
def test_request_smuggling_shapes_get_400_and_a_close(shape: bytes) -> None:
    """Requests that two parsers could read two ways: the valid request before them is answered, they get 400, the
    connection closes.
    """
    seen: list[str] = []

    async def record(request: Request) -> Response:
        seen.append(request.path)
        return Response(200, b"ok")

    async def scenario() -> None:
        async with serving(record) as server:
            answer = await exchange(server, b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n" + shape)
            assert statuses(answer) == [200, 400]
            assert seen == ["/first"]
            await wait_until(lambda: server.connections == 0, what="the connection to close")

    asyncio.run(scenario())


# -- abuse ---------------------------------------------------------------------------------------

SLOW_LORIS = 1000


def _attack(port: int, stop: threading.Event, ready: threading.Event, figures: dict[str, int]) -> None:
    """1,000 slow-loris connections dripping a header line each every 0.5 s, and header floods, until ``stop``."""
    loris = []
    for _ in range(SLOW_LORIS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"POST /loris HTTP/1.1\r\nHost: x\r\n")
        loris.append(sock)
    ready.set()
    flood = b"GET /flood HTTP/1.1\r\n" + b"X-Flood: yyyyyyyy\r\n" * 200_000
    next_drip = time.monotonic()
    while not stop.is_set():
        figures["floods"] += 1
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            try:
                sock.sendall(flood)  # the server cuts it off after ~25 KB, with a 431 or (unread bytes) a reset
                refused = sock.recv(64).startswith(b"HTTP/1.1 431")
            except OSError:
                refused = True
            figures["floods_refused"] += refused
        if time.monotonic() >= next_drip:
            for sock in loris:
                sock.sendall(b"X-Drip: 1\r\n")
            figures["drips"] += 1
            next_drip += 0.5
    for sock in loris:
        sock.close()


def test_valid_requests_are_answered_while_slow_loris_and_header_floods_hit() -> None:
    """Under 1,000 slow-loris connections and a header flood, valid requests are answered within 1 s and RSS stays
    bounded.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4 * SLOW_LORIS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4 * SLOW_LORIS, hard), hard))
    process = psutil.Process()

    async def scenario() -> None:
        async with serving() as server:
            stop, ready = threading.Event(), threading.Event()
            figures = {"floods": 0, "floods_refused": 0, "drips": 0}
            attacker = threading.Thread(target=_attack, args=(server.port, stop, ready, figures), daemon=True)
            rss_before = process.memory_info().rss
            attacker.start()
            try:
                await wait_until(ready.is_set, what="the slow-loris connections")
                await wait_until(lambda: server.connections >= SLOW_LORIS, what="the server to hold them")
                latencies, rss_peak = [], 0
                async with HttpClient(server.url) as kept_alive:
                    for i in range(40):
                        start = time.monotonic()
                        if i % 2:
                            response = await kept_alive.post("/valid", b"payload")
                        else:
                            async with HttpClient(server.url) as fresh:
                                response = await fresh.post("/valid", b"payload")
                        latencies.append(time.monotonic() - start)
                        assert response.status == 200
                        rss_peak = max(rss_peak, process.memory_info().rss)
                        await asyncio.sleep(0.05)
            finally:
                stop.set()
                await asyncio.get_running_loop().run_in_executor(None, attacker.join)
            growth_mb = (rss_peak - rss_before) / 2**20
            print(
                f"\nabuse: {SLOW_LORIS} slow-loris + {figures['floods_refused']}/{figures['floods']} "
                f"header floods refused, {figures['drips']} drip rounds; valid request latency "
                f"p50 {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
                f"RSS growth {growth_mb:.1f} MB"
            )
            assert max(latencies) < 1.0
            assert figures["floods"] > 0 and figures["floods_refused"] == figures["floods"]
            # ~1,000 connections' transports and parsers plus flood heads cut at ~25 KB; unbounded would be gigabytes.
            assert growth_mb < 100
            await wait_until(lambda: server.connections == 0, what="the attack's connections to close")

    asyncio.run(scenario())


def test_a_repeated_header_keeps_every_value() -> None:
    """A header sent twice reaches the handler with both values joined, so neither can silently replace the other."""
    seen: list[str] = []

    async def record(request: Request) -> Response:
        seen.append(request.headers["x-hub-signature-256"])
        return Response()

    async def scenario() -> None:
        async with serving(record) as server:
            head = b"GET / HTTP/1.1\r\nX-Hub-Signature-256: a\r\nx-hub-signature-256: a\r\nConnection: close\r\n\r\n"
            assert statuses(await exchange(server, head)) == [200]
            assert seen == ["a, a"]

    asyncio.run(scenario())
