"""``sluiceway demo``: the property bot, end to end, on 127.0.0.1 against the WhatsApp and Sheets emulators.

Simulated tenants post signed webhooks to the ingress; the engine's workers answer from the
Sheets emulator (loaded with the example CSVs) through their caches; the BatchSender sends the
replies to the WhatsApp emulator, which posts delivery statuses back. Every reply quotes the
``wamid`` it answers, so the emulator's record proves that each inbound message got exactly
one reply, in order per tenant. ``--faults`` adds 5xx answers, a throughput cut (130429), an
outage, Sheets 503s and a SIGKILLed worker along the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from rich.console import Console
from rich.live import Live

from sluiceway.app.gc_tuning import tune_for_serving
from sluiceway.app.runtime import Runtime
from sluiceway.demo.local import emulated_runtime
from sluiceway.demo.report import write_reports
from sluiceway.demo.snapshot import Snapshot
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


class _FaultPlan:
    """Injects one fault at each progress mark (share of the expected replies)."""

    def __init__(self, runtime: Runtime, whatsapp: WhatsAppEmulator, sheets: SheetsEmulator, rate: int) -> None:
        self._steps: list[tuple[float, str, Callable[[], None]]] = [
            (0.15, "WhatsApp answers 30 requests with HTTP 500", lambda: whatsapp.fail_next(30, 500)),
            (0.25, "Sheets answers 5 requests with 503", lambda: sheets.fail_next(5, 503)),
            (0.35, f"throughput cut to {max(1, rate // 4)}/s for 4 s (130429)", lambda: self._cut(whatsapp, rate)),
            (0.55, "WhatsApp outage for 3 s (503)", lambda: whatsapp.outage(3.0)),
            (0.70, "SIGKILL of a worker", lambda: self._kill_worker(runtime)),
        ]
        self.events: list[str] = []

    @staticmethod
    def _cut(whatsapp: WhatsAppEmulator, rate: int) -> None:
        whatsapp.set_throughput(max(1, rate // 4))
        asyncio.get_running_loop().call_later(4.0, whatsapp.set_throughput, float(rate))

    def _kill_worker(self, runtime: Runtime) -> None:
        assert runtime.engine is not None
        pids = runtime.engine.worker_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            self.events.append(f"killed worker {pids[0]}")

    def tick(self, progress: float, elapsed: float) -> None:
        while self._steps and progress >= self._steps[0][0]:
            _, description, inject = self._steps.pop(0)
            inject()
            self.events.append(f"{elapsed:.1f} s: {description}")


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
    state_dir = tempfile.TemporaryDirectory(prefix="sluiceway-demo-state-")
    runtime = emulated_runtime(
        BOT,
        app_secret=app_secret,
        whatsapp_url=whatsapp.base_url,
        phone_number_id=whatsapp.phone_number_id,
        access_token=whatsapp.access_token,
        sheets_url=sheets.url,
        spreadsheet_id=SPREADSHEET_ID,
        workers=options.workers,
        rate=options.rate,
        pair_limit=(PAIR_LIMIT, PAIR_WINDOW),
        state_dir=state_dir.name,
    )
    rng = random.Random(options.seed)
    conversations = [conversation(i, options.messages, rng) for i in range(options.conversations)]
    expected = options.conversations * options.messages
    snapshots: list[Snapshot] = []
    started = time.monotonic()
    try:
        await runtime.start()
        tune_for_serving()
        whatsapp.webhook_url = runtime.webhook_url
        # Spread the messages so that all tenants together offer OFFERED_LOAD × the cap.
        duration = expected / (OFFERED_LOAD * options.rate)
        crowd = TenantCrowd(runtime.webhook_url, app_secret, conversations, duration=duration, seed=options.seed)
        faults = _FaultPlan(runtime, whatsapp, sheets, options.rate) if options.faults else None
        sampler = _Sampler(runtime, whatsapp, sheets, conversations, started)
        crowd_task = asyncio.ensure_future(crowd.run())
        title = (
            f"sluiceway demo: {options.conversations:,} tenants × "
            f"{options.messages} messages, {options.workers} workers"
        )
        live = Live(live_panel(sampler.sample([]), expected, title), console=console, refresh_per_second=4)
        with live if options.live else contextlib.nullcontext():
            while True:
                await asyncio.sleep(SAMPLE_INTERVAL)
                if crowd_task.done() and crowd_task.exception() is not None:
                    raise crowd_task.exception()  # type: ignore[misc]
                events = faults.events if faults is not None else []
                snapshot = sampler.sample(events)
                snapshots.append(snapshot)
                if options.live:
                    live.update(live_panel(snapshot, expected, title))
                if faults is not None:
                    faults.tick(sampler.answered / expected, snapshot.t)
                if crowd_task.done() and sampler.answered >= expected:
                    break
                if snapshot.t > options.timeout:
                    console.print(f"[red]timed out after {options.timeout:.0f} s[/]")
                    break
        crowd_task.cancel()
        await asyncio.gather(crowd_task, return_exceptions=True)
        summary = await runtime.stop()
        console.print(summary.line())
    finally:
        await whatsapp.stop()
        await sheets.stop()
        state_dir.cleanup()
    elapsed = time.monotonic() - started
    verdict = verify(conversations, whatsapp.accepted)
    if snapshots:
        console.print(summary_table(snapshots[-1], verdict, elapsed))
    settings_used = msgspec.to_builtins(options) | {"bot": BOT}
    json_path, html_path = write_reports(Path(options.report_dir), settings_used, snapshots, verdict, elapsed)
    console.print(f"reports: {html_path} and {json_path}")
    return DemoResult(verdict, elapsed, snapshots, str(json_path), str(html_path))


class _Sampler:
    """Turns the components' counters into ``Snapshot``s."""

    def __init__(
        self,
        runtime: Runtime,
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

    @property
    def answered(self) -> int:
        return len(self._answered)

    def sample(self, events: list[str]) -> Snapshot:
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
        runtime = self._runtime
        sink, engine, sender, monitor = runtime.sink, runtime.engine, runtime.sender, runtime.monitor
        hits, misses = sink.cache_totals() if sink is not None else (0, 0)
        sender_stats = sender.stats() if sender is not None else {}
        return Snapshot(
            t=now - self._started,
            inbound=runtime.ingress.stats.accepted if runtime.ingress is not None else 0,
            replies=len(self._answered),
            throughput=throughput,
            latency_p50=quantile(latencies, 0.50),
            latency_p99=quantile(latencies, 0.99),
            cache_hit_rate=hits / (hits + misses) if hits + misses else 0.0,
            sheets_requests=self._sheets.total_requests,
            sheets_reads=hits + misses,
            throttle_events=int(sender_stats.get("throttle_events", 0)),
            sender_retries=int(sender_stats.get("retries", 0)),
            workers=len(engine.worker_pids()) if engine is not None else 0,
            queued=engine.get_statistics().queued if engine is not None else 0,
            alerts=[f"{a.metric}: {a.level}" for a in monitor.alerts()] if monitor is not None else [],
            events=list(events),
        )
