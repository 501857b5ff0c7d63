"""SheetsClient against google-api-python-client's HttpMockSequence, replaying Google's real answers."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from typing import Any

import pytest
from googleapiclient import discovery
from googleapiclient.http import HttpMockSequence

from sluiceway.sheets.cache import SheetsCache
from sluiceway.sheets.client import SheetsClient
from sluiceway.sheets.config import SheetsClientConfig
from sluiceway.sheets.errors import (
    BadRequestError,
    InvalidRangeError,
    PermissionDeniedError,
    QuotaExceededError,
    SheetsUnavailableError,
    SpreadsheetNotFoundError,
)
from sluiceway.sheets.invalidation import LocalInvalidation

SID = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"

VALUE_RANGE = {
    "range": "Units!A1:B2",
    "majorDimension": "ROWS",
    "values": [["Unit", "Rent"], ["4B", "1200"]],
}
NOT_FOUND = {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}
DENIED = {"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}}
UNAVAILABLE = {"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}}
BAD_RANGE = {"error": {"code": 400, "message": "Unable to parse range: Nope!A1", "status": "INVALID_ARGUMENT"}}
QUOTA = {
    "error": {
        "code": 429,
        "message": "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user' "
        "of service 'sheets.googleapis.com' for consumer 'project_number:123'.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {"service": "sheets.googleapis.com", "quota_limit": "ReadRequestsPerMinutePerUser"},
            }
        ],
    }
}


def answer(status: int, body: dict[str, Any]) -> tuple[dict[str, str], str]:
    return {"status": str(status), "content-type": "application/json; charset=UTF-8"}, json.dumps(body)


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


@functools.cache
def sheets_service() -> Any:
    """Built once: parsing the discovery document is the slow part."""
    return discovery.build("sheets", "v4", http=HttpMockSequence([]), static_discovery=True, developerKey="test")


def client_for(*answers: tuple[dict[str, str], str], max_retries: int = 3) -> tuple[SheetsClient, HttpMockSequence]:
    http = HttpMockSequence(list(answers))
    # One worker thread: the mock sequence is a single shared Http object.
    config = SheetsClientConfig(max_retries=max_retries, initial_backoff=0.01, coalesce_window=0.0, max_workers=1)
    cache = SheetsCache(invalidation=LocalInvalidation())
    return SheetsClient(cache, service=sheets_service(), http_factory=lambda: http, config=config, sleep=no_sleep), http


def test_get_values_returns_rows_and_caches_them() -> None:
    """A read returns the ValueRange's rows; the second read of the range is served from the cache."""

    async def scenario() -> None:
        client, http = client_for(answer(200, VALUE_RANGE))
        async with client:
            assert await client.get_values(SID, "Units!A1:B2") == VALUE_RANGE["values"]
            assert await client.get_values(SID, "Units!A1:B2") == VALUE_RANGE["values"]
            assert client.stats()["reads"] == 1
            assert http._iterable == []  # the one answer was consumed

    asyncio.run(scenario())


def test_empty_range_reads_as_no_rows() -> None:
    """Google omits ``values`` for an empty range; the client returns []."""

    async def scenario() -> None:
        client, _ = client_for(answer(200, {"range": "Units!Z1:Z9", "majorDimension": "ROWS"}))
        async with client:
            assert await client.get_values(SID, "Units!Z1:Z9") == []

    asyncio.run(scenario())


@pytest.mark.parametrize("failure", [QUOTA, UNAVAILABLE])
def test_429_and_503_are_retried(failure: dict[str, Any]) -> None:
    """A 429 or 503 answer is retried with backoff and the caller gets the eventual value."""

    async def scenario() -> None:
        status = failure["error"]["code"]
        client, _ = client_for(answer(status, failure), answer(status, failure), answer(200, VALUE_RANGE))
        async with client:
            assert await client.get_values(SID, "Units!A1:B2") == VALUE_RANGE["values"]
            assert client.stats() == {"reads": 3, "writes": 0, "retries": 2}

    asyncio.run(scenario())


def test_retries_run_out_into_a_quota_error_keeping_googles_words() -> None:
    """When every retry meets 429, QuotaExceededError carries Google's status, reason and message."""

    async def scenario() -> None:
        client, _ = client_for(*[answer(429, QUOTA)] * 3, max_retries=2)
        async with client:
            with pytest.raises(QuotaExceededError) as info:
                await client.get_values(SID, "Units!A1:B2")
        assert info.value.status == 429 and info.value.reason == "RESOURCE_EXHAUSTED"
        assert "Read requests per minute per user" in str(info.value)
        assert info.value.details[0]["reason"] == "RATE_LIMIT_EXCEEDED"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("body", "error"),
    [(NOT_FOUND, SpreadsheetNotFoundError), (DENIED, PermissionDeniedError), (BAD_RANGE, BadRequestError)],
)
def test_client_errors_surface_as_clear_exceptions(body: dict[str, Any], error: type[Exception]) -> None:
    """404, 403 and 400 are not retried and raise their SheetsError subclass with Google's message."""

    async def scenario() -> None:
        client, _ = client_for(answer(body["error"]["code"], body))
        async with client:
            with pytest.raises(error, match=body["error"]["message"]):
                await client.get_values(SID, "Units!A1:B2")
            assert client.stats()["retries"] == 0

    asyncio.run(scenario())


def test_append_is_not_retried_after_a_5xx() -> None:
    """An append that met a 503 may have been applied, so it fails rather than risk duplicate rows."""

    async def scenario() -> None:
        client, _ = client_for(answer(503, UNAVAILABLE), answer(200, {}))
        async with client:
            with pytest.raises(SheetsUnavailableError):
                await client.append_values(SID, "Units!A1", [["4C", "900"]])
            assert client.stats()["writes"] == 1

    asyncio.run(scenario())


def test_update_invalidates_the_cached_range() -> None:
    """After update_values returns, a read of an overlapping range asks Google again."""
    updated = {
        "spreadsheetId": SID,
        "updatedRange": "Units!B2",
        "updatedRows": 1,
        "updatedColumns": 1,
        "updatedCells": 1,
    }
    fresh = dict(VALUE_RANGE, values=[["Unit", "Rent"], ["4B", "1300"]])

    async def scenario() -> None:
        client, _ = client_for(answer(200, VALUE_RANGE), answer(200, updated), answer(200, fresh))
        async with client:
            await client.get_values(SID, "Units!A1:B2")
            assert await client.update_values(SID, "Units!B2", [["1300"]]) == updated
            assert await client.get_values(SID, "Units!A1:B2") == fresh["values"]

    asyncio.run(scenario())


def test_malformed_input_fails_before_any_request() -> None:
    """A malformed range or bad write arguments raise ValueError naming the problem, sending nothing."""

    async def scenario() -> None:
        client, _ = client_for()
        async with client:
            with pytest.raises(InvalidRangeError, match="numbered from 1"):
                await client.get_values(SID, "Units!A0")
            with pytest.raises(ValueError, match="value_input_option"):
                await client.update_values(SID, "Units!A1", [["x"]], value_input_option="TYPED")
            with pytest.raises(ValueError, match="list of rows"):
                await client.update_values(SID, "Units!A1", ["x"])  # type: ignore[list-item]
            with pytest.raises(ValueError, match="at least one range"):
                await client.batch_update_values(SID, {})
            with pytest.raises(TypeError, match="sequence of ranges"):
                await client.batch_get(SID, "Units!A1")
            assert client.stats()["reads"] == client.stats()["writes"] == 0

    asyncio.run(scenario())


def test_each_thread_uses_its_own_http_object() -> None:
    """httplib2 is not thread-safe: every Http the client makes is only ever used by one thread."""
    from googleapiclient.http import HttpMock

    seen: dict[int, set[int]] = {}

    class RecordingHttp(HttpMock):  # type: ignore[misc]
        def request(self, *args: Any, **kwargs: Any) -> Any:
            seen.setdefault(id(self), set()).add(threading.get_ident())
            return super().request(*args, **kwargs)

    def factory() -> Any:
        http = RecordingHttp(headers={"status": "200"})
        http.data = json.dumps(VALUE_RANGE).encode()
        return http

    async def scenario() -> None:
        config = SheetsClientConfig(coalesce_window=0.0, max_workers=4)
        cache = SheetsCache(invalidation=LocalInvalidation())
        async with SheetsClient(cache, service=sheets_service(), http_factory=factory, config=config) as client:
            await asyncio.gather(*(client.get_values(f"book-{i}", "Units!A1:B2") for i in range(40)))
            assert client.stats()["reads"] == 40

    asyncio.run(scenario())
    assert seen and all(len(threads) == 1 for threads in seen.values())
