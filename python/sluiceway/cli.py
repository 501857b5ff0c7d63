"""The ``sluiceway`` command: run a bot, run the demo, the benchmarks, the emulators and operator tools.

Every subcommand has ``--help``. Exit codes: 0 success, 1 failure (e.g. a demo that lost a
message), 2 bad usage or invalid settings (the message names the setting).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sluiceway import __version__

#: Exit code for invalid usage or settings (argparse's own convention).
EXIT_USAGE = 2


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that override settings (each maps to the setting of the same name)."""
    parser.add_argument("--config", metavar="PATH", help="settings file (default: ./sluiceway.toml if present)")
    parser.add_argument("--host", help="address the webhook server binds (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port of the webhook server (default 8080)")
    parser.add_argument("--workers", type=int, help="worker processes (default: the engine's)")
    parser.add_argument("--spreadsheet-id", dest="spreadsheet_id", help="the Google spreadsheet the bot reads")
    parser.add_argument("--log-level", dest="log_level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _flags_of(args: argparse.Namespace) -> dict[str, object]:
    return {name: getattr(args, name, None) for name in ("host", "port", "workers", "spreadsheet_id", "log_level")}


def _config_check(args: argparse.Namespace) -> int:
    from sluiceway.app.settings import env_name, load_settings

    try:
        settings = load_settings(_flags_of(args), config_file=args.config)
    except ValueError as error:
        print(f"invalid settings: {error}", file=sys.stderr)
        return EXIT_USAGE
    width = max(len(name) for name in settings.__struct_fields__)
    for name, value in settings.redacted().items():
        print(f"{name:<{width}}  {value!r:<40}  ({env_name(name)})")
    missing = settings.missing_for_production()
    if missing:
        print(f"\nnot set (needed to talk to the real WhatsApp and Google APIs): {', '.join(missing)}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    # The suite lives in the source checkout (bench/), next to python/: run it from there.
    root = Path(__file__).resolve().parents[2]
    if not (root / "bench" / "__main__.py").exists():
        print("the benchmarks live in the source checkout's bench/ folder; run this from a clone", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "bench", *args.names]
    return subprocess.call(command, cwd=root, env={**os.environ})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sluiceway`` command."""
    parser = argparse.ArgumentParser(
        prog="sluiceway",
        description="Move WhatsApp chat messages fast and safely.",
    )
    parser.add_argument("--version", action="version", version=f"sluiceway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="inspect the effective settings")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser("check", help="print the effective settings, secrets masked")
    _settings_flags(check)
    check.set_defaults(func=_config_check)

    bench = commands.add_parser("bench", help="run the benchmark suite (python -m bench)")
    bench.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sluiceway`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
