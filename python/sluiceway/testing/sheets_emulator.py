"""SheetsEmulator: a local stand-in for the Google Sheets v4 values API.

A server on 127.0.0.1 (sluiceway's own ``HttpServer``) answering ``values.get``,
``values.batchGet``, ``values.update``, ``values.append`` and ``values.batchUpdate`` at the
paths of Google's discovery document, over in-memory spreadsheets loaded from CSV. The real
google-api-python-client works against it unchanged; only the endpoint differs::

    service = discovery.build("sheets", "v4", http=httplib2.Http(), static_discovery=True,
                              client_options={"api_endpoint": emulator.url})

Without a server, ``emulator.client()`` gives a real ``SheetsClient`` whose requests reach
the same answers in process (``sluiceway.testing.sheets_in_process``), for unit tests.

Like Google (https://developers.google.com/sheets/api/limits) it enforces per-minute
read and write quotas that refill every minute, answering ``429 RESOURCE_EXHAUSTED``
with Google's error body past them. Tests and benchmarks can add latency, inject 5xx
faults and read per-method request counters.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from sluiceway.http import HttpServer, Request, Response
from sluiceway.testing.sheets_grid import ApiError, Rows, Spreadsheet, bad_request, new_spreadsheet, rows_from_csv

#: Google's per-minute quotas per project (https://developers.google.com/sheets/api/limits).
DEFAULT_READS_PER_MINUTE = 300
DEFAULT_WRITES_PER_MINUTE = 300
#: Quotas refill at the start of every minute.
QUOTA_WINDOW_SECONDS = 60.0

#: Request bodies up to this size are read (Google documents ~10 MB as the practical payload limit).
MAX_BODY_BYTES = 10 * 1024 * 1024

if TYPE_CHECKING:
    from sluiceway.sheets.client import SheetsClient
    from sluiceway.sheets.config import SheetsClientConfig

_READS = frozenset({"values.get", "values.batchGet"})
_FAULT_MESSAGES = {
    500: ("INTERNAL", "Internal error encountered."),
    502: ("UNAVAILABLE", "Bad Gateway"),
    503: ("UNAVAILABLE", "The service is currently unavailable."),
    504: ("DEADLINE_EXCEEDED", "The request timed out."),
}


class SheetsEmulator:
    """A Sheets v4 values API on 127.0.0.1 for tests, demos and benchmarks.

    Example::

        async with SheetsEmulator() as emulator:
            emulator.load_csv("sheet-1", "Units", Path("units.csv"))
            client = SheetsClient(api_endpoint=emulator.url)
            rows = await client.get_values("sheet-1", "Units!A2:F")
            assert emulator.requests["values.get"] == 1

    From synchronous code, ``with emulator.running_in_thread(): ...`` serves it from
    a background thread.
    """

    def __init__(
        self,
        *,
        reads_per_minute: int = DEFAULT_READS_PER_MINUTE,
        writes_per_minute: int = DEFAULT_WRITES_PER_MINUTE,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_status: int = 503,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        port: int = 0,
    ) -> None:
        if reads_per_minute < 1 or writes_per_minute < 1:
            raise ValueError("reads_per_minute and writes_per_minute must be positive")
        self.reads_per_minute = reads_per_minute
        self.writes_per_minute = writes_per_minute
        #: Seconds added before every answer.
        self.latency = latency
        self.fault_rate = fault_rate
        self.fault_status = fault_status
        #: Answered requests per method (``values.get``...), including errors.
        self.requests: Counter[str] = Counter()
        #: Answers per HTTP status.
        self.statuses: Counter[int] = Counter()
        self._spreadsheets: dict[str, Spreadsheet] = {}
        self._denied: set[str] = set()
        self._scheduled_faults: list[int] = []
        self._quota_used: Counter[tuple[str, int]] = Counter()
        self._random = random.Random(seed)
        self._clock = clock
        self._port = port
        self._lock = threading.Lock()
        self._server: HttpServer | None = None
        self.url = ""

    # -- data -------------------------------------------------------------------

    def add_spreadsheet(self, spreadsheet_id: str, sheets: Mapping[str, Sequence[Sequence[Any]]] | None = None) -> None:
        """Create (or replace) a spreadsheet with ``sheets`` (title → rows; default one empty ``Sheet1``)."""
        with self._lock:
            self._spreadsheets[spreadsheet_id] = new_spreadsheet(spreadsheet_id, sheets or {"Sheet1": []})

    def load_csv(self, spreadsheet_id: str, sheet: str, source: str | Path) -> None:
        """Fill ``sheet`` of ``spreadsheet_id`` (created if missing) from a CSV path or CSV text."""
        rows = rows_from_csv(source)
        with self._lock:
            book = self._spreadsheets.setdefault(spreadsheet_id, Spreadsheet(spreadsheet_id))
            book.add_sheet(sheet, rows)

    def values(self, spreadsheet_id: str, sheet: str) -> Rows:
        """A copy of a sheet's stored cells (as stored, not rendered)."""
        with self._lock:
            return [list(r) for r in self._spreadsheets[spreadsheet_id].sheets[sheet.casefold()].rows]

    def deny(self, spreadsheet_id: str) -> None:
        """Answer every request on ``spreadsheet_id`` with 403 PERMISSION_DENIED."""
        self._denied.add(spreadsheet_id)

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """Answer the next ``count`` requests with ``status`` (a 5xx, or 429) before doing anything."""
        if status not in _FAULT_MESSAGES and status != 429:
            raise ValueError(f"status must be 429 or one of {sorted(_FAULT_MESSAGES)}, got {status}")
        with self._lock:
            self._scheduled_faults.extend([status] * count)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def reset_counters(self) -> None:
        """Zero the request and status counters (quota usage is kept)."""
        self.requests.clear()
        self.statuses.clear()

    # -- server -----------------------------------------------------------------

    async def start(self) -> str:
        """Start serving on 127.0.0.1; returns the base URL (also ``self.url``)."""
        self._server = HttpServer(self._serve, max_body_bytes=MAX_BODY_BYTES)
        await self._server.start("127.0.0.1", self._port)
        self.url = f"http://127.0.0.1:{self._server.port}/"
        return self.url

    @property
    def port(self) -> int:
        """The port served on (0 before ``start``)."""
        return self._server.port if self._server is not None else 0

    async def stop(self) -> None:
        if self._server is not None:
            # Requests held by ``latency`` get a moment to answer; the client retries any cut off.
            await self._server.stop(timeout=1.0)
            self._server = None

    def client(self, config: SheetsClientConfig | None = None) -> SheetsClient:
        """A real ``SheetsClient`` (cache, coalescing, retries, google-api-python-client) whose
        requests this emulator answers in process: no server, no port. ``start`` is not needed."""
        from sluiceway.testing.sheets_in_process import in_process_client

        return in_process_client(self, config)

    async def __aenter__(self) -> SheetsEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextmanager
    def running_in_thread(self) -> Iterator[SheetsEmulator]:
        """Serve from a background thread with its own event loop, for synchronous callers."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="sheets-emulator", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result()
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    # -- request handling -------------------------------------------------------

    async def _serve(self, request: Request) -> Response:
        if request.body_too_large:
            status, answer = 413, bad_request(f"Request payload over {MAX_BODY_BYTES} bytes.").body()
        else:
            if self.latency:
                await asyncio.sleep(self.latency)
            status, answer = self.handle(request.method, request.path, request.query_string, request.body)
        return Response(status, json.dumps(answer).encode(), content_type="application/json; charset=UTF-8")

    def handle(self, http_method: str, path: str, query_string: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one request (``path`` still percent-encoded): its HTTP status and JSON body.

        The server and the in-process transport both call this; ``latency`` is theirs to add.
        """
        query = parse_qs(query_string, keep_blank_values=True)
        method = "unknown"
        try:
            method, spreadsheet_id, cell_range = _route(http_method, path)
            self.requests[method] += 1
            with self._lock:
                answer = self._answer(method, spreadsheet_id, cell_range, query, body)
            status = 200
        except ApiError as exc:
            if method == "unknown":
                self.requests[method] += 1
            status, answer = exc.code, exc.body()
        self.statuses[status] += 1
        return status, answer

    def _answer(
        self, method: str, spreadsheet_id: str, cell_range: str, query: dict[str, list[str]], body: bytes
    ) -> dict[str, Any]:
        if self._scheduled_faults:
            self._fault(self._scheduled_faults.pop(0))
        if self.fault_rate and self._random.random() < self.fault_rate:
            self._fault(self.fault_status)
        self._charge_quota(method)
        book = self._spreadsheets.get(spreadsheet_id)
        if book is None:
            raise ApiError(404, "NOT_FOUND", "Requested entity was not found.")
        if spreadsheet_id in self._denied:
            raise ApiError(403, "PERMISSION_DENIED", "The caller does not have permission")
        formatted = _one(query, "valueRenderOption", "FORMATTED_VALUE") != "UNFORMATTED_VALUE"
        if method == "values.get":
            return book.read(cell_range, formatted=formatted)
        if method == "values.batchGet":
            return {
                "spreadsheetId": spreadsheet_id,
                "valueRanges": [book.read(r, formatted=formatted) for r in query.get("ranges", [])],
            }
        doc = _json(body)
        if method == "values.batchUpdate":
            return self._batch_update(book, doc)
        user_entered = _input_option(_one(query, "valueInputOption", ""))
        values = doc.get("values", [])
        major = str(doc.get("majorDimension", "ROWS"))
        if method == "values.update":
            return book.write(cell_range, values, user_entered=user_entered, major_dimension=major)
        return book.append(cell_range, values, user_entered=user_entered, major_dimension=major)

    @staticmethod
    def _batch_update(book: Spreadsheet, doc: dict[str, Any]) -> dict[str, Any]:
        user_entered = _input_option(str(doc.get("valueInputOption", "")))
        data = doc.get("data", [])
        for item in data:  # all or nothing, as Google applies a batch atomically
            book.resolve(str(item.get("range", "")))
        responses = [
            book.write(
                str(item["range"]),
                item.get("values", []),
                user_entered=user_entered,
                major_dimension=str(item.get("majorDimension", "ROWS")),
            )
            for item in data
        ]
        return {
            "spreadsheetId": book.spreadsheet_id,
            "totalUpdatedRows": sum(r["updatedRows"] for r in responses),
            "totalUpdatedColumns": sum(r["updatedColumns"] for r in responses),
            "totalUpdatedCells": sum(r["updatedCells"] for r in responses),
            "totalUpdatedSheets": len({r["updatedRange"].rsplit("!", 1)[0] for r in responses}),
            "responses": responses,
        }

    def _fault(self, status: int) -> None:
        if status == 429:
            raise _quota_error("read", self.reads_per_minute)
        reason, message = _FAULT_MESSAGES[status]
        raise ApiError(status, reason, message)

    def _charge_quota(self, method: str) -> None:
        kind = "read" if method in _READS else "write"
        limit = self.reads_per_minute if kind == "read" else self.writes_per_minute
        window = int(self._clock() // QUOTA_WINDOW_SECONDS)
        if self._quota_used[kind, window] >= limit:
            raise _quota_error(kind, limit)
        self._quota_used[kind, window] += 1
        for stale in [k for k in self._quota_used if k[1] < window]:
            del self._quota_used[stale]


def _route(http_method: str, path: str) -> tuple[str, str, str]:
    """(API method, spreadsheet id, range) for a request path of the discovery document."""
    prefix = "/v4/spreadsheets/"
    if not path.startswith(prefix):
        raise ApiError(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")
    spreadsheet_id, _, rest = path[len(prefix) :].partition("/")
    spreadsheet_id = unquote(spreadsheet_id)
    if ":" in spreadsheet_id and not rest:  # ".../values:batchGet" has no "/" after the id part
        spreadsheet_id, _, rest = path[len(prefix) :].partition("/")
    routes = {
        ("GET", "values:batchGet"): "values.batchGet",
        ("POST", "values:batchUpdate"): "values.batchUpdate",
    }
    if (http_method, rest) in routes:
        return routes[http_method, rest], spreadsheet_id, ""
    if rest.startswith("values/"):
        encoded = rest[len("values/") :]
        if http_method == "POST" and encoded.endswith(":append"):
            return "values.append", spreadsheet_id, unquote(encoded[: -len(":append")])
        if http_method == "GET":
            return "values.get", spreadsheet_id, unquote(encoded)
        if http_method == "PUT":
            return "values.update", spreadsheet_id, unquote(encoded)
    raise ApiError(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")


def _one(query: dict[str, list[str]], name: str, default: str) -> str:
    values = query.get(name)
    return values[-1] if values else default


def _input_option(option: str) -> bool:
    """Whether values are USER_ENTERED; 400 like Google when the option is missing or unknown."""
    if not option:
        raise bad_request("'valueInputOption' is required but not specified")
    if option not in ("RAW", "USER_ENTERED"):
        raise bad_request(f"Invalid value at 'value_input_option' ({option})")
    return option == "USER_ENTERED"


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        raise bad_request("Invalid JSON payload received.") from None
    if not isinstance(doc, dict):
        raise bad_request("Invalid JSON payload received. Expected an object.")
    return doc


def _quota_error(kind: str, limit: int) -> ApiError:
    """Google's 429 body for an exhausted per-minute quota."""
    metric = "Read requests" if kind == "read" else "Write requests"
    limit_name = f"{metric} per minute per user"
    return ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        f"Quota exceeded for quota metric '{metric}' and limit '{limit_name}' of service "
        "'sheets.googleapis.com' for consumer 'project_number:0'.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "service": "sheets.googleapis.com",
                    "consumer": "projects/0",
                    "quota_metric": f"sheets.googleapis.com/{kind}_requests",
                    "quota_limit": f"{kind.capitalize()}RequestsPerMinutePerUser",
                    "quota_limit_value": str(limit),
                },
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Request a higher quota limit.",
                        "url": "https://cloud.google.com/docs/quota#requesting_higher_quota",
                    }
                ],
            },
        ],
    )
