"""SheetsEmulator driven by the unmodified google-api-python-client over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httplib2
import pytest
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from sluiceway.testing import ManualClock, SheetsEmulator

SID = "book"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(0.0)


@pytest.fixture
def emulator(clock: ManualClock, tmp_path: Path) -> Iterator[SheetsEmulator]:
    csv_file = tmp_path / "units.csv"
    csv_file.write_text("Unit,Rent\n1A,1000\n1B,1100\n")
    emu = SheetsEmulator(reads_per_minute=4, writes_per_minute=3, clock=clock)
    emu.load_csv(SID, "Units", csv_file)
    emu.add_spreadsheet("two", {"My Sheet": [["a", "b"], ["c"]], "Empty": []})
    with emu.running_in_thread():
        yield emu


@pytest.fixture
def values(emulator: SheetsEmulator) -> Iterator[Any]:
    http = httplib2.Http()
    service = discovery.build(
        "sheets", "v4", http=http, static_discovery=True, client_options={"api_endpoint": emulator.url}
    )
    yield service.spreadsheets().values()
    http.close()


def error_of(request: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HttpError) as info:
        request.execute()
    return info.value.status_code, json.loads(info.value.content)


def test_reads_follow_googles_shapes(values: Any) -> None:
    """get and batchGet return ValueRanges with the normalised range, trimmed rows and no ``values`` when empty."""
    assert values.get(spreadsheetId=SID, range="Units!A1:B").execute() == {
        "range": "Units!A1:B1000",
        "majorDimension": "ROWS",
        "values": [["Unit", "Rent"], ["1A", "1000"], ["1B", "1100"]],
    }
    answer = values.batchGet(spreadsheetId="two", ranges=["'My Sheet'!A1:C5", "Empty!A:A", "B2"]).execute()
    assert [vr.get("values") for vr in answer["valueRanges"]] == [[["a", "b"], ["c"]], None, None]
    assert answer["valueRanges"][0]["range"] == "'My Sheet'!A1:C5"
    assert values.get(spreadsheetId=SID, range="Units!B2", valueRenderOption="UNFORMATTED_VALUE").execute()[
        "values"
    ] == [[1000]]


def test_writes_update_append_and_batch_update(values: Any, emulator: SheetsEmulator) -> None:
    """update writes from the top-left, append lands below the table, batchUpdate writes every range."""
    update = values.update(
        spreadsheetId=SID, range="Units!B2", valueInputOption="USER_ENTERED", body={"values": [["1050"]]}
    ).execute()
    assert update == {
        "spreadsheetId": SID,
        "updatedRange": "Units!B2",
        "updatedRows": 1,
        "updatedColumns": 1,
        "updatedCells": 1,
    }
    append = values.append(
        spreadsheetId=SID, range="Units!A1", valueInputOption="RAW", body={"values": [["2A", "900"]]}
    ).execute()
    assert append["updates"]["updatedRange"] == "Units!A4:B4"
    values.batchUpdate(
        spreadsheetId=SID,
        body={
            "valueInputOption": "RAW",
            "data": [{"range": "Units!C1", "values": [["Note"]]}, {"range": "Units!C2:C3", "values": [["x"], ["y"]]}],
        },
    ).execute()
    assert emulator.values(SID, "Units") == [
        ["Unit", "Rent", "Note"],
        ["1A", 1050, "x"],
        ["1B", 1100, "y"],
        ["2A", "900"],
    ]
    assert emulator.requests == {"values.update": 1, "values.append": 1, "values.batchUpdate": 1}


def test_a_batch_update_with_a_bad_range_writes_nothing(values: Any, emulator: SheetsEmulator) -> None:
    """batchUpdate is atomic: one unknown sheet fails the request and no cell changes."""
    before = emulator.values(SID, "Units")
    status, body = error_of(
        values.batchUpdate(
            spreadsheetId=SID,
            body={
                "valueInputOption": "RAW",
                "data": [{"range": "Units!A1", "values": [["z"]]}, {"range": "Nope!A1", "values": [["z"]]}],
            },
        )
    )
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert emulator.values(SID, "Units") == before


@pytest.mark.parametrize(
    ("sid", "rng", "status", "reason", "message"),
    [
        ("nope", "A1", 404, "NOT_FOUND", "Requested entity was not found."),
        (SID, "Nope!A1", 400, "INVALID_ARGUMENT", "Unable to parse range: Nope!A1"),
        (SID, "Units!A1:B2:C3", 400, "INVALID_ARGUMENT", "Unable to parse range: Units!A1:B2:C3"),
    ],
)
def test_errors_carry_googles_body(values: Any, sid: str, rng: str, status: int, reason: str, message: str) -> None:
    """Unknown spreadsheets and unparsable ranges answer with Google's status and JSON error body."""
    assert error_of(values.get(spreadsheetId=sid, range=rng)) == (
        status,
        {"error": {"code": status, "message": message, "status": reason}},
    )


def test_denied_spreadsheet_answers_403(values: Any, emulator: SheetsEmulator) -> None:
    """A spreadsheet marked denied answers PERMISSION_DENIED."""
    emulator.deny(SID)
    status, body = error_of(values.get(spreadsheetId=SID, range="A1"))
    assert (status, body["error"]["status"]) == (403, "PERMISSION_DENIED")


def test_missing_value_input_option_is_rejected(values: Any) -> None:
    """A write without valueInputOption gets Google's 400."""
    status, body = error_of(values.update(spreadsheetId=SID, range="Units!A1", body={"values": [["x"]]}))
    assert status == 400 and "valueInputOption" in body["error"]["message"]


def test_per_minute_quota_answers_429_then_refills(values: Any, emulator: SheetsEmulator, clock: ManualClock) -> None:
    """Past the per-minute read quota requests get Google's 429 body; the next minute they pass again."""
    for _ in range(4):
        values.get(spreadsheetId=SID, range="A1").execute()
    status, body = error_of(values.get(spreadsheetId=SID, range="A1"))
    assert status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "Read requests per minute per user" in body["error"]["message"]
    assert body["error"]["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    # Writes have a quota of their own.
    values.update(spreadsheetId=SID, range="Units!D1", valueInputOption="RAW", body={"values": [["w"]]}).execute()
    clock.advance(60.0)
    assert values.get(spreadsheetId=SID, range="A1").execute()["values"] == [["Unit"]]
    assert emulator.statuses == {200: 6, 429: 1}


def test_faults_and_latency_are_injected(values: Any, emulator: SheetsEmulator) -> None:
    """fail_next answers the next requests with the given 5xx; latency delays every answer by at least its value."""
    emulator.fail_next(2, status=500)
    assert error_of(values.get(spreadsheetId=SID, range="A1"))[0] == 500
    assert error_of(values.get(spreadsheetId=SID, range="A1"))[0] == 500
    emulator.latency = 0.05
    start = time.monotonic()
    values.get(spreadsheetId=SID, range="A1").execute()
    assert time.monotonic() - start >= 0.05
    with pytest.raises(ValueError, match="status"):
        emulator.fail_next(1, status=404)


def test_fault_rate_is_reproducible_from_the_seed() -> None:
    """With a seed, the same requests meet the same injected faults."""

    def run() -> list[int]:
        emu = SheetsEmulator(fault_rate=0.5, seed=7)
        emu.load_csv(SID, "Units", "a\n")
        with emu.running_in_thread():
            http = httplib2.Http()
            api = discovery.build(
                "sheets", "v4", http=http, static_discovery=True, client_options={"api_endpoint": emu.url}
            )
            resource = api.spreadsheets().values()
            codes = []
            for _ in range(12):
                try:
                    resource.get(spreadsheetId=SID, range="A1").execute()
                    codes.append(200)
                except HttpError as exc:
                    codes.append(exc.status_code)
            http.close()
        return codes

    first = run()
    assert first == run()
    assert 503 in first and 200 in first
