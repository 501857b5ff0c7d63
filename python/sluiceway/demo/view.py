"""The demo's live terminal view (rich): messages in and out, throughput, latency, cache, quotas, workers."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from sluiceway.demo.snapshot import Recovery, Snapshot
from sluiceway.demo.verify import Verdict


def live_panel(snapshot: Snapshot, expected: int, title: str) -> Panel:
    """One frame of the live view."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    table.add_row("messages in", f"{snapshot.inbound:,} / {expected:,}", "replies out", f"{snapshot.replies:,}")
    table.add_row("throughput", f"{snapshot.throughput:,.0f} replies/s", "engine queue", f"{snapshot.queued:,}")
    table.add_row(
        "sender backlog", f"{snapshot.sender_backlog:,} replies", "send retries", f"{snapshot.sender_retries:,}"
    )
    table.add_row(
        "reply p50", f"{snapshot.latency_p50 * 1000:,.0f} ms", "reply p99", f"{snapshot.latency_p99 * 1000:,.0f} ms"
    )
    table.add_row(
        "cache hit rate",
        f"{snapshot.cache_hit_rate:.1%}",
        "Sheets requests / reads",
        f"{snapshot.sheets_requests:,} / {snapshot.sheets_reads:,}",
    )
    workers = str(snapshot.workers) if snapshot.up else "[bold red]runtime down[/]"
    table.add_row("throttle events", f"{snapshot.throttle_events:,}", "workers", workers)
    table.add_row("elapsed", f"{snapshot.t:,.1f} s", "", "")
    progress = ProgressBar(total=max(expected, 1), completed=snapshot.replies, width=60)
    lines: list[object] = [table, progress]
    if snapshot.alerts:
        lines.append("[bold red]alerts:[/] " + "; ".join(snapshot.alerts))
    if snapshot.events:
        lines.append("[yellow]faults:[/] " + "; ".join(snapshot.events[-4:]))
    return Panel(Group(*lines), title=title, border_style="green")  # type: ignore[arg-type]


def summary_table(snapshot: Snapshot, verdict: Verdict, elapsed: float, recovery: Recovery | None = None) -> Table:
    """The closing summary."""
    table = Table(title="sluiceway demo", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("inbound messages", f"{verdict.inbound:,}"),
        ("answered exactly once", f"{verdict.replied - len(verdict.duplicated):,}"),
        ("missing replies", f"{len(verdict.missing):,}"),
        ("duplicate replies", f"{len(verdict.duplicated):,}"),
        ("uncertain re-sends (allowed duplicates)", f"{verdict.uncertain_resends:,}"),
        ("tenants answered out of order", f"{len(verdict.out_of_order):,}"),
        ("reply latency p50 / p99", f"{verdict.latency_p50 * 1000:,.0f} / {verdict.latency_p99 * 1000:,.0f} ms"),
        ("mean throughput", f"{verdict.replied / max(elapsed, 1e-9):,.1f} replies/s"),
        ("cache hit rate", f"{snapshot.cache_hit_rate:.1%}"),
        ("Sheets API requests / reads", f"{snapshot.sheets_requests:,} / {snapshot.sheets_reads:,}"),
        ("throttle events", f"{snapshot.throttle_events:,}"),
        ("elapsed", f"{elapsed:,.1f} s"),
        *recovery_rows(recovery),
        ("verdict", "[bold green]OK[/]" if verdict.ok else "[bold red]FAILED[/]"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def recovery_rows(recovery: Recovery | None) -> list[tuple[str, str]]:
    """The restart after ``kill -9`` in figures (none without one)."""
    if recovery is None:
        return []
    first_reply = f"{recovery.first_reply:,.1f} s" if recovery.first_reply is not None else "none"
    return [
        ("kill -9 of the runtime at", f"{recovery.killed_at:,.1f} s, {recovery.in_flight:,} messages in flight"),
        ("restart took", f"{recovery.restart:,.1f} s"),
        ("kill → first 200 / first reply after the restart", f"{recovery.first_200:,.1f} s / {first_reply}"),
        ("webhooks re-delivered (no 200 while down)", f"{recovery.redelivered:,}"),
    ]
