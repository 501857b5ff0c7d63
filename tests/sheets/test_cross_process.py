"""Read-your-writes across real engine worker processes, each with its own cache."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import uvloop

from sluiceway.engine import MessageParallelizer, ParallelizerConfig
from sluiceway.testing import SheetsEmulator, wait_until
from sluiceway.testing.sheets_handlers import ENDPOINT_ENV

SID = "units-book"
HANDLER = "sluiceway.testing.sheets_handlers:sheets_op"


async def one_read_per_worker(engine: MessageParallelizer, gate: Path, cell_range: str) -> list[dict[str, Any]]:
    """Two reads held at a gate: with one message per worker at a time, each worker takes one."""
    read = {"op": "read", "spreadsheet_id": SID, "range": cell_range, "gate": str(gate)}
    tasks = [asyncio.ensure_future(engine.submit(read)) for _ in range(2)]
    # Both dispatched (one to each worker, as each holds at most one) before either may finish.
    await wait_until(lambda: engine.get_statistics().in_flight == 2, what="both reads dispatched")
    gate.touch()
    return list(await asyncio.gather(*tasks))


def test_a_write_in_one_worker_is_never_read_stale_in_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a write returns in one worker, every worker's next read of an overlapping range shows it."""
    emulator = SheetsEmulator()
    emulator.load_csv(SID, "Units", "Unit,Rent\n1A,1000\n1B,1100\n")
    config = ParallelizerConfig(
        default_worker_count=2, min_workers=1, worker_concurrency=1, worker_prefetch=1, worker_timeout=60.0
    )

    async def scenario() -> None:
        async with MessageParallelizer(
            HANDLER,
            config,
            worker_setup="sluiceway.testing.sheets_handlers:open_sheets",
            worker_teardown="sluiceway.testing.sheets_handlers:close_sheets",
        ) as engine:
            pids = set(engine.worker_pids())
            warm = await one_read_per_worker(engine, tmp_path / "gate-1", "Units!A1:B3")
            assert {r["pid"] for r in warm} == pids
            assert all(r["rows"][1] == ["1A", "1000"] for r in warm)
            assert emulator.requests["values.get"] == 2  # one miss per worker cache

            again = await one_read_per_worker(engine, tmp_path / "gate-2", "Units!A1:B3")
            assert all(r["rows"][1] == ["1A", "1000"] for r in again)
            assert emulator.requests["values.get"] == 2  # both served from their caches

            write = {"op": "write", "spreadsheet_id": SID, "range": "Units!B2", "values": [["1250"]]}
            await engine.submit(write)

            after = await one_read_per_worker(engine, tmp_path / "gate-3", "Units!A1:B3")
            assert {r["pid"] for r in after} == pids
            assert all(r["rows"][1] == ["1A", "1250"] for r in after)
            assert emulator.requests["values.get"] == 4

    with emulator.running_in_thread():
        monkeypatch.setenv(ENDPOINT_ENV, emulator.url)
        uvloop.run(scenario())
