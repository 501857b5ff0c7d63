"""The WhatsApp emulator's media endpoints: upload (``POST /{phone_number_id}/media``), look-up and download.

Meta's media flow (Cloud API media reference): an upload is a ``multipart/form-data`` POST with
``messaging_product=whatsapp``, ``file`` (with its content type) and ``type`` (the MIME type);
the answer is ``{"id": ...}``. ``GET /{media_id}`` answers ``url``, ``mime_type``, ``sha256``
(hex), ``file_size`` and ``id``; a ``GET`` on that url with the same bearer token returns the bytes.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import itertools

import msgspec

from sluiceway.errors import SluicewayError
from sluiceway.http import Response

#: Where the download urls point, after the emulator's origin (Meta's are on ``lookaside.fbsbx.com``, same path).
DOWNLOAD_PATH = "/whatsapp_business/attachments/"

_parse_bytes = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes


class MediaRefused(SluicewayError, ValueError):
    """A media call the API would refuse with HTTP 400, Graph code 100: ``message`` and ``details`` as in its error."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details


class StoredMedia(msgspec.Struct, frozen=True):
    """One uploaded (or test-provided) file: its bytes, MIME type and hex SHA-256."""

    id: str
    data: bytes
    mime_type: str
    sha256: str


class MediaInfo(msgspec.Struct, frozen=True):
    """The answer to ``GET /{media_id}``."""

    url: str
    mime_type: str
    sha256: str
    file_size: int
    id: str
    messaging_product: str = "whatsapp"


class MediaStore:
    """The emulator's media by id; ids are numeric strings, as Meta's are."""

    def __init__(self) -> None:
        self._by_id: dict[str, StoredMedia] = {}
        self._ids = itertools.count(1_000_000_000_000_001)

    def add(self, data: bytes, mime_type: str) -> StoredMedia:
        """Store ``data`` and return it with its new id (for uploads, and for inbound media a test posts)."""
        if not mime_type or "/" not in mime_type:
            raise ValueError(f"mime_type must be a MIME type like image/jpeg, got {mime_type!r}")
        media = StoredMedia(str(next(self._ids)), data, mime_type, hashlib.sha256(data).hexdigest())
        self._by_id[media.id] = media
        return media

    def get(self, media_id: str) -> StoredMedia:
        media = self._by_id.get(media_id)
        if media is None:
            raise MediaRefused(f"Unsupported get request. Object with ID '{media_id}' does not exist.")
        return media

    def upload(self, content_type: str, body: bytes) -> Response:
        """``POST /{version}/{phone_number_id}/media``: store the form's file, answer its id."""
        try:
            data, mime_type = parse_upload(content_type, body)
            media = self.add(data, mime_type)
        except ValueError as exc:
            raise MediaRefused("(#100) Invalid parameter", str(exc)) from None
        return Response(200, msgspec.json.encode({"id": media.id}), content_type="application/json")

    def describe(self, media_id: str, origin: str, expires: float = float("inf")) -> Response:
        """``GET /{version}/{media_id}``: where to download the file (on ``origin``, until ``expires``), what it is."""
        media = self.get(media_id)
        url = f"{origin}{DOWNLOAD_PATH}?mid={media.id}&exp={expires!r}"
        info = MediaInfo(url, media.mime_type, media.sha256, len(media.data), media.id)
        return Response(200, msgspec.json.encode(info), content_type="application/json")

    def download(self, media_id: str) -> Response:
        """``GET`` on a media url: the file's bytes."""
        media = self.get(media_id)
        return Response(200, media.data, content_type=media.mime_type)


def parse_upload(content_type: str, body: bytes) -> tuple[bytes, str]:
    """The file and its MIME type from an upload's multipart form; ``ValueError`` naming what is missing."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ValueError(f"media upload must be multipart/form-data, got {content_type or 'no content type'!r}")
    form = _parse_bytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: dict[str, tuple[bytes, str]] = {}
    for part in form.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (payload, part.get_content_type() if part.get("content-type") else "")
    for required in ("messaging_product", "file"):
        if required not in fields:
            raise ValueError(f"media upload needs a `{required}` field")
    if fields["messaging_product"][0] != b"whatsapp":
        raise ValueError("messaging_product must be 'whatsapp'")
    data, file_type = fields["file"]
    declared = fields["type"][0].decode("latin-1") if "type" in fields else ""
    mime_type = declared or file_type
    if not mime_type:
        raise ValueError("media upload needs a `type` field or a content type on `file`")
    return data, mime_type
