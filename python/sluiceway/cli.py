"""The ``sluiceway`` command: run a bot, run the demo, the benchmarks, the emulators and operator tools.

Every subcommand has ``--help``. Exit codes: 0 success, 1 failure (e.g. a demo that lost a
message), 2 bad usage or invalid settings (the message names the setting).

Over 500 lines, on purpose: each subcommand is a thin front (flags, one library call, the
printing), and the layering (tests/test_layout.py) lets only this module and the demo wire the
test emulators into a runtime, as ``emulate`` and ``dev`` do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    parser.add_argument("--state-dir", dest="state_dir", help="directory of the journal (default ./sluiceway-state)")
    # A second bot on the same machine moves these two off their defaults.
    parser.add_argument("--admin-port", dest="admin_port", type=int, help="admin API port on 127.0.0.1 (default 8081)")
    parser.add_argument("--monitor-port", dest="monitor_port", type=int, help="monitor's HTTP port (default 9464)")
    parser.add_argument(
        "--shed-after",
        dest="shed_after",
        type=float,
        metavar="SECONDS",
        help="answer new messages 503 while an accepted one would wait longer for its reply (default 1.0; 0: off)",
    )
    limits = parser.add_argument_group("webhook server limits (the port faces the internet)")
    for flag, kind, meaning in _SERVER_LIMIT_FLAGS:
        limits.add_argument(f"--{flag}", dest=flag.replace("-", "_"), type=kind, help=meaning)
    _redis_flags(parser)


#: The webhook server's limits as flags: (flag, type, help); each sets the setting of the same name.
_SERVER_LIMIT_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("max-header-bytes", int, "bytes of headers per request, 431 beyond (default 16384)"),
    ("max-headers", int, "header lines per request, 431 beyond (default 100)"),
    ("max-url-bytes", int, "bytes of the request target, 414 beyond (default 8192, at most 16384)"),
    ("header-timeout", float, "seconds for a request's headers to arrive, 408 beyond (default 10)"),
    ("body-timeout", float, "seconds for a request's body after its headers, 408 beyond (default 30)"),
    ("keepalive-timeout", float, "seconds a silent connection stays open, mid-request too (default 75)"),
    ("max-connections", int, "client connections open at once; new ones beyond get 503 (default 4096)"),
    ("max-pipelined", int, "requests read ahead of the one being handled per connection (default 16)"),
)


def _redis_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        dest="redis_url",
        metavar="URL",
        help="run as one node of several sharing this Redis (a password is safer in SLUICEWAY_REDIS_URL)",
    )
    parser.add_argument(
        "--redis-unsafe",
        dest="redis_unsafe",
        action="store_true",
        default=None,
        help="start even if Redis does not persist (AOF off) or may evict keys",
    )
    parser.add_argument(
        "--redis-node",
        dest="redis_node",
        metavar="NAME",
        help="this node's name in Redis, unique and stable across restarts (default: host name:webhook port)",
    )


def _flags_of(args: argparse.Namespace) -> dict[str, object]:
    return {
        name: getattr(args, name, None)
        for name in (
            "host",
            "port",
            "workers",
            "spreadsheet_id",
            "log_level",
            "state_dir",
            "admin_port",
            "monitor_port",
            "shed_after",
            *(flag.replace("-", "_") for flag, _, _ in _SERVER_LIMIT_FLAGS),
            "redis_url",
            "redis_unsafe",
            "redis_node",
        )
    }


def _config_check(args: argparse.Namespace) -> int:
    from sluiceway.app.settings import env_name, load_settings_with_sources

    try:
        settings, sources = load_settings_with_sources(_flags_of(args), config_file=args.config)
    except ValueError as error:
        print(f"invalid settings: {error}", file=sys.stderr)
        return EXIT_USAGE
    width = max(len(name) for name in settings.__struct_fields__)
    for name, value in settings.redacted().items():
        # The environment variable is named even when another source set the value: it is how to change it.
        source = sources[name] if sources[name].startswith("environment") else f"{sources[name]}; {env_name(name)}"
        print(f"{name:<{width}}  {value!r:<40}  ({source})")
    missing = settings.missing_for_production()
    if missing:
        print(f"\nnot set (needed to talk to the real WhatsApp and Google APIs): {', '.join(missing)}")
    return 0


def _source_checkout() -> Path | None:
    """The sluiceway source tree to run the benchmarks from: the working directory, or the
    checkout this package is installed from in editable mode (a wheel carries no bench/)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / "bench" / "__main__.py").is_file() and (root / "python" / "sluiceway").is_dir():
            return root
    return None


def _repository_url() -> str:
    from importlib.metadata import PackageNotFoundError, metadata

    urls: list[str] = []
    with contextlib.suppress(PackageNotFoundError):
        urls = metadata("sluiceway").get_all("Project-URL") or []
    # Entries read "Label, https://..."; a source link is what `git clone` needs.
    for label, _, url in (entry.partition(", ") for entry in urls):
        if label.lower() in {"repository", "source", "source code"}:
            return url
    return "<URL of the sluiceway repository>"


def _bench(args: argparse.Namespace) -> int:
    root = _source_checkout()
    names = " ".join(args.names) or "[core|engine|sheets|sender|monitor|e2e]"
    if root is None:
        print(
            "sluiceway bench: the benchmark suite (the bench/ package) is not installed with sluiceway; it lives\n"
            "in the source repository, next to python/. Run it from a clone:\n"
            f"  git clone {_repository_url()} sluiceway && cd sluiceway\n"
            "  pip install -e '.[bench]'    # the package, built from source, and the peers it is compared with\n"
            f"  python -m bench {names}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return subprocess.call([sys.executable, "-m", "bench", *args.names], cwd=root)


def _configure_logging(level: str) -> None:
    import logging

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run_async(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop does not exist on Windows
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _import_from_working_directory() -> None:
    """Like uvicorn: "myapp:bot" is looked up from the working directory, in workers too."""
    sys.path.insert(0, os.getcwd())
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))


def _run(args: argparse.Namespace) -> int:
    from sluiceway.app.bot import load_bot
    from sluiceway.app.runtime import Runtime, serve
    from sluiceway.app.settings import load_settings

    _import_from_working_directory()
    try:
        settings = load_settings(_flags_of(args), config_file=args.config)
        bot = load_bot(args.bot)
    except ValueError as error:
        print(f"cannot start: {error}", file=sys.stderr)
        return EXIT_USAGE
    bot.use_settings(settings)
    _configure_logging(settings.log_level)
    try:
        _run_async(serve(Runtime(args.bot, settings)))
    except ValueError as error:
        print(f"cannot start: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sluiceway.demo.run import DemoOptions, run_demo

    try:
        options = DemoOptions(
            conversations=args.conversations,
            messages=args.messages,
            workers=args.workers,
            rate=args.rate,
            faults=args.faults,
            report_dir=args.report_dir,
            seed=args.seed,
            live=not args.no_live,
        )
    except ValueError as error:
        print(f"invalid demo option: {error}", file=sys.stderr)
        return EXIT_USAGE
    import logging

    from rich.console import Console
    from rich.logging import RichHandler

    console = Console()
    # Through rich, so that log lines (monitor alerts...) print above the live view, not into it.
    logging.basicConfig(
        level="WARNING", format="%(name)s: %(message)s", handlers=[RichHandler(console=console, show_path=False)]
    )
    result = _run_async(run_demo(options, console))
    return 0 if result.verdict.ok else 1


def _admin_request(args: argparse.Namespace, method: str, path: str) -> Any:
    import json
    import urllib.error
    import urllib.request

    from sluiceway.app.settings import load_settings

    base = args.admin_url
    if base is None:
        base = f"http://127.0.0.1:{load_settings(_flags_of(args), config_file=args.config).admin_port}"
    request = urllib.request.Request(base.rstrip("/") + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.URLError as error:
        raise ConnectionError(f"no running bot answers at {base} ({error.reason}); is `sluiceway run` up?") from None


def _dlq_answer(args: argparse.Namespace) -> tuple[Any, str]:
    """Do the dlq action on the stopped bot's journal or, while a bot holds it, through its admin API.

    Returns the answer and where it came from (printed, so the operator knows which).
    """
    from sluiceway.app.dead_letters import offline_dead_letters
    from sluiceway.app.settings import load_settings
    from sluiceway.journal import JournalLocked

    if args.admin_url is None:
        settings = load_settings(_flags_of(args), config_file=args.config)
        if settings.redis_url is not None:
            from sluiceway.app.dead_letters import redis_dead_letters

            answer = _run_async(redis_dead_letters(settings.redis_url.reveal(), settings.redis_namespace, args.action))
            return answer, f"from Redis at {settings.redis_url} (namespace {settings.redis_namespace!r})"
    path = {"list": "/dead-letters", "replay": "/dead-letters/replay", "purge": "/dead-letters/purge"}[args.action]
    method = "GET" if args.action == "list" else "POST"
    if args.admin_url is None:
        settings = load_settings(_flags_of(args), config_file=args.config)
        journal = settings.journal_path
        if not journal.exists():
            raise ConnectionError(f"no journal at {journal}: no bot has run with state_dir {settings.state_dir!r}")
        try:
            return offline_dead_letters(journal, args.action), f"from the journal {journal} (the bot is stopped)"
        except JournalLocked as error:
            source = f"through the running bot's admin API ({error})"
            return _admin_request(args, method, path), source
    return _admin_request(args, method, path), f"through the admin API at {args.admin_url}"


def _dlq(args: argparse.Namespace) -> int:
    try:
        answer, source = _dlq_answer(args)
    except (ConnectionError, ValueError) as error:
        print(str(error), file=sys.stderr)
        return 1
    print(source)
    if args.action == "list":
        for letter in answer:
            if letter["kind"] == "message":
                print(f"message {letter['id']} from {letter['sender']}: {letter['error']}  ({letter['text']!r})")
                if args.verbose and letter.get("traceback"):
                    print(textwrap.indent(letter["traceback"].rstrip(), "    "))
            else:
                print(f"send {letter['id']} to {letter['recipient']}: {letter['reason']} {letter['error']}")
        print(f"{len(answer)} dead letter(s)")
    elif args.action == "replay":
        print(f"replayed {answer['replayed']} message(s) and {answer['replayed_sends']} reply(ies)")
    else:
        print(f"purged {answer['purged']} message(s) and {answer['purged_sends']} reply(ies)")
    return 0


def _export_block(settings: dict[str, str]) -> str:
    """``export NAME=value`` lines for the settings fields in ``settings``, under the names the bot reads."""
    import shlex

    from sluiceway.app.settings import env_name

    return "\n".join(f"export {env_name(field)}={shlex.quote(value)}" for field, value in settings.items())


def _sheets_to_load(args: argparse.Namespace) -> dict[str, Path]:
    """Sheet name → CSV file: the ``--csv NAME=PATH`` flags, else the property bot's sample spreadsheet."""
    if not args.csv:
        from sluiceway.examples.property_bot import SHEETS

        return dict(SHEETS)
    sheets: dict[str, Path] = {}
    for item in args.csv:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--csv takes NAME=PATH (e.g. Units=units.csv), got {item!r}")
        if not Path(path).is_file():
            raise ValueError(f"--csv {item!r}: no such file {path!r}")
        sheets[name] = Path(path)
    return sheets


async def _serve_whatsapp(args: argparse.Namespace, stop: asyncio.Event) -> None:
    import secrets

    from sluiceway.testing import WhatsAppEmulator
    from sluiceway.testing.whatsapp_emulator import DEFAULT_PHONE_NUMBER_ID, DEFAULT_TOKEN

    # Explicit, never read from the environment: the bot's WHATSAPP_APP_SECRET must be set to
    # this value, so the emulator decides it and prints it rather than guessing from the shell.
    app_secret = args.app_secret or secrets.token_urlsafe(24)
    verify_token = args.verify_token or secrets.token_urlsafe(12)
    if args.numbers < 1:
        raise ValueError(f"--numbers must be at least 1, got {args.numbers}")
    first = int(DEFAULT_PHONE_NUMBER_ID)
    # Every number answers to the same token: the bot then needs no per-number token variables.
    numbers = {str(first + n): DEFAULT_TOKEN for n in range(args.numbers)}
    whatsapp = WhatsAppEmulator(
        throughput=args.rate,
        webhook_url=args.webhook_url,
        app_secret=app_secret,
        port=args.port,
        numbers=numbers,
        enforce_window=args.enforce_window,
    )
    async with whatsapp:
        settings = {
            "whatsapp_base_url": whatsapp.base_url,
            "whatsapp_access_token": whatsapp.access_token,
            "whatsapp_phone_number_id": whatsapp.phone_number_id,
            "whatsapp_app_secret": app_secret,
            "whatsapp_verify_token": verify_token,
        }
        if len(numbers) > 1:
            settings["whatsapp_phone_number_ids"] = ",".join(list(numbers)[1:])
        exports = _export_block(settings)
        window = "; the 24-hour window is enforced (131047)" if args.enforce_window else ""
        another = f'  (add "to": "{list(numbers)[1]}" to write to another number)\n' if len(numbers) > 1 else ""
        secret_origin = "given with --app-secret" if args.app_secret else "generated; fix it with --app-secret"
        print(
            f"WhatsApp Cloud API emulator at {whatsapp.base_url} (throughput {args.rate:g}/s per number, "
            f"{len(numbers)} number(s){window}); Ctrl-C stops.\n"
            f"Status webhooks and test messages go to {args.webhook_url}, signed (X-Hub-Signature-256) with\n"
            f"the app secret below ({secret_origin}): the bot's WHATSAPP_APP_SECRET must be the same.\n"
            "Paste into the shell that runs your bot:\n\n"
            f"{exports}\n\n"
            "Send the bot a message, then read the conversation:\n"
            f'  curl -s {whatsapp.base_url}/_emulator/inbound -d \'{{"from": "15551234567", "text": "hello"}}\'\n'
            f"{another}"
            f"  curl -s '{whatsapp.base_url}/_emulator/messages?with=15551234567'",
            flush=True,
        )
        await stop.wait()
        print(f"accepted {len(whatsapp.accepted)} message(s); answers {dict(whatsapp.answers)}", flush=True)


async def _serve_sheets(args: argparse.Namespace, stop: asyncio.Event, sheets_to_load: dict[str, Path]) -> None:
    from sluiceway.testing import SheetsEmulator

    sheets = SheetsEmulator(port=args.port)
    async with sheets:
        for name, path in sheets_to_load.items():
            sheets.load_csv(args.spreadsheet_id, name, path)
        exports = _export_block({"sheets_api_endpoint": sheets.url, "spreadsheet_id": args.spreadsheet_id})
        print(
            f"Google Sheets API emulator at {sheets.url}; Ctrl-C stops.\n"
            f"Spreadsheet {args.spreadsheet_id!r} with sheets {', '.join(sheets_to_load)} (no credentials needed).\n"
            "Paste into the shell that runs your bot:\n\n"
            f"{exports}\n",
            flush=True,
        )
        await stop.wait()
        print(f"requests: {dict(sheets.requests)}", flush=True)


async def _serve_emulator(args: argparse.Namespace, sheets_to_load: dict[str, Path]) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if args.api == "whatsapp":
        await _serve_whatsapp(args, stop)
    else:
        await _serve_sheets(args, stop, sheets_to_load)


def _emulate(args: argparse.Namespace) -> int:
    try:
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port must be a TCP port in 0..65535, got {args.port}")
        sheets_to_load = _sheets_to_load(args) if args.api == "sheets" else {}
        _run_async(_serve_emulator(args, sheets_to_load))
    except ValueError as error:
        print(f"cannot start the emulator: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # the port is taken, most often
        print(f"cannot start the emulator on port {args.port}: {error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


#: The tenants' pair rate in ``sluiceway dev``: loose, so that typing fast is never held back.
DEV_PAIR_LIMIT = (100, 1.0)


async def _serve_dev(args: argparse.Namespace, sheets_to_load: dict[str, Path]) -> None:
    import secrets
    import signal

    import msgspec

    from sluiceway.app.dev_console import DEFAULT_SENDER, DevConsole, stdin_lines
    from sluiceway.app.secret import Secret
    from sluiceway.demo.local import emulated_runtime
    from sluiceway.testing import SheetsEmulator, WhatsAppEmulator

    sender = args.sender or DEFAULT_SENDER
    app_secret = secrets.token_urlsafe(24)
    async with (
        SheetsEmulator() as sheets,
        WhatsAppEmulator(
            throughput=float(args.rate),
            pair_limit=DEV_PAIR_LIMIT[0],
            pair_window=DEV_PAIR_LIMIT[1],
            app_secret=app_secret,
        ) as whatsapp,
    ):
        for name, path in sheets_to_load.items():
            sheets.load_csv(args.spreadsheet_id, name, path)
        runtime = emulated_runtime(
            args.bot,
            app_secret=app_secret,
            whatsapp_url=whatsapp.base_url,
            phone_number_id=whatsapp.phone_number_id,
            access_token=whatsapp.access_token,
            sheets_url=sheets.url,
            spreadsheet_id=args.spreadsheet_id,
            workers=args.workers,
            rate=args.rate,
            pair_limit=DEV_PAIR_LIMIT,
            state_dir=args.state_dir,
            enable_auto_scaling=False,
        )
        # Local only, so a generated verify token: a start-up warning about it would be noise here.
        runtime.settings = msgspec.structs.replace(
            runtime.settings, whatsapp_verify_token=Secret(secrets.token_urlsafe(12))
        )
        await runtime.start()
        whatsapp.webhook_url = runtime.webhook_url
        assert runtime.monitor is not None
        print(
            f"{args.bot} runs with {args.workers} worker(s) against local emulators (no Meta or Google account used):\n"
            f"  webhook    {runtime.webhook_url}\n"
            f"  dashboard  {runtime.monitor.http_url}   (/metrics, /status)\n"
            f"  admin      {runtime.admin_url}   (sluiceway dlq list --admin-url {runtime.admin_url})\n"
            f"  whatsapp   {whatsapp.base_url}   (conversation: /_emulator/messages)\n"
            f"  sheets     {sheets.url}   (spreadsheet {args.spreadsheet_id!r}: {', '.join(sheets_to_load)})\n"
            f"  journal    {runtime.settings.state_dir}\n"
            f"Type a message from tenant +{sender} (or '+15551234567: text' from another); "
            "Ctrl-D ends, Ctrl-C stops.",
            flush=True,
        )
        console = asyncio.create_task(
            DevConsole(whatsapp, sys.stdout, default_sender=sender).run(stdin_lines(), drain=runtime.stop)
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, console.cancel)
        try:
            await console
        except asyncio.CancelledError:
            if runtime.running:
                await runtime.stop()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


def _dev(args: argparse.Namespace) -> int:
    from sluiceway.app.bot import load_bot

    _import_from_working_directory()
    try:
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
        if args.sender is not None:
            if not args.sender.removeprefix("+").isdigit():
                raise ValueError(f"--sender must be a phone number in digits, got {args.sender!r}")
            args.sender = args.sender.removeprefix("+")
        load_bot(args.bot)  # a wrong module:attr is one line here, not a worker's traceback later
        sheets_to_load = _sheets_to_load(args)
        # Warnings (a handler's first failure, alerts) print on stderr between the replies.
        _configure_logging("WARNING")
        _run_async(_serve_dev(args, sheets_to_load))
    except ValueError as error:
        print(f"cannot start: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sluiceway`` command."""
    parser = argparse.ArgumentParser(
        prog="sluiceway",
        description="Move WhatsApp chat messages fast and safely.",
    )
    parser.add_argument("--version", action="version", version=f"sluiceway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a bot: webhook ingress, workers, sender and monitor")
    run.add_argument("bot", help="the bot to run, as module:attribute (e.g. myapp:bot)")
    _settings_flags(run)
    run.set_defaults(func=_run)

    dev = commands.add_parser(
        "dev",
        help="run a bot against local emulators with a console: type tenant messages, read the replies",
        description="Start the bot with the WhatsApp and Sheets emulators wired in (free ports, a temporary journal) "
        "and read tenant messages from stdin, one per line ('+15551234567: text' for another tenant); "
        "the bot's replies are printed as they arrive. The end of input (Ctrl-D, or of a pipe) drains and exits.",
    )
    dev.add_argument("bot", help="the bot to run, as module:attribute (e.g. myapp:bot)")
    dev.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    dev.add_argument("--rate", type=int, default=80, help="the WhatsApp emulator's messages/s cap (default 80)")
    dev.add_argument("--sender", help="the tenant typing, a phone number (default +15550000001)")
    dev.add_argument("--spreadsheet-id", default="demo-property-sheet", help="id of the emulated spreadsheet")
    dev.add_argument(
        "--csv",
        action="append",
        metavar="NAME=PATH",
        help="load sheet NAME from a CSV file (repeatable; default: the property bot's sample sheets)",
    )
    dev.add_argument("--state-dir", dest="state_dir", help="directory of the journal (default: a temporary one)")
    dev.set_defaults(func=_dev)

    demo = commands.add_parser("demo", help="the property bot end to end against local emulators")
    demo.add_argument("--conversations", type=int, default=1000, help="simulated tenants (default 1000)")
    demo.add_argument("--messages", type=int, default=3, help="messages per tenant (default 3)")
    demo.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    demo.add_argument("--rate", type=int, default=80, help="the WhatsApp emulator's messages/s cap (default 80)")
    demo.add_argument(
        "--faults",
        action="store_true",
        help="inject 5xx, 429s, an outage, a worker SIGKILL and a kill -9 of the whole runtime with a restart",
    )
    demo.add_argument("--report-dir", default=".", help="where demo-report.html and .json go (default .)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the tenants' scripts")
    demo.add_argument("--no-live", action="store_true", help="no live view (for logs and CI)")
    demo.set_defaults(func=_demo)

    dlq = commands.add_parser("dlq", help="dead letters of a bot, running or stopped")
    dlq.add_argument("action", choices=["list", "replay", "purge"])
    dlq.add_argument(
        "--admin-url",
        help="ask this admin address (default: the journal in state_dir, or the running bot's admin_port)",
    )
    dlq.add_argument("--verbose", "-v", action="store_true", help="list: each failed message's whole traceback")
    dlq.add_argument("--config", metavar="PATH", help="settings file to read state_dir and admin_port from")
    dlq.add_argument("--state-dir", dest="state_dir", help="directory of the journal (default ./sluiceway-state)")
    dlq.add_argument("--redis", dest="redis_url", metavar="URL", help="the Redis of a bot in Redis mode")
    dlq.set_defaults(func=_dlq)

    emulate = commands.add_parser(
        "emulate",
        help="run the WhatsApp or Sheets API emulator alone, for a local development loop",
        description="Run a local WhatsApp Cloud API or Google Sheets API and print the settings a bot needs "
        "to use it (export lines to paste).",
    )
    emulate.add_argument("api", choices=["whatsapp", "sheets"])
    emulate.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    emulate.add_argument("--rate", type=float, default=80.0, help="whatsapp: messages/s cap (default 80)")
    emulate.add_argument(
        "--webhook-url",
        default="http://127.0.0.1:8080/webhook",
        help="whatsapp: the bot's webhook, where status webhooks and test messages are posted "
        "(default: http://127.0.0.1:8080/webhook, where `sluiceway run` listens by default)",
    )
    emulate.add_argument(
        "--app-secret",
        help="whatsapp: the app secret that signs the webhooks it posts (default: a generated one, printed)",
    )
    emulate.add_argument("--verify-token", help="whatsapp: the webhook verify token to print (default: generated)")
    emulate.add_argument(
        "--numbers", type=int, default=1, help="whatsapp: how many business numbers it serves (default 1)"
    )
    emulate.add_argument(
        "--enforce-window",
        action="store_true",
        help="whatsapp: refuse free-form messages to users silent for 24 hours (error 131047), as Meta does",
    )
    emulate.add_argument("--spreadsheet-id", default="demo-property-sheet", help="sheets: id of the spreadsheet")
    emulate.add_argument(
        "--csv",
        action="append",
        metavar="NAME=PATH",
        help="sheets: load sheet NAME from a CSV file (repeatable; default: the property bot's sample sheets)",
    )
    emulate.set_defaults(func=_emulate)

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
