"""``sluiceway demo``: the property bot, end to end, on 127.0.0.1 against the WhatsApp and Sheets emulators.

Simulated tenants post signed webhooks to the ingress; the engine's workers answer from the
Sheets emulator (loaded with the example CSVs) through their caches; the BatchSender sends the
replies to the WhatsApp emulator, which posts delivery statuses back. Every reply quotes the
``wamid`` it answers, so the emulator's record proves that each inbound message got exactly
one reply, in order per tenant. The runtime runs in its own process group
(:mod:`sluiceway.demo.process`). ``--faults`` adds, spread over the time the tenants post,
5xx answers, Sheets 503s, a throughput cut (130429), a ``kill -9`` of the whole runtime and its
restart on the same state_dir and port, an outage and a SIGKILLed worker; tenants re-post
what got no 200, as Meta does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from rich.console import Console
from rich.live import Live

from sluiceway.demo.process import PipelineSample, RuntimeProcess, RuntimeSpec, free_port
from sluiceway.demo.report import write_reports
from sluiceway.demo.snapshot import FaultEvent, Recovery, Snapshot
from sluiceway.demo.tenants import Sent, TenantCrowd, conversation
from sluiceway.demo.verify import Verdict, quantile, verify
from sluiceway.demo.view import live_panel, summary_table
from sluiceway.examples.property_bot import SHEETS
from sluiceway.testing import SheetsEmulator, WhatsAppEmulator

#: The bot the demo runs.
BOT = "sluiceway.examples.property_bot.app:bot"
#: The demo spreadsheet's id in the Sheets emulator.
SPREADSHEET_ID = "demo-property-sheet"
#: Pair rate of the demo (emulator and sender agree): a short conversation is not throttled.
PAIR_LIMIT, PAIR_WINDOW = 5, 6.0
#: The tenants together offer this share of the WhatsApp cap (below it, latency stays low).
OFFERED_LOAD = 0.8
#: Seconds between samples of the live view and the report.
SAMPLE_INTERVAL = 0.5
#: Latency percentiles in the live view cover the replies of this many recent seconds.
LATENCY_WINDOW = 5.0
#: The runtime processes' log (warnings and errors), copied next to the reports.
RUNTIME_LOG = "demo-runtime.log"
#: Seconds the restarted runtime may take to answer its first 200 before the demo stops waiting for it.
RECOVERY_TIMEOUT = 120.0


class DemoOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The demo's sizes and switches (each is a ``sluiceway demo`` flag)."""

    conversations: int = 1000
    messages: int = 3
    workers: int = 2
    rate: int = 80
    faults: bool = False
    report_dir: str = "."
    seed: int = 7
    live: bool = True
    timeout: float = 600.0

    def __post_init__(self) -> None:
        for name in ("conversations", "messages", "workers", "rate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")


class DemoResult(msgspec.Struct):
    verdict: Verdict
    elapsed: float
    snapshots: list[Snapshot]
    json_path: str
    html_path: str
    faults: list[FaultEvent] = msgspec.field(default_factory=list)
    recovery: Recovery | None = None


class _FaultPlan:
    """Injects each fault at its share of ``duration``, the seconds over which the tenants post.

    Timed by the traffic, not by the replies, so every fault (the ``kill -9`` above all) lands
    while messages are arriving and in flight, whatever the run's length. The faults after the
    kill wait until the restarted runtime has sent its first reply, so that the recovery time
    measures the restart, not an outage that happened to follow it.
    """

    def __init__(
        self,
        runtime: RuntimeProcess,
        whatsapp: WhatsAppEmulator,
        sheets: SheetsEmulator,
        crowd: TenantCrowd,
        rate: int,
        duration: float,
        started: float,
        clock: Callable[[], float],
    ) -> None:
        self._runtime = runtime
        self._whatsapp = whatsapp
        #: The demo's start (event times count from it) and the traffic's (fault times count from it).
        self._started = self._traffic_started = started
        self._crowd = crowd
        self._clock = clock
        cut = max(1, rate // 4)
        self._steps: list[tuple[float, str, Callable[[], object]]] = [
            # Fewer 500s than the breaker's minimum_calls: they are retried, and do not hold it open
            # while its half-open probes use them up 3 per 30 s.
            (0.10 * duration, "WhatsApp answers 8 requests with HTTP 500", lambda: whatsapp.fail_next(8, 500)),
            (0.20 * duration, "Sheets answers 5 requests with 503", lambda: sheets.fail_next(5, 503)),
            (0.30 * duration, f"throughput cut to {cut}/s for 4 s (130429)", lambda: self._cut(whatsapp, rate)),
            (0.45 * duration, "kill -9 of the whole runtime", self._crash),
            (0.65 * duration, "WhatsApp outage for 3 s (503)", lambda: whatsapp.outage(3.0)),
            (0.80 * duration, "SIGKILL of a worker", self._kill_worker),
        ]
        self.events: list[FaultEvent] = []
        self.recovery: Recovery | None = None
        self._crashing: asyncio.Task[None] | None = None
        self._restarted_at = 0.0
        self._last: tuple[Snapshot, PipelineSample | None] | None = None

    @staticmethod
    def _cut(whatsapp: WhatsAppEmulator, rate: int) -> None:
        whatsapp.set_throughput(max(1, rate // 4))
        asyncio.get_running_loop().call_later(4.0, whatsapp.set_throughput, float(rate))

    def _kill_worker(self) -> str | None:
        sample = self._last[1] if self._last is not None else None
        if sample is None or not sample.worker_pids:
            return "no worker to kill (the runtime is down)"
        with contextlib.suppress(ProcessLookupError):
            os.kill(sample.worker_pids[0], signal.SIGKILL)
        return f"SIGKILL of worker {sample.worker_pids[0]}"

    def _crash(self) -> Awaitable[None]:
        self._crashing = asyncio.ensure_future(self._kill_and_restart())
        return self._crashing

    async def _kill_and_restart(self) -> None:
        """``kill -9`` the runtime's process group, restart it on the same state_dir and port, time the recovery."""
        crowd, runtime = self._crowd, self._runtime
        snapshot = self._last[0] if self._last is not None else None
        in_flight = snapshot.inbound - snapshot.replies if snapshot is not None else 0
        killed_at = self._clock()
        not_answered_before = crowd.errors + crowd.rejected
        accepted_before = crowd.accepted
        await runtime.kill()
        self._note(killed_at, f"runtime killed (SIGKILL to its process group), {in_flight:,} messages in flight")
        restart = await runtime.start()
        self._restarted_at = self._clock()
        self._note(self._restarted_at, f"runtime restarted on the same state_dir and port in {restart:.1f} s")
        deadline = self._clock() + RECOVERY_TIMEOUT
        while crowd.accepted == accepted_before and self._clock() < deadline:
            await asyncio.sleep(0.005)
        first_200 = self._clock() - killed_at
        self._note(self._clock(), f"first webhook answered 200 after the kill: {first_200:.1f} s")
        self.recovery = Recovery(
            killed_at=round(killed_at - self._started, 2),
            in_flight=in_flight,
            restart=restart,
            first_200=first_200,
            first_reply=None,
            redelivered=crowd.errors + crowd.rejected - not_answered_before,
        )

    def _replied_since_restart(self) -> bool:
        accepted = self._whatsapp.accepted
        return bool(self._crashing and self._crashing.done() and accepted and accepted[-1].at > self._restarted_at)

    def _note(self, at: float, label: str) -> None:
        self.events.append(FaultEvent(round(at - self._started, 2), label))

    def traffic_started(self, at: float) -> None:
        self._traffic_started = at

    def tick(self, snapshot: Snapshot, sample: PipelineSample | None) -> None:
        """Inject what is due by now; ``snapshot`` and ``sample`` are the pipeline's latest figures."""
        self._last = (snapshot, sample)
        if self._crashing is not None and not self._replied_since_restart():
            return
        elapsed = self._clock() - self._traffic_started
        while self._steps and elapsed >= self._steps[0][0]:
            _, description, inject = self._steps.pop(0)
            outcome = inject()
            self._note(self._clock(), outcome if isinstance(outcome, str) else description)

    async def settle(self, replied_at: list[float]) -> None:
        """Wait for a restart in progress; fill in the first reply after the restart from the replies' times.

        Replies the API records between the kill and the restart were on the wire at the kill
        (the restart re-sends those, counted as uncertain): recovery counts from the restart on.
        """
        if self._crashing is not None:
            await self._crashing
        if self.recovery is not None:
            killed_at = self._started + self.recovery.killed_at
            after = [at for at in replied_at if at > self._restarted_at]
            first = min(after) - killed_at if after else None
            self.recovery = msgspec.structs.replace(self.recovery, first_reply=first)
            if first is not None:
                self._note(killed_at + first, f"first reply after the restart: {first:.1f} s after the kill")
        self.events.sort(key=lambda event: event.t)


async def run_demo(options: DemoOptions, console: Console | None = None) -> DemoResult:
    """Run the demo and write its reports; the verdict says whether every message got its reply."""
    console = console or Console()
    app_secret = secrets.token_hex(16)
    sheets = SheetsEmulator()
    await sheets.start()
    for name, path in SHEETS.items():
        sheets.load_csv(SPREADSHEET_ID, name, path)
    whatsapp = WhatsAppEmulator(
        throughput=float(options.rate), pair_limit=PAIR_LIMIT, pair_window=PAIR_WINDOW, app_secret=app_secret
    )
    await whatsapp.start()
    work = tempfile.TemporaryDirectory(prefix="sluiceway-demo-")
    spec = RuntimeSpec(
        bot=BOT,
        app_secret=app_secret,
        whatsapp_url=whatsapp.base_url,
        phone_number_id=whatsapp.phone_number_id,
        access_token=whatsapp.access_token,
        sheets_url=sheets.url,
        spreadsheet_id=SPREADSHEET_ID,
        workers=options.workers,
        rate=options.rate,
        pair_limit=(PAIR_LIMIT, PAIR_WINDOW),
        state_dir=str(Path(work.name) / "state"),
        port=free_port(),
        sample_port=free_port(),
    )
    runtime = RuntimeProcess(spec, Path(work.name) / "runtime.log")
    rng = random.Random(options.seed)
    conversations = [conversation(i, options.messages, rng) for i in range(options.conversations)]
    expected = options.conversations * options.messages
    # Spread the messages so that all tenants together offer OFFERED_LOAD × the cap.
    duration = expected / (OFFERED_LOAD * options.rate)
    snapshots: list[Snapshot] = []
    faults: _FaultPlan | None = None
    started = time.monotonic()
    try:
        await runtime.start()
        whatsapp.webhook_url = runtime.webhook_url
        crowd = TenantCrowd(runtime.webhook_url, app_secret, conversations, duration=duration, seed=options.seed)
        if options.faults:
            faults = _FaultPlan(runtime, whatsapp, sheets, crowd, options.rate, duration, started, time.monotonic)
        sampler = _Sampler(runtime, whatsapp, sheets, conversations, started)
        crowd_task = asyncio.ensure_future(crowd.run())
        if faults is not None:
            faults.traffic_started(time.monotonic())
        title = (
            f"sluiceway demo: {options.conversations:,} tenants × "
            f"{options.messages} messages, {options.workers} workers"
        )
        live = Live(live_panel(await sampler.sample([]), expected, title), console=console, refresh_per_second=4)
        with live if options.live else contextlib.nullcontext():
            while True:
                await asyncio.sleep(SAMPLE_INTERVAL)
                if crowd_task.done() and crowd_task.exception() is not None:
                    raise crowd_task.exception()  # type: ignore[misc]
                events = [event.line() for event in faults.events] if faults is not None else []
                snapshot = await sampler.sample(events)
                snapshots.append(snapshot)
                if options.live:
                    live.update(live_panel(snapshot, expected, title))
                if faults is not None:
                    faults.tick(snapshot, sampler.last)
                if crowd_task.done() and sampler.answered >= expected:
                    break
                if snapshot.t > options.timeout:
                    console.print(f"[red]timed out after {options.timeout:.0f} s[/]")
                    break
        crowd_task.cancel()
        await asyncio.gather(crowd_task, return_exceptions=True)
        if faults is not None:
            await faults.settle([record.at for record in whatsapp.accepted])
        code = await runtime.stop()
        if code != 0:
            console.print(f"[red]the runtime exited with {code}[/]; the end of its log:\n{runtime.log_tail()}")
    finally:
        await runtime.aclose()
        await whatsapp.stop()
        await sheets.stop()
        _keep_log(runtime.log_path, Path(options.report_dir))
        work.cleanup()
    elapsed = time.monotonic() - started
    verdict = verify(conversations, whatsapp.accepted, uncertain_resends=runtime.uncertain_resends)
    fault_events = faults.events if faults is not None else []
    recovery = faults.recovery if faults is not None else None
    if snapshots:
        console.print(summary_table(snapshots[-1], verdict, elapsed, recovery))
    settings_used = msgspec.to_builtins(options) | {
        "bot": BOT,
        "offered load": f"{OFFERED_LOAD:.0%} of the cap over {duration:.0f} s",
        "pair rate": f"{PAIR_LIMIT} per {PAIR_WINDOW:.0f} s per tenant",
        "runtime": f"its own process group, webhook on port {spec.port}",
    }
    json_path, html_path = write_reports(
        Path(options.report_dir), settings_used, snapshots, verdict, elapsed, fault_events, recovery
    )
    console.print(f"reports: {html_path} and {json_path}")
    return DemoResult(verdict, elapsed, snapshots, str(json_path), str(html_path), fault_events, recovery)


def _keep_log(log: Path, report_dir: Path) -> None:
    """Copy the runtime's log next to the reports (the work directory holding it is deleted)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        shutil.copyfile(log, report_dir / RUNTIME_LOG)


class _Sampler:
    """Turns the emulators' records and the runtime's figures into ``Snapshot``s.

    The runtime's counters start at 0 with each of its processes: the sampler adds each ended
    process's last figures, so the report's counters run on across a restart.
    """

    def __init__(
        self,
        runtime: RuntimeProcess,
        whatsapp: WhatsAppEmulator,
        sheets: SheetsEmulator,
        conversations: list[list[Sent]],
        started: float,
    ) -> None:
        self._runtime = runtime
        self._whatsapp = whatsapp
        self._sheets = sheets
        self._posted_at = {m.wamid: m for c in conversations for m in c}
        self._started = started
        self._seen = 0
        self._answered: set[str] = set()
        self._recent: list[tuple[float, float]] = []
        self._last = (started, 0)
        #: The runtime's last sample, and the start it came from.
        self.last: PipelineSample | None = None
        self._last_start = 0
        #: Counters of the ended processes, added up.
        self._ended = _Totals()

    @property
    def answered(self) -> int:
        return len(self._answered)

    async def sample(self, events: list[str]) -> Snapshot:
        pipeline = await self._runtime.sample()
        now = time.monotonic()
        accepted = self._whatsapp.accepted
        for record in accepted[self._seen :]:
            context = record.message.context
            inbound = self._posted_at.get(context.message_id) if context is not None else None
            if inbound is not None and inbound.wamid not in self._answered:
                self._answered.add(inbound.wamid)
                self._recent.append((record.at, record.at - inbound.posted_at))
        self._seen = len(accepted)
        self._recent = [(at, latency) for at, latency in self._recent if at >= now - LATENCY_WINDOW]
        latencies = sorted(latency for _, latency in self._recent)
        last_t, last_count = self._last
        throughput = (len(accepted) - last_count) / max(now - last_t, 1e-9)
        self._last = (now, len(accepted))
        if pipeline is not None and self._runtime.starts != self._last_start:
            if self.last is not None:
                self._ended = self._ended.plus(self.last)
            self._last_start = self._runtime.starts
        if pipeline is not None:
            self.last = pipeline
        up = pipeline is not None
        shown = self.last
        totals = self._ended.plus(shown) if shown is not None else self._ended
        hits, misses = totals.cache_hits, totals.cache_misses
        return Snapshot(
            t=now - self._started,
            inbound=totals.received,
            replies=len(self._answered),
            throughput=throughput,
            latency_p50=quantile(latencies, 0.50),
            latency_p99=quantile(latencies, 0.99),
            cache_hit_rate=hits / (hits + misses) if hits + misses else 0.0,
            sheets_requests=self._sheets.total_requests,
            sheets_reads=hits + misses,
            throttle_events=totals.throttle_events,
            sender_retries=totals.sender_retries,
            workers=len(shown.worker_pids) if shown is not None and up else 0,
            queued=shown.queued if shown is not None and up else 0,
            sender_backlog=shown.sender_backlog if shown is not None and up else 0,
            alerts=shown.alerts if shown is not None and up else [],
            events=list(events),
            up=up,
        )


class _Totals(msgspec.Struct, frozen=True):
    """The runtime's counters summed over its processes."""

    received: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    throttle_events: int = 0
    sender_retries: int = 0

    def plus(self, sample: PipelineSample) -> _Totals:
        return _Totals(
            self.received + sample.received,
            self.cache_hits + sample.cache_hits,
            self.cache_misses + sample.cache_misses,
            self.throttle_events + sample.throttle_events,
            self.sender_retries + sample.sender_retries,
        )
