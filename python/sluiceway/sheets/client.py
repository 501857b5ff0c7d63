"""SheetsClient: an async, cached, quota-safe layer over google-api-python-client."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httplib2

from sluiceway.sheets.cache import SheetsCache
from sluiceway.sheets.coalescer import BatchCoalescer
from sluiceway.sheets.config import SheetsClientConfig
from sluiceway.sheets.errors import BadRequestError
from sluiceway.sheets.ranges import format_a1, parse_a1
from sluiceway.sheets.transport import Transport

#: OAuth scope for reading and writing spreadsheets.
SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
VALUE_INPUT_OPTIONS = ("RAW", "USER_ENTERED")

Rows = list[list[Any]]


class SheetsClient:
    """Reads through a :class:`SheetsCache`, writes with read-your-writes, never past the quota.

    * Reads (``get_values``, ``batch_get``) go through the cache; concurrent misses on
      one spreadsheet within ``coalesce_window`` become one ``values.batchGet``.
    * Writes (``update_values``, ``append_values``, ``batch_update_values``) invalidate
      the overlapping cached ranges, in every worker sharing the cache's invalidation
      channel, before they return (an append invalidates its whole sheet).
    * A client-side ``RateLimiter`` holds traffic under ``read_requests_per_minute`` /
      ``write_requests_per_minute``; 429 and 5xx answers are retried with exponential
      backoff and jitter. Failures raise :class:`~sluiceway.sheets.errors.SheetsError`
      subclasses carrying Google's status and message.

    Connect with google-auth ``credentials`` (default: Application Default Credentials),
    a ready ``service`` (then ``http_factory`` may give each thread its own ``Http``), or
    ``api_endpoint`` alone for an unauthenticated local server such as
    :class:`~sluiceway.testing.SheetsEmulator`.

    Example::

        async with SheetsClient(credentials=creds) as sheets:
            units = await sheets.get_values(SHEET_ID, "'Units'!A2:F200")
            await sheets.update_values(SHEET_ID, "'Units'!F7", [["let"]])

    Warning: an append is retried only after a 429 (which Google never executed): after
    a 5xx it may or may not have been applied, and appending again could duplicate rows.
    """

    def __init__(
        self,
        cache: SheetsCache | None = None,
        *,
        credentials: Any = None,
        service: Any = None,
        api_endpoint: str | None = None,
        http_factory: Callable[[], httplib2.Http] | None = None,
        config: SheetsClientConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config or SheetsClientConfig()
        self.cache = cache if cache is not None else SheetsCache(clock=clock)
        timeout = self.config.request_timeout
        if service is None:
            service, http_factory = _build_service(credentials, api_endpoint, timeout)
        self._transport = Transport(service, self.config, http_factory, clock=clock, sleep=sleep)
        self._coalescer = BatchCoalescer(self._fetch_many, self.config.coalesce_window, self.config.max_batch_ranges)

    async def __aenter__(self) -> SheetsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def close(self) -> None:
        """Wait for requests in progress, then release the worker threads and their connections."""
        self._transport.close()

    async def aclose(self) -> None:
        """``close()`` without blocking the event loop while requests in progress finish."""
        await asyncio.to_thread(self._transport.close)

    # -- reads ------------------------------------------------------------------

    async def get_values(
        self, spreadsheet_id: str, cell_range: str, *, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> Rows:
        """The rows of ``cell_range`` (``[]`` when empty), from the cache when fresh."""
        parse_a1(cell_range)
        load = functools.partial(self._coalescer.load, spreadsheet_id, cell_range)
        result = await self.cache.get_or_fetch(spreadsheet_id, cell_range, load, ttl=ttl, tags=tags)
        rows: Rows = result.value
        return rows

    async def batch_get(
        self, spreadsheet_id: str, ranges: Sequence[str], *, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> list[Rows]:
        """The rows of each of ``ranges``, in order; the misses among them cost one request."""
        if isinstance(ranges, str):
            raise TypeError("ranges must be a sequence of ranges, not one str")
        return list(await asyncio.gather(*(self.get_values(spreadsheet_id, r, ttl=ttl, tags=tags) for r in ranges)))

    async def _fetch_many(self, spreadsheet_id: str, ranges: list[str]) -> list[Any]:
        if len(ranges) == 1:
            answer = await self._transport.execute(
                lambda api: api.get(spreadsheetId=spreadsheet_id, range=ranges[0]), write=False
            )
            return [answer.get("values", [])]
        try:
            answer = await self._transport.execute(
                lambda api: api.batchGet(spreadsheetId=spreadsheet_id, ranges=ranges), write=False
            )
        except BadRequestError:
            # One bad range fails the whole batch; ask separately so only that one fails.
            alone = await asyncio.gather(
                *(self._fetch_many(spreadsheet_id, [r]) for r in ranges), return_exceptions=True
            )
            return [result if isinstance(result, BaseException) else result[0] for result in alone]
        return [vr.get("values", []) for vr in answer.get("valueRanges", [])]

    # -- writes -----------------------------------------------------------------

    async def update_values(
        self, spreadsheet_id: str, cell_range: str, values: Rows, value_input_option: str = "RAW"
    ) -> dict[str, Any]:
        """Write ``values`` from the top-left of ``cell_range``; Google's ``UpdateValuesResponse``."""
        _check_write(cell_range, values, value_input_option)
        body = {"values": values}
        return await self._write(
            spreadsheet_id,
            [cell_range],
            lambda api: api.update(
                spreadsheetId=spreadsheet_id, range=cell_range, valueInputOption=value_input_option, body=body
            ),
        )

    async def append_values(
        self, spreadsheet_id: str, cell_range: str, values: Rows, value_input_option: str = "RAW"
    ) -> dict[str, Any]:
        """Append ``values`` below the table at ``cell_range``; Google's ``AppendValuesResponse``.

        Every cached range of the sheet is invalidated (the rows land wherever the table ends).
        """
        _check_write(cell_range, values, value_input_option)
        target = parse_a1(cell_range)
        whole_sheet = None if target.sheet is None or target.unbounded else format_a1(target.whole_sheet())
        body = {"values": values}
        return await self._write(
            spreadsheet_id,
            [whole_sheet],
            lambda api: api.append(
                spreadsheetId=spreadsheet_id, range=cell_range, valueInputOption=value_input_option, body=body
            ),
            retry_server_errors=False,
        )

    async def batch_update_values(
        self, spreadsheet_id: str, data: Mapping[str, Rows], value_input_option: str = "RAW"
    ) -> dict[str, Any]:
        """Write several ranges in one request (``data`` maps range → rows); Google's ``BatchUpdateValuesResponse``."""
        if not data:
            raise ValueError("data must map at least one range to its rows")
        for cell_range, values in data.items():
            _check_write(cell_range, values, value_input_option)
        body = {"valueInputOption": value_input_option, "data": [{"range": r, "values": v} for r, v in data.items()]}
        return await self._write(
            spreadsheet_id, list(data), lambda api: api.batchUpdate(spreadsheetId=spreadsheet_id, body=body)
        )

    async def _write(
        self,
        spreadsheet_id: str,
        touched: list[str | None],
        build: Callable[[Any], Any],
        *,
        retry_server_errors: bool = True,
    ) -> dict[str, Any]:
        """Send a write, then invalidate ``touched`` (``None``: the whole spreadsheet) in every worker.

        The invalidation runs even when the write failed: a timed-out write may still have
        been applied, and dropping cached ranges is always safe.
        """
        try:
            answer: dict[str, Any] = await self._transport.execute(
                build, write=True, retry_server_errors=retry_server_errors
            )
            return answer
        finally:
            await asyncio.gather(*(self.cache.invalidate_everywhere(spreadsheet_id, r) for r in touched))

    def stats(self) -> dict[str, int]:
        """Requests sent to Google (``reads``, ``writes``, every attempt) and ``retries`` among them."""
        return dict(self._transport.counts)


def _check_write(cell_range: str, values: Rows, value_input_option: str) -> None:
    parse_a1(cell_range)
    if value_input_option not in VALUE_INPUT_OPTIONS:
        raise ValueError(f"value_input_option must be one of {VALUE_INPUT_OPTIONS}, got {value_input_option!r}")
    if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
        raise ValueError(f"values for {cell_range!r} must be a list of rows, each a list of cell values")


def _build_service(
    credentials: Any, api_endpoint: str | None, timeout: float
) -> tuple[Any, Callable[[], httplib2.Http]]:
    """The discovery-built Sheets v4 service, and the per-thread ``Http`` factory matching its auth."""
    from googleapiclient import discovery

    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    if credentials is None and api_endpoint is None:
        import google.auth

        credentials, _ = google.auth.default(scopes=[SHEETS_SCOPE])
    if credentials is None:
        # A local server (an emulator): no authentication.
        def plain_http() -> httplib2.Http:
            return httplib2.Http(timeout=timeout)

        service = discovery.build("sheets", "v4", http=plain_http(), static_discovery=True, client_options=options)
        return service, plain_http

    import google_auth_httplib2

    def authorized_http() -> httplib2.Http:
        http: httplib2.Http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout))
        return http

    service = discovery.build("sheets", "v4", credentials=credentials, static_discovery=True, client_options=options)
    return service, authorized_http
