"""The demo's runtime in its own process group, so that ``--faults`` can ``kill -9`` all of it and start it again.

The demo (the parent) starts ``python -m sluiceway.demo.process`` in a new session with a
``RuntimeSpec`` in the environment (it carries the app secret, so it stays off the command
line). The child runs :func:`~sluiceway.demo.local.emulated_runtime` on the spec's fixed webhook
port and state_dir, and serves its pipeline figures as JSON at ``/sample`` on a second fixed
port on 127.0.0.1, for the live view and the report. SIGTERM drains it as ``sluiceway run``
does; a SIGKILL of the whole group loses nothing answered 200 (the journal in state_dir), which
is what a restart on the same state_dir and port shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import msgspec

from sluiceway.app.gc_tuning import tune_for_serving
from sluiceway.app.runtime import Runtime
from sluiceway.demo.local import emulated_runtime
from sluiceway.http import HttpClient, HttpError, HttpServer, Request, Response

#: The environment variable that hands the child its ``RuntimeSpec`` (JSON).
SPEC_ENV = "SLUICEWAY_DEMO_RUNTIME"
#: Seconds a runtime may take to start (workers spawned, journal recovered) on a loaded machine.
START_TIMEOUT = 120.0
#: Seconds a SIGTERMed runtime may take to drain.
STOP_TIMEOUT = 60.0
#: Seconds between the child's checks that the demo that started it still runs.
ORPHAN_CHECK_INTERVAL = 1.0


class RuntimeSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What the child runs: ``emulated_runtime``'s arguments plus the fixed ports."""

    bot: str
    app_secret: str
    whatsapp_url: str
    phone_number_id: str
    access_token: str
    sheets_url: str
    spreadsheet_id: str
    workers: int
    rate: int
    pair_limit: tuple[int, float]
    state_dir: str
    port: int
    sample_port: int


class PipelineSample(msgspec.Struct, frozen=True, kw_only=True):
    """The runtime's own figures; counters count from the start of its process."""

    received: int
    duplicates: int
    recovered: int
    cache_hits: int
    cache_misses: int
    throttle_events: int
    sender_retries: int
    #: Replies the sender holds and has not had accepted yet: queued, on the wire or retrying.
    sender_backlog: int
    worker_pids: list[int]
    queued: int
    alerts: list[str]
    uncertain_resends: int
    resent_after_restart: int


def sample(runtime: Runtime) -> PipelineSample:
    """``runtime``'s figures now (it must be started); the senders' are summed over its business numbers."""
    sink, engine, monitor, outbox = runtime.sink, runtime.engine, runtime.monitor, runtime.outbox
    assert sink is not None and engine is not None and runtime.ingress is not None and outbox is not None
    hits, misses = sink.cache_totals()
    senders = list(runtime.senders.values())
    stats = [sender.stats() for sender in senders]
    backlog = sum(
        states["queued"] + states["in_flight"] + states["retrying"]
        for sender in senders
        for states in sender.queue_status().values()
    )
    return PipelineSample(
        received=runtime.ingress.stats.accepted,
        duplicates=runtime.ingress.stats.duplicates,
        recovered=sink.stats.recovered,
        cache_hits=hits,
        cache_misses=misses,
        throttle_events=sum(int(s.get("throttle_events", 0)) for s in stats),
        sender_retries=sum(int(s.get("retries", 0)) for s in stats),
        sender_backlog=backlog,
        worker_pids=engine.worker_pids(),
        queued=engine.get_statistics().queued,
        alerts=[f"{a.metric}: {a.level}" for a in monitor.alerts()] if monitor is not None else [],
        uncertain_resends=outbox.uncertain_resends,
        resent_after_restart=outbox.resent,
    )


_encode_sample = msgspec.json.Encoder().encode
_decode_sample = msgspec.json.Decoder(PipelineSample).decode


async def _serve(spec: RuntimeSpec) -> None:
    runtime = emulated_runtime(
        spec.bot,
        app_secret=spec.app_secret,
        whatsapp_url=spec.whatsapp_url,
        phone_number_id=spec.phone_number_id,
        access_token=spec.access_token,
        sheets_url=spec.sheets_url,
        spreadsheet_id=spec.spreadsheet_id,
        workers=spec.workers,
        rate=spec.rate,
        pair_limit=spec.pair_limit,
        state_dir=spec.state_dir,
        port=spec.port,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    orphaned = asyncio.create_task(_die_with_the_demo())
    await runtime.start()
    tune_for_serving()

    async def answer(request: Request) -> Response:
        if request.path != "/sample":
            return Response.text(404, f"nothing at {request.path}")
        return Response(200, _encode_sample(sample(runtime)), content_type="application/json")

    server = HttpServer(answer)
    await server.start("127.0.0.1", spec.sample_port)
    await stop.wait()
    orphaned.cancel()
    await server.stop()
    await runtime.stop()


async def _die_with_the_demo() -> None:
    """SIGKILL this process group once the demo that started it is gone (killed, so it could not stop it).

    Nothing would read its figures or stop it, the emulators it talks to died with the demo, and
    its state_dir is the demo's temporary directory: a drain would only wait for them.
    """
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(ORPHAN_CHECK_INTERVAL)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def main() -> None:
    """The child: run the runtime described by ``$SLUICEWAY_DEMO_RUNTIME`` until SIGTERM."""
    spec = msgspec.json.decode(os.environ[SPEC_ENV], type=RuntimeSpec)
    logging.basicConfig(level="WARNING", format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop does not exist on Windows
        asyncio.run(_serve(spec))
    else:
        uvloop.run(_serve(spec))


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RuntimeProcess:
    """The parent's handle: one runtime process group at a time on the spec's ports and state_dir.

    ``start`` again after ``kill`` restarts it where the last one left off. ``log_path`` collects
    the children's output (the demo shows its end when a start fails).
    """

    def __init__(self, spec: RuntimeSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        #: How many times it was started.
        self.starts = 0
        #: Replies re-sent by its starts although they may have reached WhatsApp before (summed over starts).
        self.uncertain_resends = 0
        self._http = HttpClient(f"http://127.0.0.1:{spec.sample_port}", timeout=5.0, connect_timeout=1.0)

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.spec.port}/webhook"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> float:
        """Start the runtime and wait until it serves; returns the seconds that took."""
        began = time.monotonic()
        env = {**os.environ, SPEC_ENV: msgspec.json.encode(self.spec).decode()}
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sluiceway.demo.process",
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: a kill takes the workers too
            )
        self.starts += 1
        while True:
            first = await self.sample()
            if first is not None:
                break
            if self.process.returncode is not None or time.monotonic() - began > START_TIMEOUT:
                await self.kill()
                raise RuntimeError(f"the demo's runtime did not start; the end of its log:\n{self.log_tail()}")
            await asyncio.sleep(0.05)
        # A start counts its uncertain re-sends before it serves (Runtime.start), so the first sample has them.
        self.uncertain_resends += first.uncertain_resends
        return time.monotonic() - began

    async def sample(self) -> PipelineSample | None:
        """Its figures now, or None while it is down."""
        try:
            response = await self._http.get("/sample")
        except HttpError:
            return None
        return _decode_sample(response.body) if response.status == 200 else None

    async def kill(self) -> None:
        """SIGKILL the whole process group (supervisor, workers, monitor) at once, like ``kill -9 -<pgid>``."""
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM (the runtime drains); its exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                await self.kill()
        assert self.process.returncode is not None
        return self.process.returncode

    async def aclose(self) -> None:
        await self.kill()
        await self._http.aclose()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


if __name__ == "__main__":
    main()
