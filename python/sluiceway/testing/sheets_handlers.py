"""Engine handlers for Sheets scenarios run in real worker processes (tests and demo).

Each worker opens its own :class:`~sluiceway.SheetsClient` (and so its own cache) in
``open_sheets``, pointed at the endpoint named by the ``SLUICEWAY_SHEETS_ENDPOINT``
environment variable, e.g. a :class:`~sluiceway.testing.SheetsEmulator`. Never used by
library code.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sluiceway.engine import Message, current_worker
from sluiceway.sheets.client import SheetsClient
from sluiceway.sheets.config import SheetsClientConfig

#: Environment variable holding the Sheets API endpoint the workers talk to.
ENDPOINT_ENV = "SLUICEWAY_SHEETS_ENDPOINT"
#: Seconds between checks of a gate file (a condition wait, not a timing guess).
GATE_POLL_INTERVAL = 0.005


def open_sheets() -> None:
    """Worker setup: this worker's client and cache, invalidated through the engine's broadcast."""
    config = SheetsClientConfig(coalesce_window=0.0)
    current_worker().state["sheets"] = SheetsClient(api_endpoint=os.environ[ENDPOINT_ENV], config=config)


def close_sheets() -> None:
    """Worker teardown: release the client's threads and sockets."""
    client: SheetsClient = current_worker().state.pop("sheets")
    client.close()


async def sheets_op(message: Message) -> dict[str, Any]:
    """Runs ``{"op": "read" | "write", "spreadsheet_id", "range", "values"?, "gate"?}``.

    With ``gate`` it first waits for that file to exist. Returns this worker's ``pid`` and,
    for a read, the ``rows`` read.
    """
    script = message.payload
    gate = script.get("gate")
    while gate is not None and not os.path.exists(gate):
        await asyncio.sleep(GATE_POLL_INTERVAL)
    client: SheetsClient = current_worker().state["sheets"]
    answer: dict[str, Any] = {"pid": os.getpid()}
    if script["op"] == "read":
        answer["rows"] = await client.get_values(script["spreadsheet_id"], script["range"])
    elif script["op"] == "write":
        await client.update_values(script["spreadsheet_id"], script["range"], script["values"])
    else:
        raise ValueError(f"unknown op {script['op']!r}; expected 'read' or 'write'")
    return answer
