"""The demo's report files: ``demo-report.json`` and a self-contained ``demo-report.html`` with charts."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from sluiceway.demo.snapshot import Snapshot
from sluiceway.demo.verify import Verdict

#: Chart size in the HTML report (SVG user units).
CHART_WIDTH, CHART_HEIGHT = 640, 180


def _chart(title: str, unit: str, series: Sequence[tuple[str, str, Sequence[tuple[float, float]]]]) -> str:
    """An inline SVG line chart (no scripts, no CDN: the report opens offline)."""
    points = [p for _, _, values in series for p in values]
    if not points:
        return f"<h3>{html.escape(title)}</h3><p>no data</p>"
    t_max = max(p[0] for p in points) or 1.0
    v_max = max(p[1] for p in points) or 1.0
    pad = 40
    w, h = CHART_WIDTH - 2 * pad, CHART_HEIGHT - 2 * pad

    def xy(t: float, v: float) -> str:
        return f"{pad + t / t_max * w:.1f},{pad + h - v / v_max * h:.1f}"

    lines = []
    for index, (name, color, values) in enumerate(series):
        path = " ".join(xy(t, v) for t, v in values)
        lines.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        lines.append(
            f'<text x="{pad + 10 + index * 140}" y="16" fill="{color}" font-size="12">{html.escape(name)}</text>'
        )
    axes = (
        f'<line x1="{pad}" y1="{pad + h}" x2="{pad + w}" y2="{pad + h}" stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{pad + h}" stroke="#888"/>'
        f'<text x="{pad + w}" y="{pad + h + 16}" font-size="11" text-anchor="end">{t_max:.0f} s</text>'
        f'<text x="{pad - 4}" y="{pad + 4}" font-size="11" text-anchor="end">{v_max:,.0f}</text>'
        f'<text x="{pad - 4}" y="{pad + h}" font-size="11" text-anchor="end">0</text>'
        f'<text x="{pad}" y="{CHART_HEIGHT - 4}" font-size="11">{html.escape(unit)}</text>'
    )
    return (
        f"<h3>{html.escape(title)}</h3>"
        f'<svg width="{CHART_WIDTH}" height="{CHART_HEIGHT}" xmlns="http://www.w3.org/2000/svg">{axes}{"".join(lines)}</svg>'
    )


def write_reports(
    directory: Path, settings: dict[str, Any], snapshots: Sequence[Snapshot], verdict: Verdict, elapsed: float
) -> tuple[Path, Path]:
    """Write ``demo-report.json`` and ``demo-report.html`` into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "ok": verdict.ok,
        "elapsed": elapsed,
        "settings": settings,
        "verdict": msgspec.to_builtins(verdict),
        "snapshots": msgspec.to_builtins(list(snapshots)),
    }
    json_path = directory / "demo-report.json"
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(document)))

    last = snapshots[-1] if snapshots else None
    charts = [
        _chart("Throughput", "replies/s", [("replies/s", "#2a7", [(s.t, s.throughput) for s in snapshots])]),
        _chart(
            "Reply latency (webhook in → reply at the API)",
            "ms",
            [
                ("p50", "#27a", [(s.t, s.latency_p50 * 1000) for s in snapshots]),
                ("p99", "#a27", [(s.t, s.latency_p99 * 1000) for s in snapshots]),
            ],
        ),
        _chart(
            "Queue and workers",
            "messages / workers",
            [
                ("queued", "#a72", [(s.t, float(s.queued)) for s in snapshots]),
                ("workers", "#555", [(s.t, float(s.workers)) for s in snapshots]),
            ],
        ),
        _chart(
            "Sheets",
            "count",
            [
                ("reads", "#27a", [(s.t, float(s.sheets_reads)) for s in snapshots]),
                ("API requests", "#a27", [(s.t, float(s.sheets_requests)) for s in snapshots]),
            ],
        ),
    ]
    rows = {
        "verdict": "OK" if verdict.ok else "FAILED",
        "inbound messages": f"{verdict.inbound:,}",
        "replied": f"{verdict.replied:,}",
        "missing": f"{len(verdict.missing):,}",
        "duplicated": f"{len(verdict.duplicated):,}",
        "tenants out of order": f"{len(verdict.out_of_order):,}",
        "reply latency p50 / p99 / max": (
            f"{verdict.latency_p50 * 1000:,.0f} / {verdict.latency_p99 * 1000:,.0f} / "
            f"{verdict.latency_max * 1000:,.0f} ms"
        ),
        "cache hit rate": f"{last.cache_hit_rate:.1%}" if last else "-",
        "Sheets API requests / reads": f"{last.sheets_requests:,} / {last.sheets_reads:,}" if last else "-",
        "throttle events": f"{last.throttle_events:,}" if last else "-",
        "elapsed": f"{elapsed:,.1f} s",
    }
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows.items())
    events = sorted({e for s in snapshots for e in s.events})
    event_list = "".join(f"<li>{html.escape(e)}</li>" for e in events) or "<li>none</li>"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>sluiceway demo report</title>"
        "<style>body{font-family:sans-serif;max-width:720px;margin:2em auto}"
        "th{text-align:left;padding-right:2em}</style>"
        f"</head><body><h1>sluiceway demo</h1><table>{table}</table>"
        f"<h3>Faults injected</h3><ul>{event_list}</ul>{''.join(charts)}</body></html>"
    )
    html_path = directory / "demo-report.html"
    html_path.write_text(page, encoding="utf-8")
    return json_path, html_path
