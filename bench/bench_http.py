"""``sluiceway.http`` against uvicorn and aiohttp: ``python -m bench http``.

Measures, medians of ``REPEAT`` runs, ours and the peers' interleaved round by round, written to
``bench/results/http.json``:

- the webhook server's CPU per request: ``HttpServer`` with every limit on (its defaults: header,
  target, body, connection and pipelining caps, header/body deadlines, keep-alive sweep) against
  uvicorn (``http="httptools"``, embedded with ``Server.serve`` on the server process's uvloop
  loop, a bare ASGI app) and aiohttp's low-level ``web.Server``. Each server runs in its own
  process on uvloop, handling a ~600-byte webhook POST with a small JSON answer; the load comes
  from this process (``HttpClient``, ``CONCURRENCY`` keep-alive connections) and only the server
  process's CPU (user + system) is counted. Target: at least 1.5x uvicorn's requests per CPU-second.
- the client's CPU per request: ``HttpClient`` against ``aiohttp.ClientSession`` (same
  concurrency, one origin, keep-alive), POSTing to our server in another process; only this
  process's CPU is counted.

Ratios are requests per CPU-second, ours ÷ theirs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import psutil
import uvloop

from bench.harness import REPEAT, Comparison, Report, header, scaled

#: Requests per repetition and server.
REQUESTS = scaled(20_000)
#: Keep-alive connections the load keeps busy at once.
CONCURRENCY = 16
#: A status webhook of the size Meta sends (the body is only read, not parsed, by every server).
WEBHOOK = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"statuses":[{"id":"'
    + b"w" * 420
    + b'","status":"delivered"}]},"field":"messages"}]}]}'
)
ANSWER = b'{"ok":true}'
TARGET_VS_UVICORN = 1.5
SERVERS = ("ours", "uvicorn", "aiohttp")


# --- the servers, each in its own process -------------------------------------------------------


async def _ours() -> tuple[int, Callable[[], Awaitable[None]]]:
    from sluiceway.http import HttpServer, Request, Response

    async def handle(request: Request) -> Response:
        assert len(request.body) == len(WEBHOOK)
        return Response(200, ANSWER, content_type="application/json")

    server = HttpServer(handle)  # every limit at its default
    await server.start()
    return server.port, server.stop


async def _uvicorn() -> tuple[int, Callable[[], Awaitable[None]]]:
    import uvicorn

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        assert len(body) == len(WEBHOOK)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": ANSWER})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http="httptools", lifespan="off", access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)

    async def stop() -> None:
        server.should_exit = True
        await serving

    return sock.getsockname()[1], stop


async def _aiohttp() -> tuple[int, Callable[[], Awaitable[None]]]:
    from aiohttp import web

    async def handle(request: web.BaseRequest) -> web.Response:
        assert len(await request.read()) == len(WEBHOOK)
        return web.Response(body=ANSWER, content_type="application/json")

    server = web.Server(handle, access_log=None)
    listening = await asyncio.get_running_loop().create_server(server, "127.0.0.1", 0)

    async def stop() -> None:
        listening.close()
        await server.shutdown(1.0)

    return listening.sockets[0].getsockname()[1], stop


def _serve(conn: Connection, kind: str) -> None:
    async def main() -> None:
        port, stop = await {"ours": _ours, "uvicorn": _uvicorn, "aiohttp": _aiohttp}[kind]()
        conn.send(port)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await stop()

    uvloop.run(main())


class ServerProcess:
    """One server kind in a child process; ``cpu()`` is that process's CPU seconds so far."""

    def __init__(self, kind: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, kind), daemon=True)
        self._proc.start()
        self.url = f"http://127.0.0.1:{self._conn.recv()}"
        self._ps = psutil.Process(self._proc.pid)

    def cpu(self) -> float:
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def close(self) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


# --- the load and the clients -----------------------------------------------------------------


async def _spread(requests: int, one: Callable[[], Awaitable[int]]) -> None:
    """``requests`` calls of ``one`` over ``CONCURRENCY`` workers; every answer must be a 200."""

    async def worker(count: int) -> None:
        for _ in range(count):
            status = await one()
            assert status == 200, status

    share, extra = divmod(requests, CONCURRENCY)
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(CONCURRENCY)))


async def _our_client(url: str, requests: int) -> None:
    from sluiceway.http import HttpClient

    async with HttpClient(url, max_connections=CONCURRENCY, trust_env=False) as http:

        async def one() -> int:
            return (await http.post("/webhook", WEBHOOK)).status

        await _spread(requests, one)


async def _aiohttp_client(url: str, requests: int) -> None:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def one() -> int:
            async with session.post("/webhook", data=WEBHOOK, headers={"Content-Type": "application/json"}) as response:
                await response.read()
                return response.status

        await _spread(requests, one)


def servers(report: Report) -> None:
    header(f"webhook server: requests per CPU-second of the server ({REQUESTS:,} POSTs, {CONCURRENCY} connections)")
    procs = {kind: ServerProcess(kind) for kind in SERVERS}
    loop = uvloop.new_event_loop()
    samples: dict[str, list[float]] = {kind: [] for kind in SERVERS}
    try:
        for proc in procs.values():
            loop.run_until_complete(_our_client(proc.url, 2000))  # warm up
        for _ in range(REPEAT):
            for kind, proc in procs.items():
                before = proc.cpu()
                loop.run_until_complete(_our_client(proc.url, REQUESTS))
                samples[kind].append(REQUESTS / (proc.cpu() - before))
    finally:
        loop.close()
        for proc in procs.values():
            proc.close()
    ours = statistics.median(samples["ours"])
    peers = (("uvicorn", "uvicorn httptools", TARGET_VS_UVICORN), ("aiohttp", "aiohttp web.Server", None))
    for kind, peer, target in peers:
        report.add(
            Comparison(
                "server, all limits on",
                peer,
                ours,
                statistics.median(samples[kind]),
                "requests per CPU-second",
                target=target,
                samples_ours=samples["ours"],
                samples_theirs=samples[kind],
            )
        )
    for kind in SERVERS:
        report.figure(f"server CPU per request, {kind} (µs)", 1e6 / statistics.median(samples[kind]))


def clients(report: Report) -> None:
    header(f"client: requests per CPU-second of the client process ({REQUESTS:,} POSTs, {CONCURRENCY} connections)")
    proc = ServerProcess("ours")
    loop = uvloop.new_event_loop()
    runs = {"ours": _our_client, "aiohttp": _aiohttp_client}
    samples: dict[str, list[float]] = {name: [] for name in runs}
    try:
        for run in runs.values():
            loop.run_until_complete(run(proc.url, 2000))  # warm up
        for _ in range(REPEAT):
            for name, run in runs.items():
                before = time.process_time()
                loop.run_until_complete(run(proc.url, REQUESTS))
                samples[name].append(REQUESTS / (time.process_time() - before))
    finally:
        loop.close()
        proc.close()
    report.add(
        Comparison(
            "client POST",
            "aiohttp ClientSession",
            statistics.median(samples["ours"]),
            statistics.median(samples["aiohttp"]),
            "requests per CPU-second",
            samples_ours=samples["ours"],
            samples_theirs=samples["aiohttp"],
        )
    )
    for name in runs:
        report.figure(f"client CPU per request, {name} (µs)", 1e6 / statistics.median(samples[name]))


def main() -> None:
    report = Report("http")
    servers(report)
    clients(report)
    report.write()


if __name__ == "__main__":
    main()
