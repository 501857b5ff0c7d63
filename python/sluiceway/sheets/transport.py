"""Running google-api-python-client requests from asyncio: threads, quota and retries.

The client library blocks, and its ``httplib2`` transport is not thread-safe
(https://googleapis.github.io/google-api-python-client/docs/thread_safety.html), so
requests run in a thread pool and every thread executes with its own ``Http`` object.
Before each attempt a client-side ``RateLimiter`` admits it under the configured
per-minute quota; a 429 or 5xx answer is retried with truncated exponential backoff
and jitter, ``min(initial * 2**n + random(0, initial), max_backoff)``, the algorithm
Google's Sheets limits page prescribes (https://developers.google.com/sheets/api/limits).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httplib2
from googleapiclient.errors import HttpError

from sluiceway.core import RateLimiter
from sluiceway.sheets.config import SheetsClientConfig
from sluiceway.sheets.errors import SheetsError, SheetsUnavailableError, error_from_response

logger = logging.getLogger(__name__)

#: Answers worth retrying: quota exhausted, and the server-side failures Google names as transient.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

#: Builds the request to run from the ``spreadsheets().values()`` resource; called in a worker thread.
RequestBuilder = Callable[[Any], Any]


class Transport:
    """Executes Sheets requests in threads, under a quota, with retries.

    ``http_factory`` makes the ``Http`` each thread uses; ``None`` means the service's
    own one, which is then shared, so requests run one at a time.
    """

    def __init__(
        self,
        service: Any,
        config: SheetsClientConfig,
        http_factory: Callable[[], httplib2.Http] | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._service = service
        self._config = config
        self._http_factory = http_factory
        self._local = threading.local()
        # Every thread's Http, so that close() can close their sockets.
        self._https: list[httplib2.Http] = []
        self._https_lock = threading.Lock()
        self._values: Any = None
        workers = config.max_workers if http_factory is not None else 1
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sheets-http")
        self._reads = RateLimiter.per(minute=config.read_requests_per_minute)
        self._writes = RateLimiter.per(minute=config.write_requests_per_minute)
        self._clock = clock
        self._sleep = sleep
        self._random = random.Random()
        #: Requests sent to Google (every attempt), by kind, and retries among them.
        self.counts = {"reads": 0, "writes": 0, "retries": 0}

    async def execute(self, build: RequestBuilder, *, write: bool, retry_server_errors: bool = True) -> Any:
        """Run ``build(service).execute()``; ``SheetsError`` (with Google's status and message) on failure.

        ``retry_server_errors=False`` retries only 429s (which Google never executed), for
        requests that must not run twice, such as appends.
        """
        limiter = self._writes if write else self._reads
        attempt = 0
        while True:
            await self._admit(limiter)
            self.counts["writes" if write else "reads"] += 1
            try:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._pool, self._run, build)
            except SheetsError as exc:
                retryable = exc.status == 429 or (retry_server_errors and exc.status in RETRYABLE_STATUSES | {0})
                if not retryable or attempt >= self._config.max_retries:
                    raise
                delay = self._backoff(attempt)
                logger.info("Sheets answered %s; retry %d in %.2fs", exc.status or "nothing", attempt + 1, delay)
                self.counts["retries"] += 1
                attempt += 1
                await self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        initial = self._config.initial_backoff
        return min(initial * float(2**attempt) + self._random.uniform(0, initial), self._config.max_backoff)

    async def _admit(self, limiter: RateLimiter) -> None:
        while not limiter.try_acquire(now=self._clock()):
            await self._sleep(max(float(limiter.time_until(now=self._clock())), 0.001))

    def _run(self, build: RequestBuilder) -> Any:
        http = self._thread_http()
        try:
            return build(self._values_resource()).execute(http=http, num_retries=0)
        except HttpError as exc:
            raise error_from_response(exc.resp.status, exc.content) from None
        except (OSError, httplib2.HttpLib2Error) as exc:
            raise SheetsUnavailableError(f"could not reach the Sheets API: {exc}") from exc

    def _values_resource(self) -> Any:
        # Built once: each ``spreadsheets()`` call rebuilds every method from the
        # discovery document, which costs tens of milliseconds.
        with self._https_lock:
            if self._values is None:
                self._values = self._service.spreadsheets().values()
            return self._values

    def _thread_http(self) -> httplib2.Http | None:
        if self._http_factory is None:
            return None
        http: httplib2.Http | None = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self._http_factory()
            with self._https_lock:
                self._https.append(http)
        return http

    def close(self) -> None:
        """Wait for running requests, drop queued ones, and close every thread's connections."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._https_lock:
            https, self._https = self._https, []
        for http in https:
            close = getattr(http, "close", None)  # test doubles such as HttpMockSequence have none
            if close is not None:
                close()
