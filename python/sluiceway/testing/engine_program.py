"""A test double program: ``python -m sluiceway.testing.engine_program LOG COUNT``.

Runs an engine through ``sluiceway.engine.run``, enqueues COUNT messages that each append
a line to LOG, prints "enqueued" and then waits for a signal, so a test can SIGTERM it
and check that the runner drained everything before exiting.
"""

from __future__ import annotations

import asyncio
import sys

from sluiceway.engine import MessageParallelizer, ParallelizerConfig, run


def main(argv: list[str]) -> None:
    log, count = argv[0], int(argv[1])
    config = ParallelizerConfig(default_worker_count=2, min_workers=1, worker_concurrency=4)
    engine = MessageParallelizer("sluiceway.testing.handlers:scripted", config)

    async def produce(engine: MessageParallelizer) -> None:
        for _ in range(count):
            await engine.enqueue_message({"log": log, "sleep": 0.005})
        print("enqueued", flush=True)
        await asyncio.Event().wait()

    summary = run(engine, produce)
    print(f"completed {summary.completed} remaining {len(summary.remaining)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
