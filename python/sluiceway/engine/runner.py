"""Run an engine as a program: start it, run the program's main coroutine, drain on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from sluiceway.engine.supervisor import MessageParallelizer, ShutdownSummary

_log = logging.getLogger("sluiceway.engine")

#: Signals that start a graceful drain; a second one stops without waiting for the queue.
DRAIN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run(
    engine: MessageParallelizer,
    main: Callable[[MessageParallelizer], Awaitable[None]] | None = None,
    *,
    drain_timeout: float | None = None,
) -> ShutdownSummary:
    """Start ``engine`` on uvloop, run ``main(engine)``, and shut down with a drain.

    The drain starts when ``main`` returns or on the first SIGINT/SIGTERM (which cancels
    ``main``); a second signal, or ``drain_timeout`` seconds, ends the drain and stops after
    the in-flight handlers, reporting what stayed queued. With ``main=None`` it runs until
    a signal.

    Example::

        async def serve(engine: MessageParallelizer) -> None:
            await start_webhook_server(engine)          # enqueues what arrives
            await asyncio.Event().wait()

        summary = run(MessageParallelizer("bot.handlers:handle"), serve)
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop does not exist on Windows
        return asyncio.run(_run(engine, main, drain_timeout))
    return uvloop.run(_run(engine, main, drain_timeout))


async def _run(
    engine: MessageParallelizer,
    main: Callable[[MessageParallelizer], Awaitable[None]] | None,
    drain_timeout: float | None,
) -> ShutdownSummary:
    loop = asyncio.get_running_loop()
    signals_seen = 0
    stop_requested = asyncio.Event()
    drain_task: asyncio.Task[None] | None = None

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        _log.info("received %s: %s", signal.Signals(signum).name, "draining" if signals_seen == 1 else "stopping now")
        stop_requested.set()
        if signals_seen > 1 and drain_task is not None:
            drain_task.cancel()

    for signum in DRAIN_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await engine.start()
        body = asyncio.ensure_future(main(engine) if main is not None else asyncio.Event().wait())
        stopper = asyncio.ensure_future(stop_requested.wait())
        await asyncio.wait({body, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not body.done():
            body.cancel()
        await asyncio.gather(body, return_exceptions=True)
        if body.done() and not body.cancelled() and body.exception() is not None:
            _log.error("main failed; draining the engine", exc_info=body.exception())
        if signals_seen < 2:
            drain_task = asyncio.ensure_future(engine.wait_for_completion(drain_timeout))
            try:
                await drain_task
            except (asyncio.CancelledError, TimeoutError):
                _log.warning("drain interrupted; stopping after in-flight handlers")
        return await engine.shutdown(drain=False)
    finally:
        for signum in DRAIN_SIGNALS:
            loop.remove_signal_handler(signum)
