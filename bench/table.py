"""Print the benchmark results as a Markdown table: ``python -m bench.table``.

Reads every ``bench/results/*.json`` and lists each row that has a target, with
our figure, the peer's, the ratio (always "times better than the peer") and
whether the target is met. The README's benchmark table is this output.
"""

from __future__ import annotations

import json
import sys

from bench.harness import RESULTS_DIR

#: Results superseded by a combined file (``core.json`` holds the core modules' rows).
SUPERSEDED = {"lru_cache", "core_rate_limit"}


def rows() -> list[str]:
    lines = ["| benchmark | case | vs | ratio | target | met |", "|---|---|---|---|---|---|"]
    names = {p.stem for p in RESULTS_DIR.glob("*.json")}
    for path in sorted(RESULTS_DIR.glob("*.json")):
        if path.stem in SUPERSEDED and "core" in names:
            continue
        doc = json.loads(path.read_text())
        for row in doc["rows"]:
            if row["target"] is None:
                continue
            met = "yes" if row["met"] else "**no**"
            lines.append(
                f"| {doc['benchmark']} | {row['case']} | {row['peer']} "
                f"| {row['ratio']:.2f}× | ≥{row['target']:g}× | {met} |"
            )
    return lines


if __name__ == "__main__":
    sys.stdout.write("\n".join(rows()) + "\n")
