"""HttpServer fed malformed and truncated input: it never crashes, never leaks a connection or a task, and
answers with a status it means (or closes) every time.

Each case checks afterwards that the server holds no connection and the loop runs no task beyond
its own sweeper and the test, and that a valid request on a new connection is still served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluiceway.http import HttpClient, HttpServer, Request, Response
from sluiceway.testing.waiting import wait_until

#: Every status this server writes on its own account, plus the handler's 200.
MEANT = {200, 400, 408, 413, 414, 431, 500, 503}


async def echo(request: Request) -> Response:
    return Response(200, f"{request.method} {request.path} {len(request.body)}".encode())


@contextlib.asynccontextmanager
async def clean_server() -> AsyncIterator[HttpServer]:
    """A server with small limits; on exit, proof that the case left nothing behind."""
    server = HttpServer(echo, max_body_bytes=4096, max_url_bytes=512, max_header_bytes=1024, max_headers=20)
    await server.start()
    baseline = len(asyncio.all_tasks())  # this task and the server's sweeper
    try:
        yield server
        await wait_until(lambda: server.connections == 0, timeout=30, what="every connection to close")
        await wait_until(lambda: len(asyncio.all_tasks()) == baseline, timeout=30, what="every handler task to end")
        async with HttpClient(server.url) as http:
            assert (await http.get("/alive")).status == 200
    finally:
        await server.stop()


async def send_and_half_close(server: HttpServer, data: bytes) -> bytes:
    """Write ``data``, say we are done writing, and read whatever comes back until the server closes."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(data)
        writer.write_eof()
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := await asyncio.wait_for(reader.read(65536), 30):
                received += chunk
        return received
    finally:
        writer.close()


def check_answers(answer: bytes) -> None:
    """Each response is well formed, with a status the server means; an error ends the stream."""
    codes = []
    while answer:
        assert answer.startswith(b"HTTP/1.1 "), answer[:80]
        head, separator, answer = answer.partition(b"\r\n\r\n")
        assert separator, "a response head was cut short"
        lines = head.split(b"\r\n")
        codes.append(int(lines[0].split()[1]))
        if codes[-1] == 100:
            continue
        length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
        assert len(answer) >= length
        answer = answer[length:]
    finals = [code for code in codes if code != 100]
    assert set(finals) <= MEANT, finals
    assert all(code == 200 for code in finals[:-1]), f"an error answer was not the last: {finals}"


VALID = [
    b"GET /a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    b"PUT /d HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
    b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
]  # no HEAD: its answer's framing depends on the request, which check_answers does not track

#: Bytes that break HTTP framing where they land.
NASTY = [
    b"\r",
    b"\n",
    b"\x00",
    b" ",
    b":",
    b"\r\n",
    b"\r\n\r\n",
    b"\xff",
    b"-1",
    b"ffffffffffffffffff",
    b"\t",
    b"chunked",
]


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    """A few valid requests back to back, then edits: bytes replaced, inserted, deleted, the stream cut."""
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=4))))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["insert", "replace", "delete"]))
        piece = draw(st.one_of(st.sampled_from(NASTY), st.binary(min_size=1, max_size=8)))
        if edit == "insert":
            data[at:at] = piece
        elif edit == "replace":
            data[at : at + len(piece)] = piece
        else:
            del data[at : at + draw(st.integers(1, 10))]
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


@settings(max_examples=150)
@given(data=st.one_of(mutated_requests(), st.binary(max_size=600)))
def test_mutated_and_random_input_never_breaks_the_server(data: bytes) -> None:
    """Valid requests edited at random, or random bytes: only meant statuses, errors last, nothing left behind."""

    async def scenario() -> None:
        async with clean_server() as server:
            check_answers(await send_and_half_close(server, data))

    asyncio.run(scenario())


REQUEST_LINE_PARTS = st.tuples(
    st.sampled_from([b"GET", b"POST", b"get", b"G ET", b"", b"PRI", b"CONNECT", b"\x00GET", b"GET\t"]),
    st.sampled_from([b"/", b"/a b", b"*", b"http://x/y", b"/\x7f", b"/%00", b"//", b"/" + b"a" * 600, b""]),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 ", b"http/1.1", b"HTTP/1.12", b""]),
    st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n"]),
)


@settings(max_examples=100)
@given(
    line=REQUEST_LINE_PARTS,
    headers=st.lists(st.binary(max_size=30), max_size=5),
    framing=st.sampled_from(
        [
            b"",
            b"Content-Length: 3\r\n",
            b"Content-Length: -3\r\n",
            b"Content-Length: 3\r\nContent-Length: 3\r\n",
            b"Content-Length: 99999999999999999999\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            b"Transfer-Encoding: gzip\r\n",
        ]
    ),
    body=st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"zz\r\nabc\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"]),
)
def test_broken_request_lines_and_framing_are_answered_or_closed(
    line: tuple[bytes, bytes, bytes, bytes], headers: list[bytes], framing: bytes, body: bytes
) -> None:
    """Broken methods, targets, versions, line ends, header lines and framings: only meant statuses, nothing left
    behind.
    """
    method, target, version, end = line
    data = (
        method
        + b" "
        + target
        + b" "
        + version
        + end
        + b"".join(h + b"\r\n" for h in headers)
        + framing
        + b"\r\n"
        + body
    )

    async def scenario() -> None:
        async with clean_server() as server:
            check_answers(await send_and_half_close(server, data))

    asyncio.run(scenario())


@pytest.mark.parametrize("abort", [False, True], ids=["close", "reset"])
def test_a_client_vanishing_at_any_byte_leaves_nothing_behind(abort: bool) -> None:
    """Pipelined valid requests cut off at every byte offset, by a close or a reset: no connection or task survives."""
    stream = b"".join(VALID)

    async def scenario() -> None:
        async with clean_server() as server:
            for offset in range(len(stream) + 1):
                _, writer = await asyncio.open_connection(server.host, server.port)
                writer.write(stream[:offset])
                await writer.drain()
                if abort:
                    writer.transport.abort()
                else:
                    writer.close()
            await wait_until(lambda: server.connections == 0, timeout=30, what="every cut connection to close")

    asyncio.run(scenario())


def test_pipelining_floods_on_many_connections_leave_nothing_behind() -> None:
    """20 connections each writing 2,000 pipelined requests without reading: answered or cut off, nothing leaks."""
    flood = b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n" * 2000

    async def scenario() -> None:
        async with clean_server() as server:
            answers = await asyncio.gather(*(send_and_half_close(server, flood) for _ in range(20)))
            for answer in answers:
                check_answers(answer)
                assert answer.count(b"HTTP/1.1 200") >= 1

    asyncio.run(scenario())
