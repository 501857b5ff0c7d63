"""SheetsEmulator.client(): the real SheetsClient answered in process, with no server."""

from __future__ import annotations

import asyncio

import pytest

from sluiceway.sheets.errors import SheetsError
from sluiceway.testing import SheetsEmulator


def test_in_process_client_reads_writes_and_caches_like_over_http() -> None:
    async def scenario() -> None:
        emulator = SheetsEmulator()
        emulator.add_spreadsheet("book", {"Units": [["Unit", "Rent"], ["1A", 1000]]})
        client = emulator.client()
        try:
            assert await client.get_values("book", "Units!A1:B") == [["Unit", "Rent"], ["1A", "1000"]]
            assert await client.get_values("book", "Units!A1:B") == [["Unit", "Rent"], ["1A", "1000"]]
            assert emulator.requests["values.get"] == 1  # the second read was a cache hit
            await client.update_values("book", "Units!B2", [[1200]])
            assert emulator.values("book", "Units") == [["Unit", "Rent"], ["1A", 1200]]
            # The write invalidated the cached range: the next read asks the emulator again.
            assert await client.get_values("book", "Units!A1:B") == [["Unit", "Rent"], ["1A", "1200"]]
            assert emulator.requests["values.get"] == 2
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_in_process_client_sees_the_emulators_errors() -> None:
    async def scenario() -> None:
        emulator = SheetsEmulator()
        client = emulator.client()
        try:
            with pytest.raises(SheetsError) as info:
                await client.get_values("missing", "A1:B2")
            assert info.value.status == 404
        finally:
            await client.aclose()

    asyncio.run(scenario())
