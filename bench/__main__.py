"""Run every benchmark: ``python -m bench [name [--option ...] ...]``.

Each ``bench_<name>.py`` module exposes ``main() -> None``; with no arguments all of
them run in order, otherwise only those named (``python -m bench core engine``). Options
after a name go to that module's ``main(options)`` (``python -m bench e2e --only overload``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_") for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    runs: list[tuple[str, list[str]]] = []
    for arg in argv:
        options = runs[-1][1] if runs else None
        if options is not None and (arg.startswith("-") or (options and options[-1].startswith("-"))):
            options.append(arg)  # an option of the benchmark before it, or that option's value
        else:
            runs.append((arg, []))
    runs = runs or [(name, []) for name in available()]
    unknown = sorted({name for name, _ in runs} - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    for name, options in runs:
        module = importlib.import_module(f"bench.bench_{name}")
        if options:
            module.main(options)
        else:
            module.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
