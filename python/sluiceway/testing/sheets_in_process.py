"""A ``SheetsClient`` whose requests a ``SheetsEmulator`` answers in the same process, without HTTP.

google-api-python-client sends every request through an ``httplib2.Http``: ``InProcessHttp``
is one that hands the request to :meth:`SheetsEmulator.handle` instead of a socket. So the
whole client path runs as in production (cache, coalescing, quota, retries, the discovery
document's URLs and JSON), and a unit test needs no server, no port and no event loop of its own.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httplib2

from sluiceway.sheets.client import SheetsClient
from sluiceway.sheets.config import SheetsClientConfig

if TYPE_CHECKING:
    from sluiceway.testing.sheets_emulator import SheetsEmulator

#: The endpoint the in-process client's URLs carry; nothing listens there, nothing is resolved.
IN_PROCESS_ENDPOINT = "http://sheets.in-process.invalid/"


class InProcessHttp(httplib2.Http):  # type: ignore[misc]
    """An ``httplib2.Http`` that answers from ``emulator`` (its ``latency`` included) instead of the network."""

    def __init__(self, emulator: SheetsEmulator) -> None:
        super().__init__()
        self._emulator = emulator

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        redirections: int = 0,
        connection_type: Any = None,
    ) -> tuple[httplib2.Response, bytes]:
        parts = urlsplit(uri)
        data = body.encode() if isinstance(body, str) else (body or b"")
        if self._emulator.latency:
            time.sleep(self._emulator.latency)  # this runs in the client's worker thread, not the event loop
        status, answer = self._emulator.handle(method, parts.path, parts.query, data)
        content = json.dumps(answer).encode()
        response = httplib2.Response(
            {
                "status": str(status),
                "content-type": "application/json; charset=UTF-8",
                "content-length": str(len(content)),
            }
        )
        return response, content


def in_process_client(emulator: SheetsEmulator, config: SheetsClientConfig | None = None) -> SheetsClient:
    """A real ``SheetsClient`` over ``InProcessHttp`` (one ``Http`` per client thread, as over the network)."""
    from googleapiclient import discovery

    def http() -> InProcessHttp:
        return InProcessHttp(emulator)

    service = discovery.build(
        "sheets", "v4", http=http(), static_discovery=True, client_options={"api_endpoint": IN_PROCESS_ENDPOINT}
    )
    return SheetsClient(service=service, http_factory=http, config=config)
