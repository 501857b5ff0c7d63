"""SheetsClient over real HTTP against the SheetsEmulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sluiceway.sheets.cache import SheetsCache
from sluiceway.sheets.client import SheetsClient
from sluiceway.sheets.config import SheetsClientConfig
from sluiceway.sheets.errors import InvalidRangeError, PermissionDeniedError, SpreadsheetNotFoundError
from sluiceway.sheets.invalidation import LocalInvalidation
from sluiceway.testing import ManualClock, SheetsEmulator

SID = "units-book"
UNITS_CSV = "Unit,Status,Rent\n1A,let,1000\n1B,free,1100\n2A,let,1200\n2B,free,1300\n"


def with_emulator(
    scenario: Callable[[SheetsEmulator, SheetsClient], Awaitable[None]],
    *,
    config: SheetsClientConfig | None = None,
    **emulator_args: Any,
) -> None:
    async def main() -> None:
        async with SheetsEmulator(**emulator_args) as emulator:
            emulator.load_csv(SID, "Units", UNITS_CSV)
            emulator.add_spreadsheet("other-book", {"Sheet1": [["x"]]})
            cache = SheetsCache(invalidation=LocalInvalidation())
            async with SheetsClient(
                cache, api_endpoint=emulator.url, config=config or SheetsClientConfig(coalesce_window=0.05)
            ) as client:
                await scenario(emulator, client)

    asyncio.run(main())


def test_concurrent_misses_are_coalesced_into_one_batch_get() -> None:
    """Reads of several ranges of one spreadsheet issued together cost one values.batchGet."""

    async def scenario(emulator: SheetsEmulator, client: SheetsClient) -> None:
        ranges = ["Units!A2:C2", "Units!A3:C3", "Units!A4:C4", "Units!A5:C5", "Units!A2:C2"]
        rows = await asyncio.gather(*(client.get_values(SID, r) for r in ranges))
        assert rows[0] == rows[4] == [["1A", "let", "1000"]]
        assert rows[3] == [["2B", "free", "1300"]]
        assert emulator.requests == {"values.batchGet": 1}
        assert await client.batch_get(SID, ranges[:2]) == rows[:2]  # now cached
        assert emulator.total_requests == 1

    with_emulator(scenario)


def test_a_full_batch_is_sent_without_waiting_for_the_window() -> None:
    """With max_batch_ranges=2, five concurrent misses go out as two batchGets and one get."""

    async def scenario(emulator: SheetsEmulator, client: SheetsClient) -> None:
        rows = await asyncio.gather(*(client.get_values(SID, f"Units!A{r}") for r in range(1, 6)))
        assert rows == [[["Unit"]], [["1A"]], [["1B"]], [["2A"]], [["2B"]]]
        assert emulator.requests == {"values.batchGet": 2, "values.get": 1}

    with_emulator(scenario, config=SheetsClientConfig(coalesce_window=0.05, max_batch_ranges=2))


def test_a_bad_range_in_a_batch_fails_alone() -> None:
    """When one coalesced range names no sheet, only its reader gets the error."""

    async def scenario(emulator: SheetsEmulator, client: SheetsClient) -> None:
        good, bad = await asyncio.gather(
            client.get_values(SID, "Units!A2:A3"), client.get_values(SID, "Nope!A1"), return_exceptions=True
        )
        assert good == [["1A"], ["1B"]]
        assert isinstance(bad, ValueError) and "Unable to parse range: Nope!A1" in str(bad)

    with_emulator(scenario)


WRITES: dict[str, Callable[[SheetsClient], Awaitable[Any]]] = {
    "update": lambda c: c.update_values(SID, "Units!C3", [[999]]),
    "append": lambda c: c.append_values(SID, "Units!A1", [["3A", "free", 999]]),
    "batch_update": lambda c: c.batch_update_values(SID, {"Units!C3": [[999]], "Units!A9": [["x"]]}),
}


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_every_write_kind_invalidates_what_it_touched(kind: str) -> None:
    """After any write returns, overlapping cached ranges are refetched and show the new cells."""

    async def scenario(emulator: SheetsEmulator, client: SheetsClient) -> None:
        whole = await client.get_values(SID, "Units!A1:C")
        untouched = await client.get_values("other-book", "Sheet1!A1")
        await WRITES[kind](client)
        after = await client.get_values(SID, "Units!A1:C")
        assert after != whole
        assert any("999" in row for row in after)
        assert await client.get_values("other-book", "Sheet1!A1") == untouched
        assert emulator.requests["values.get"] == 3  # the other book stayed cached

    with_emulator(scenario)


def test_append_invalidates_the_whole_sheet_only() -> None:
    """An append drops every cached range of its sheet (the rows land below the table) and no other sheet's."""

    async def scenario(emulator: SheetsEmulator, client: SheetsClient) -> None:
        emulator.load_csv(SID, "Owners", "Name\nAda\n")
        await client.get_values(SID, "Units!Z100")
        await client.get_values(SID, "Owners!A1:A2")
        emulator.reset_counters()
        await client.append_values(SID, "Units!A1:C1", [["9Z", "free", 1]])
        await client.get_values(SID, "Units!Z100")
        await client.get_values(SID, "Owners!A1:A2")
        assert emulator.requests == {"values.append": 1, "values.get": 1}

    with_emulator(scenario)


def test_client_side_limiter_keeps_reads_under_the_quota() -> None:
    """With a budget of 3 reads a minute, 7 uncached reads never draw a 429 and span two minutes."""
    clock = ManualClock(1000.0)

    async def advancing_sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    async def main() -> None:
        async with SheetsEmulator(reads_per_minute=3, clock=clock) as emulator:
            emulator.load_csv(SID, "Units", UNITS_CSV)
            cache = SheetsCache(invalidation=LocalInvalidation())
            config = SheetsClientConfig(read_requests_per_minute=3, coalesce_window=0.0)
            async with SheetsClient(
                cache, api_endpoint=emulator.url, config=config, clock=clock, sleep=advancing_sleep
            ) as client:
                for row in range(1, 8):
                    await client.get_values(SID, f"Units!A{row}")
            assert emulator.statuses == {200: 7}
            assert clock() >= 1000.0 + 120.0

    asyncio.run(main())


def test_quota_429_and_injected_503_are_retried_through_real_http() -> None:
    """The emulator's 429 and 503 answers are retried and the read still succeeds."""

    async def scenario(emulator: SheetsEmulator, client: SheetsClient) -> None:
        emulator.fail_next(1, status=429)
        emulator.fail_next(1, status=503)
        assert await client.get_values(SID, "Units!A2") == [["1A"]]
        assert emulator.statuses == {429: 1, 503: 1, 200: 1}
        assert client.stats()["retries"] == 2

    with_emulator(scenario, config=SheetsClientConfig(initial_backoff=0.01, max_backoff=0.05))


def test_unknown_spreadsheet_and_denied_access_raise_clear_errors() -> None:
    """A 404 raises SpreadsheetNotFoundError and a 403 PermissionDeniedError, each with Google's message."""

    async def scenario(emulator: SheetsEmulator, client: SheetsClient) -> None:
        with pytest.raises(SpreadsheetNotFoundError, match="Requested entity was not found") as missing:
            await client.get_values("no-such-book", "A1")
        assert missing.value.status == 404 and missing.value.reason == "NOT_FOUND"
        emulator.deny("other-book")
        with pytest.raises(PermissionDeniedError, match="does not have permission"):
            await client.update_values("other-book", "Sheet1!A1", [["y"]])
        with pytest.raises(InvalidRangeError):
            await client.get_values(SID, "Units!A1:B2:C3")
        assert emulator.total_requests == 2

    with_emulator(scenario)


def test_google_auth_credentials_are_applied_per_thread() -> None:
    """With google-auth credentials the client authorizes each thread's Http and reads normally."""
    from google.auth.credentials import AnonymousCredentials

    async def main() -> None:
        async with SheetsEmulator() as emulator:
            emulator.load_csv(SID, "Units", UNITS_CSV)
            cache = SheetsCache(invalidation=LocalInvalidation())
            creds = AnonymousCredentials()
            async with SheetsClient(cache, credentials=creds, api_endpoint=emulator.url) as client:
                assert await client.get_values(SID, "Units!A2:B2") == [["1A", "let"]]

    asyncio.run(main())
