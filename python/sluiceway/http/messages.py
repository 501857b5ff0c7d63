"""``Request`` and ``Response`` of ``HttpServer``, and how a response is checked and encoded.

A response is checked when it is built (``ValueError`` naming the problem) and again when it is
written, since a handler may change one after building it: a header that could end a line early
would split one response into two (response splitting), so none is ever written.
"""

from __future__ import annotations

import email.utils
import http
import re
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl

_PHRASES: Final = {status.value: status.phrase.encode("latin-1") for status in http.HTTPStatus}
#: The reason phrase of every final status a response may have (200-599); 1xx would break the framing.
_REASONS: Final = {status: _PHRASES.get(status, b"Unknown") for status in range(200, 600)}
#: A header name is an RFC 9110 token; a value may hold anything but the bytes that end a line.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_BREAK: Final = re.compile(r"[\r\n\x00]")
#: Headers the server writes itself: a handler setting them could frame the response two ways.
_SERVER_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "content-type", "connection", "date"})


class Request:
    """One request: ``method``, ``path`` (percent-encoded, no query), ``query_string``, ``headers``, ``body``.

    Header names are lower-cased; a header sent more than once has its values joined with ", "
    (RFC 9110 5.3), so a second Host or signature header cannot silently replace the first.

    ``body_too_large`` is true when the body exceeded the server's ``max_body_bytes``: it was
    not read (``body`` is empty) and the connection closes after the response.
    """

    __slots__ = ("body", "body_too_large", "headers", "method", "path", "query_string")

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: dict[str, str],
        body: bytes,
        body_too_large: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.body_too_large = body_too_large

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters (the last value of a repeated name wins)."""
        return dict(parse_qsl(self.query_string, keep_blank_values=True))


class Response:
    """What a handler answers: ``status``, ``body`` and its ``content_type``, and extra ``headers``.

    ``ValueError`` if ``status`` is not a final status (200-599), or a header name is not a token,
    or a value (``content_type`` included) holds CR, LF or NUL, or a header is one the server
    writes itself (Content-Length, Transfer-Encoding, Content-Type, Connection, Date).
    """

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if status not in _REASONS:
            _check_status(status)
        if content_type not in _CHECKED_TYPES:
            _check_content_type(content_type)
        if headers:
            _header_lines(headers)
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers

    @classmethod
    def text(cls, status: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
        """A ``text/plain`` response."""
        return cls(status, text.encode(), headers=headers)


def _check_status(status: int) -> None:
    if type(status) is not int or status not in _REASONS:
        raise ValueError(f"response status must be an int from 200 to 599, got {status!r}")


def _check_value(name: str, value: str) -> None:
    if _LINE_BREAK.search(value):
        raise ValueError(f"response header {name!r} has a CR, LF or NUL in its value")


#: Content types already checked; a handler uses a handful, so checking each once is enough.
_CHECKED_TYPES: set[str] = set()


def _check_content_type(content_type: str) -> None:
    _check_value("Content-Type", content_type)
    content_type.encode("latin-1")  # UnicodeEncodeError (a ValueError) if it cannot be sent
    if len(_CHECKED_TYPES) < 256:
        _CHECKED_TYPES.add(content_type)


def _header_lines(headers: Mapping[str, str]) -> bytes:
    """``Name: value\\r\\n`` lines; ``ValueError`` for anything that could split the response."""
    lines = []
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"response header name {name!r} is not an HTTP token")
        if name.lower() in _SERVER_HEADERS:
            raise ValueError(f"response header {name!r} is written by the server")
        _check_value(name, value)
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


def encode_response(response: Response, keep_alive: bool, date: bytes, head_only: bool) -> bytes:
    """The whole response in one buffer; HEAD keeps Content-Length but gets no body.

    The checks repeat the constructor's, since a handler may change a response after building it.
    """
    status, content_type = response.status, response.content_type
    reason = _REASONS.get(status)
    if reason is None:
        _check_status(status)
    if content_type not in _CHECKED_TYPES:
        _check_content_type(content_type)
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s%s\r\n%s" % (
        status,
        reason,
        content_type.encode("latin-1"),
        len(response.body),
        date,
        b"" if keep_alive else b"Connection: close\r\n",
        _header_lines(response.headers) if response.headers else b"",
        b"" if head_only else response.body,
    )


#: What a handler that failed, or returned something unwritable, answers.
INTERNAL_ERROR: Final = Response.text(500, "internal server error")


class HttpDate:
    """The ``Date`` header value, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"Date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._line
