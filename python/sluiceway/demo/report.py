"""The demo's report files: ``demo-report.json`` and a self-contained ``demo-report.html`` with charts.

The page needs no script and no network (inline SVG). It shows the run's settings, the verdict,
the restart after ``kill -9`` with its recovery times, the faults in time order, and charts whose
axes carry ticks with units and whose time axis marks every fault (numbered as in the list).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from sluiceway.demo.snapshot import FaultEvent, Recovery, Snapshot
from sluiceway.demo.verify import Verdict
from sluiceway.demo.view import recovery_rows

#: Chart size in the HTML report (SVG user units) and the margins the axes' labels use.
CHART_WIDTH, CHART_HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 30
#: About this many ticks per axis.
TICKS = 5

Series = tuple[str, str, Sequence[tuple[float, float]]]


def nice_ticks(high: float, count: int = TICKS) -> list[float]:
    """Ticks from 0 on a 1-2-5 step, the last one above ``high`` (so a flat line is not on the edge)."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    last = math.floor(high / step) + 1
    while round(last * step, 12) <= high:  # high / step lost a bit (0.3 / 0.1 = 2.999...)
        last += 1
    return [round(i * step, 12) for i in range(last + 1)]


def _label(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.2g}"
    return f"{text} {unit}".rstrip()


def chart(title: str, unit: str, series: Sequence[Series], faults: Sequence[FaultEvent], t_end: float) -> str:
    """An inline SVG line chart with y ticks in ``unit``, x ticks in seconds and a marker per fault."""
    points = [p for _, _, values in series for p in values]
    if not points:
        return f"<h3>{html.escape(title)}</h3><p>no data</p>"
    x_ticks = nice_ticks(max(t_end, max(p[0] for p in points)))
    y_ticks = nice_ticks(max(p[1] for p in points))
    x_top, y_top = x_ticks[-1], y_ticks[-1]
    w, h = CHART_WIDTH - LEFT - RIGHT, CHART_HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + t / x_top * w

    def y(v: float) -> float:
        return TOP + h - v / y_top * h

    parts = [
        f'<line x1="{LEFT}" y1="{TOP + h}" x2="{LEFT + w}" y2="{TOP + h}" stroke="#888"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + h}" stroke="#888"/>',
    ]
    for tick in y_ticks:
        parts.append(f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{LEFT + w}" y2="{y(tick):.1f}" stroke="#eee"/>')
        parts.append(
            f'<text class="y-tick" x="{LEFT - 4}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{html.escape(_label(tick, unit))}</text>"
        )
    for tick in x_ticks:
        parts.append(
            f'<text class="x-tick" x="{x(tick):.1f}" y="{TOP + h + 16}" font-size="11" text-anchor="middle">'
            f"{_label(tick, 's')}</text>"
        )
    for number, fault in enumerate(faults, 1):
        fx = x(fault.t)
        parts.append(
            f'<g class="fault-marker"><title>{html.escape(fault.line())}</title>'
            f'<line x1="{fx:.1f}" y1="{TOP}" x2="{fx:.1f}" y2="{TOP + h}" stroke="#d33" stroke-dasharray="4 3"/>'
            f'<text x="{fx + 2:.1f}" y="{TOP + 10 + (number % 3) * 11}" font-size="10" fill="#d33">{number}</text></g>'
        )
    for index, (name, color, values) in enumerate(series):
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in values)
        parts.append(
            f'<polyline class="series" data-name="{html.escape(name)}" data-points="{len(values)}" fill="none" '
            f'stroke="{color}" stroke-width="2" points="{path}"/>'
        )
        parts.append(
            f'<text x="{LEFT + 10 + index * 150}" y="16" fill="{color}" font-size="12">{html.escape(name)}</text>'
        )
    return (
        f'<h3>{html.escape(title)}</h3><svg class="chart" data-title="{html.escape(title)}" width="{CHART_WIDTH}" '
        f'height="{CHART_HEIGHT}" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def _table(rows: dict[str, str] | Sequence[tuple[str, str]], css_class: str) -> str:
    items = rows.items() if isinstance(rows, dict) else rows
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in items)
    return f'<table class="{css_class}">{cells}</table>'


def write_reports(
    directory: Path,
    settings: dict[str, Any],
    snapshots: Sequence[Snapshot],
    verdict: Verdict,
    elapsed: float,
    faults: Sequence[FaultEvent] = (),
    recovery: Recovery | None = None,
) -> tuple[Path, Path]:
    """Write ``demo-report.json`` and ``demo-report.html`` into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    faults = sorted(faults, key=lambda fault: fault.t)
    document = {
        "ok": verdict.ok,
        "elapsed": elapsed,
        "settings": settings,
        "verdict": msgspec.to_builtins(verdict),
        "faults": msgspec.to_builtins(faults),
        "recovery": msgspec.to_builtins(recovery),
        "snapshots": msgspec.to_builtins(list(snapshots)),
    }
    json_path = directory / "demo-report.json"
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(document)))

    t_end = snapshots[-1].t if snapshots else 0.0

    def plot(title: str, unit: str, *series: Series) -> str:
        return chart(title, unit, series, faults, t_end)

    charts = [
        plot("Throughput", "/s", ("replies/s", "#2a7", [(s.t, s.throughput) for s in snapshots])),
        plot(
            "Reply latency (webhook in → reply accepted by the API)",
            "ms",
            ("p50", "#27a", [(s.t, s.latency_p50 * 1000) for s in snapshots]),
            ("p99", "#a27", [(s.t, s.latency_p99 * 1000) for s in snapshots]),
        ),
        plot(
            "Backlog: replies the sender holds, messages the engine queues",
            "",
            ("sender backlog", "#a72", [(s.t, float(s.sender_backlog)) for s in snapshots]),
            ("engine queue", "#27a", [(s.t, float(s.queued)) for s in snapshots]),
        ),
        plot("Workers", "", ("workers", "#555", [(s.t, float(s.workers)) for s in snapshots])),
        plot(
            "Sheets (cumulative)",
            "",
            ("reads", "#27a", [(s.t, float(s.sheets_reads)) for s in snapshots]),
            ("API requests", "#a27", [(s.t, float(s.sheets_requests)) for s in snapshots]),
        ),
    ]
    last = snapshots[-1] if snapshots else None
    rows = {
        "verdict": "OK" if verdict.ok else "FAILED",
        "inbound messages": f"{verdict.inbound:,}",
        "replied": f"{verdict.replied:,}",
        "missing": f"{len(verdict.missing):,}",
        "duplicated": f"{len(verdict.duplicated):,}",
        "uncertain re-sends (allowed duplicates)": f"{verdict.uncertain_resends:,}",
        "tenants out of order": f"{len(verdict.out_of_order):,}",
        "reply latency p50 / p99 / max": (
            f"{verdict.latency_p50 * 1000:,.0f} / {verdict.latency_p99 * 1000:,.0f} / "
            f"{verdict.latency_max * 1000:,.0f} ms"
        ),
        "cache hit rate": f"{last.cache_hit_rate:.1%}" if last else "-",
        "Sheets API requests / reads": f"{last.sheets_requests:,} / {last.sheets_reads:,}" if last else "-",
        "throttle events / send retries": f"{last.throttle_events:,} / {last.sender_retries:,}" if last else "-",
        "elapsed": f"{elapsed:,.1f} s",
    }
    settings_rows = {name: str(value) for name, value in settings.items()}
    restart = (
        f"<h3>Restart after kill -9</h3>{_table(recovery_rows(recovery), 'recovery')}" if recovery is not None else ""
    )
    fault_list = "".join(f"<li>{html.escape(fault.line())}</li>" for fault in faults) or "<li>none</li>"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>sluiceway demo report</title>"
        "<style>body{font-family:sans-serif;max-width:760px;margin:2em auto}"
        "th{text-align:left;padding-right:2em;font-weight:normal;color:#555}</style>"
        f"</head><body><h1>sluiceway demo</h1>{_table(rows, 'verdict')}"
        f"<h3>Settings</h3>{_table(settings_rows, 'settings')}{restart}"
        f'<h3>Faults, in time order (numbered as on the charts)</h3><ol class="faults">{fault_list}</ol>'
        f"{''.join(charts)}</body></html>"
    )
    html_path = directory / "demo-report.html"
    html_path.write_text(page, encoding="utf-8")
    return json_path, html_path
