"""Shared machinery for the benchmarks: timing, medians, ratios and the results file.

Every figure is the median of at least ``REPEAT`` runs, ours and the peer's measured
alternately in the same process, so that noise on this shared machine hits both.
A ratio is always *ours ÷ theirs* in the direction where bigger is better (for
"lower is better" units such as latency or bytes it is inverted: theirs ÷ ours),
so every ratio reads as "how many times better we are".
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: How many times each measurement is repeated; the median is reported.
REPEAT = int(os.environ.get("SLUICEWAY_BENCH_REPEAT", "5"))
#: Scales every workload size (e.g. 0.1 for a quick smoke run).
SCALE = float(os.environ.get("SLUICEWAY_BENCH_SCALE", "1"))

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def scaled(n: int) -> int:
    """``n`` times ``SCALE``, at least 1."""
    return max(1, int(n * SCALE))


def median_rate(run: Callable[[], int], repeat: int = REPEAT) -> tuple[float, list[float]]:
    """Median operations per second of ``run`` (which returns how many operations it did)."""
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        ops = run()
        rates.append(ops / (time.perf_counter() - start))
    return statistics.median(rates), rates


def interleaved_rates(runs: dict[str, Callable[[], int]], repeat: int = REPEAT) -> dict[str, tuple[float, list[float]]]:
    """Median ops/s of each named run, alternating them round by round so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            ops = run()
            samples[name].append(ops / (time.perf_counter() - start))
    return {name: (statistics.median(s), s) for name, s in samples.items()}


@dataclass
class Comparison:
    """One row: our figure beside one peer's, with the target ratio if the issue set one."""

    case: str
    peer: str
    ours: float
    theirs: float
    unit: str
    higher_is_better: bool = True
    target: float | None = None
    samples_ours: list[float] = field(default_factory=list)
    samples_theirs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        if self.higher_is_better:
            return self.ours / self.theirs if self.theirs else float("inf")
        return self.theirs / self.ours if self.ours else float("inf")

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target


@dataclass
class Report:
    """The rows of one benchmark module; printed as a table and written to ``bench/results/<name>.json``."""

    name: str
    rows: list[Comparison] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    def add(self, row: Comparison) -> Comparison:
        self.rows.append(row)
        print(format_row(row), flush=True)
        return row

    def figure(self, key: str, value: float) -> None:
        """A stand-alone measurement (no peer), e.g. an IPC floor or bytes per entry."""
        self.figures[key] = value
        print(f"  {key:<58} {value:>14,.2f}", flush=True)

    def write(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.name}.json"
        doc = {
            "benchmark": self.name,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
            },
            "repeat": REPEAT,
            "scale": SCALE,
            "rows": [asdict(r) | {"ratio": r.ratio, "met": r.met} for r in self.rows],
            "figures": self.figures,
        }
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {path.relative_to(RESULTS_DIR.parent.parent)}", flush=True)
        return path


def write_merged(report: Report, replaces: tuple[str, ...] = ()) -> Path:
    """Write ``report`` over the rows and figures it measured, keeping the others of its last results file.

    For the modes that measure one part of a benchmark (``bench e2e --only overload``, ``bench journal --soak``).
    The last file's figures whose names start with one of ``replaces`` are dropped (a series this run re-measured).
    """
    try:
        previous = json.loads((RESULTS_DIR / f"{report.name}.json").read_text())
    except (OSError, ValueError):
        previous = {"rows": [], "figures": {}}
    fresh = {(row.case, row.peer) for row in report.rows}
    kept = [Comparison(**{k: v for k, v in row.items() if k not in ("ratio", "met")}) for row in previous["rows"]]
    report.rows[:0] = [row for row in kept if (row.case, row.peer) not in fresh]
    kept_figures = {key: value for key, value in previous["figures"].items() if not key.startswith(replaces)}
    report.figures = {**kept_figures, **report.figures}
    return report.write()


def header(title: str) -> None:
    print(f"\n== {title}", flush=True)
    print(f"  {'case':<34} {'peer':<22} {'ours':>12} {'theirs':>12} {'ratio':>8}  target", flush=True)


def format_row(r: Comparison) -> str:
    target = "" if r.target is None else f"≥{r.target:g}× {'met' if r.met else 'MISSED'}"
    return f"  {r.case:<34} {r.peer:<22} {r.ours:>12,.0f} {r.theirs:>12,.0f} {r.ratio:>7.2f}×  {target}  [{r.unit}]"
