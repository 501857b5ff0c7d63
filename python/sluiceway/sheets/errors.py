"""Errors of the Sheets layer: one ``SheetsError`` root under ``SluicewayError``.

An API failure keeps what Google said: the HTTP ``status``, Google's canonical
``reason`` (``NOT_FOUND``, ``PERMISSION_DENIED``, ``RESOURCE_EXHAUSTED``...) and its
``message``, from the error body documented at
https://cloud.google.com/apis/design/errors#http_mapping::

    {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}
"""

from __future__ import annotations

import json
from typing import Any

from sluiceway.errors import SluicewayError


class SheetsError(SluicewayError):
    """A Sheets request failed; ``status`` is the HTTP status (0 when no answer came back)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "", details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.details = details or []

    def __str__(self) -> str:
        if not self.status:
            return self.message
        return f"{self.status} {self.reason}: {self.message}".replace(" :", ":")


class InvalidRangeError(SheetsError, ValueError):
    """A range that is not A1 notation at all, rejected before any request is made."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"invalid range {text!r}: {problem}", reason="INVALID_ARGUMENT")
        self.range = text


class BadRequestError(SheetsError, ValueError):
    """Google refused the request as malformed (400 ``INVALID_ARGUMENT``), e.g. an unknown sheet."""


class SpreadsheetNotFoundError(SheetsError, LookupError):
    """No spreadsheet has this id (404 ``NOT_FOUND``)."""


class PermissionDeniedError(SheetsError, PermissionError):
    """The credentials may not read or write this spreadsheet (403 ``PERMISSION_DENIED``)."""


class QuotaExceededError(SheetsError):
    """Google's per-minute quota was exhausted (429 ``RESOURCE_EXHAUSTED``) and the retries ran out."""


class SheetsUnavailableError(SheetsError):
    """Google answered 5xx, or could not be reached, and the retries ran out."""


_BY_STATUS: dict[int, type[SheetsError]] = {
    400: BadRequestError,
    403: PermissionDeniedError,
    404: SpreadsheetNotFoundError,
    429: QuotaExceededError,
}


def error_from_response(status: int, body: bytes | str) -> SheetsError:
    """The ``SheetsError`` subclass for an HTTP error answer, keeping Google's status and message."""
    reason, message = "", ""
    details: list[Any] = []
    try:
        doc = json.loads(body)
        error = doc.get("error", {}) if isinstance(doc, dict) else {}
        if isinstance(error, dict):
            reason = str(error.get("status", ""))
            message = str(error.get("message", ""))
            details = error.get("details") or []
    except (ValueError, UnicodeDecodeError):
        pass
    if not message:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        message = text.strip()[:500] or f"HTTP {status}"
    cls = _BY_STATUS.get(status, SheetsUnavailableError if status >= 500 else SheetsError)
    return cls(message, status=status, reason=reason, details=details)
