"""The Graph API's media endpoints: download what a user sent, upload what a bot sends.

Meta's flow (Cloud API media reference): ``GET /{version}/{media_id}`` with the access token
answers a short-lived ``url`` (about five minutes), the ``mime_type``, ``sha256`` and
``file_size``; a ``GET`` on that url, with the same token, returns the bytes. An upload is a
``multipart/form-data`` ``POST /{version}/{phone_number_id}/media`` answering ``{"id": ...}``.

:class:`MediaClient` does both with sluiceway's own :class:`~sluiceway.http.HttpClient`:

* **size**: a file over ``max_bytes`` is refused before its download starts (from the
  ``file_size`` Meta reports) and, should the size be wrong, as soon as more bytes arrive
  (the client's response cap): :class:`MediaTooLarge`;
* **spooling**: a download Meta reports as larger than ``spool_bytes`` is streamed to a file in
  ``spool_dir`` as it arrives (hashed on the way) and returned as a path, so neither the download
  nor a handler holding many keeps it in memory; a smaller one is returned as bytes;
* **checks**: the MIME type Meta reports and the one the download carries must match the one
  the message declared (parameters such as ``; codecs=opus`` aside), and the bytes must match the
  reported SHA-256: :class:`MediaTypeMismatch`, :class:`MediaCorrupt`;
* **failures**: an unknown id is :class:`MediaNotFound`; an expired url is fetched afresh once,
  then :class:`MediaExpired`; timeouts, connection errors, 429 and 5xx are retried
  ``retries`` times with exponential backoff, then :class:`MediaUnavailable`;
* **secrecy**: the download url carries a signature, so it appears in no log line, error or
  ``repr``, and neither does the token (errors name the host at most).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgspec
import yarl

from sluiceway.http import HttpClient, HttpError, HttpResponseTooLarge
from sluiceway.http.client import ClientResponse
from sluiceway.whatsapp.errors import WhatsAppError
from sluiceway.whatsapp.messages import ErrorEnvelope

#: The largest file Meta carries (a document: 100 MB); the default download limit.
DEFAULT_MAX_BYTES: Final = 100 * 1024 * 1024
#: Downloads larger than this go to a file instead of memory.
DEFAULT_SPOOL_BYTES: Final = 5 * 1024 * 1024
#: Meta's upload limits (bytes) by the MIME type's top level; anything else is a document.
#: (A sticker is an ``image/webp`` too, so its smaller limit, 500 KB, is left to the API.)
UPLOAD_LIMITS: Final[Mapping[str, int]] = {
    "image": 5 * 1024 * 1024,
    "audio": 16 * 1024 * 1024,
    "video": 16 * 1024 * 1024,
    "document": 100 * 1024 * 1024,
}
#: Tries after the first for a transient failure, and the first pause (doubling each time).
DEFAULT_RETRIES: Final = 3
DEFAULT_BACKOFF: Final = 0.5

_decode_error = msgspec.json.Decoder(ErrorEnvelope).decode


class MediaError(WhatsAppError):
    """A media download or upload failed; ``media_id`` names the file (never its url)."""

    def __init__(self, message: str, media_id: str = "") -> None:
        super().__init__(message)
        self.media_id = media_id


class MediaNotFound(MediaError):
    """Meta knows no media by that id (never uploaded, or deleted: media expire after 30 days)."""


class MediaExpired(MediaError):
    """The download url expired, and a fresh one did too."""


class MediaUnavailable(MediaError):
    """A transient failure (timeout, connection error, 429, 5xx) that outlasted every retry."""


class MediaTooLarge(MediaError, ValueError):
    """The file is larger than the limit."""


class MediaTypeMismatch(MediaError, ValueError):
    """The file's MIME type is not the one declared."""


class MediaCorrupt(MediaError):
    """The bytes do not match the SHA-256 Meta reported."""


class MediaInfo(msgspec.Struct, frozen=True):
    """``GET /{media_id}``'s answer. ``url`` is secret: short-lived, signed."""

    url: str
    mime_type: str
    id: str
    sha256: str = ""
    file_size: int = -1

    def __repr__(self) -> str:
        return f"MediaInfo(id={self.id!r}, mime_type={self.mime_type!r}, file_size={self.file_size}, url=<hidden>)"


class DownloadedMedia(msgspec.Struct, frozen=True):
    """A downloaded file: in ``data`` when small, else in the file ``path`` (the caller's to delete)."""

    media_id: str
    mime_type: str
    size: int
    sha256: str
    data: bytes | None = None
    path: Path | None = None

    def read_bytes(self) -> bytes:
        """The file's bytes, wherever they are."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def __repr__(self) -> str:
        where = f"path={str(self.path)!r}" if self.path is not None else "in memory"
        return f"DownloadedMedia(id={self.media_id!r}, mime_type={self.mime_type!r}, size={self.size}, {where})"


def base_mime(mime_type: str) -> str:
    """``audio/ogg; codecs=opus`` → ``audio/ogg``: the part two declarations must agree on."""
    return mime_type.split(";", 1)[0].strip().lower()


def media_reference(media: object) -> tuple[str, str]:
    """The media id and declared MIME type ("" if none) of an inbound media object, its dict, or an id."""
    if isinstance(media, str):
        media_id, declared = media, ""
    elif isinstance(media, Mapping):
        media_id, declared = media.get("id", ""), media.get("mime_type", "")
    else:
        media_id, declared = getattr(media, "id", ""), getattr(media, "mime_type", "")
    if not isinstance(media_id, str) or not media_id:
        raise ValueError(f"need a media id, or an inbound media object with an `id`; got {type(media).__name__}")
    return media_id, declared if isinstance(declared, str) else ""


class MediaClient:
    """Downloads and uploads media with one access token (see the module's docstring for the checks).

    Example::

        async with MediaClient(token) as media:
            photo = await media.download(msg.image)       # or a media id
            photo.read_bytes()
            media_id = await media.upload(b"...", "image/png", phone_number_id="1065...")

    ``sleep`` is injectable so retry tests need not wait.
    """

    def __init__(
        self,
        access_token: str,
        *,
        base_url: str = "https://graph.facebook.com",
        api_version: str = "v21.0",
        max_bytes: int = DEFAULT_MAX_BYTES,
        spool_bytes: int = DEFAULT_SPOOL_BYTES,
        spool_dir: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if not access_token:
            raise ValueError("access_token must not be empty")
        if max_bytes < 1 or spool_bytes < 0:
            raise ValueError(f"need max_bytes >= 1 and spool_bytes >= 0, got {max_bytes} and {spool_bytes}")
        if retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError(f"need retries >= 0, backoff >= 0, timeout > 0; got {retries}, {backoff}, {timeout}")
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.max_bytes = max_bytes
        self.spool_bytes = spool_bytes
        self.spool_dir = spool_dir
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._auth = {"Authorization": f"Bearer {access_token}"}
        #: One pool per origin: the Graph API's and the download host's (Meta's is another host).
        self._clients: dict[str, HttpClient] = {}

    def __repr__(self) -> str:
        return f"MediaClient(base_url={self.base_url!r}, max_bytes={self.max_bytes}, access_token=<redacted>)"

    def _client(self, origin: str) -> HttpClient:
        client = self._clients.get(origin)
        if client is None:
            # A response cap one byte over the limit: a body over it fails as it arrives.
            client = self._clients[origin] = HttpClient(
                origin, headers=self._auth, timeout=self.timeout, max_response_bytes=self.max_bytes + 1
            )
        return client

    async def info(self, media_id: str) -> MediaInfo:
        """Where to download ``media_id`` and what it is; :class:`MediaNotFound` for an unknown id."""
        path = f"/{self.api_version}/{yarl.URL.build(path=media_id).raw_path}"
        response = await self._with_retries(media_id, lambda: self._client(self.base_url).get(path))
        if response.status == 200:
            try:
                return msgspec.json.decode(response.body, type=MediaInfo)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                raise MediaError(f"unreadable answer for media {media_id}: {error}", media_id) from None
        if response.status == 404 or _graph_code(response) == 100:
            raise MediaNotFound(
                f"media {media_id} does not exist (or has expired): {_graph_message(response)}", media_id
            )
        raise MediaError(f"media {media_id}: HTTP {response.status}: {_graph_message(response)}", media_id)

    async def download(self, media: object, *, expected_mime_type: str | None = None) -> DownloadedMedia:
        """Download ``media`` (an inbound media object such as ``msg.image``, its dict, or a media id).

        ``expected_mime_type`` (else the one the inbound object declares) must match what Meta
        reports. Returns the bytes, in a file above ``spool_bytes``.
        """
        media_id, declared = media_reference(media)
        declared = expected_mime_type or declared
        for fresh_url in (True, False):
            info = await self.info(media_id)
            self._check(info, declared)
            url = yarl.URL(info.url)
            origin, target = str(url.origin()), url.raw_path_qs
            client = self._client(origin)
            if info.file_size > self.spool_bytes:
                outcome = await self._download_to_file(info, client, target)
                if isinstance(outcome, DownloadedMedia):
                    return outcome
                response = outcome
            else:
                response = await self._with_retries(media_id, functools.partial(client.get, target))
                if response.status == 200:
                    return await self._keep(info, response)
            if response.status not in (401, 403, 404, 410) or not fresh_url:
                break
            # The url expired between the two calls (or was used too late): ask for a fresh one, once.
        if response.status in (401, 403, 404, 410):
            raise MediaExpired(
                f"the download url for media {media_id} expired (HTTP {response.status}) twice", media_id
            )
        raise MediaError(f"downloading media {media_id} failed: HTTP {response.status}", media_id)

    def _check(self, info: MediaInfo, declared: str) -> None:
        if declared and base_mime(info.mime_type) != base_mime(declared):
            raise MediaTypeMismatch(
                f"media {info.id} is {info.mime_type!r}, but the message declared {declared!r}", info.id
            )
        if info.file_size > self.max_bytes:
            raise MediaTooLarge(
                f"media {info.id} is {info.file_size} bytes, over the limit of {self.max_bytes} (media_max_bytes)",
                info.id,
            )

    async def _keep(self, info: MediaInfo, response: ClientResponse) -> DownloadedMedia:
        body = response.body
        if len(body) > self.max_bytes:
            raise MediaTooLarge(f"media {info.id} is over the limit of {self.max_bytes} bytes", info.id)
        self._check_served(info, response)
        digest = hashlib.sha256(body).digest()
        self._check_digest(info, digest)
        kept = DownloadedMedia(info.id, info.mime_type, len(body), digest.hex())
        if len(body) <= self.spool_bytes:
            return msgspec.structs.replace(kept, data=body)
        path = await asyncio.to_thread(self._spool, info.id, body)
        return msgspec.structs.replace(kept, path=path)

    @staticmethod
    def _check_served(info: MediaInfo, response: ClientResponse) -> None:
        served = response.headers.get("content-type", "")
        if served and base_mime(served) not in (base_mime(info.mime_type), "application/octet-stream"):
            raise MediaTypeMismatch(f"media {info.id} was served as {served!r}, not {info.mime_type!r}", info.id)

    @staticmethod
    def _check_digest(info: MediaInfo, digest: bytes) -> None:
        if info.sha256 and info.sha256 not in (digest.hex(), base64.b64encode(digest).decode()):
            raise MediaCorrupt(f"media {info.id}: the bytes do not match the reported SHA-256", info.id)

    async def _download_to_file(
        self, info: MediaInfo, client: HttpClient, target: str
    ) -> DownloadedMedia | ClientResponse:
        """Stream the download into a new spool file; the answer itself if it is not a 200."""
        fd, name = tempfile.mkstemp(prefix=f"sluiceway-media-{info.id}-", dir=self.spool_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as file:
                sink = _HashingFile(file)

                async def fetch() -> ClientResponse:
                    # A retry starts the file afresh.
                    file.seek(0)
                    file.truncate()
                    sink.restart()
                    return await client.get(target, body_to=sink)

                response = await self._with_retries(info.id, fetch)
            if response.status != 200:
                path.unlink()  # noqa: ASYNC240 - one unlink of our own new file: cheaper than a thread hop
                return response
            self._check_served(info, response)
            digest = sink.hash.digest()
            self._check_digest(info, digest)
            return DownloadedMedia(info.id, info.mime_type, sink.size, digest.hex(), path=path)
        except BaseException:
            path.unlink(missing_ok=True)  # noqa: ASYNC240 - as above, and it must run even when cancelled
            raise

    def _spool(self, media_id: str, body: bytes) -> Path:
        fd, name = tempfile.mkstemp(prefix=f"sluiceway-media-{media_id}-", dir=self.spool_dir)
        with os.fdopen(fd, "wb") as file:
            file.write(body)
        return Path(name)

    async def upload(
        self, data_or_path: bytes | str | os.PathLike[str], mime_type: str, *, phone_number_id: str
    ) -> str:
        """Upload a file (its bytes, or a path to read) as ``mime_type`` for ``phone_number_id``; its media id.

        ``ValueError`` for an empty file, a malformed MIME type or one over Meta's limit for its kind.
        """
        if not phone_number_id:
            raise ValueError("phone_number_id must not be empty")
        if "/" not in mime_type or any(c in mime_type for c in '\r\n"'):
            raise ValueError(f"mime_type must be a MIME type like image/jpeg, got {mime_type!r}")
        if isinstance(data_or_path, bytes):
            data, filename = data_or_path, "upload"
        else:
            data, filename = await asyncio.to_thread(Path(data_or_path).read_bytes), Path(data_or_path).name
        limit = UPLOAD_LIMITS.get(mime_type.split("/", 1)[0], UPLOAD_LIMITS["document"])
        if not data:
            raise ValueError("cannot upload an empty file")
        if len(data) > limit:
            raise ValueError(f"a {mime_type} upload must be at most {limit} bytes, got {len(data)}")
        body, content_type = _multipart(data, mime_type, filename)
        path = f"/{self.api_version}/{phone_number_id}/media"
        client = self._client(self.base_url)
        # A POST that timed out may have been stored: retried anyway, since an upload has no effect
        # beyond a spare copy (Meta deletes unused media after 30 days).
        response = await self._with_retries("upload", lambda: client.post(path, body, content_type=content_type))
        if response.status != 200:
            raise MediaError(f"upload of {len(data)} bytes ({mime_type}) failed: {_graph_message(response)}")
        try:
            media_id = msgspec.json.decode(response.body, type=dict[str, str])["id"]
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
            raise MediaError(f"unreadable upload answer: {response.body[:200]!r}") from None
        return media_id

    async def _with_retries(self, media_id: str, call: Callable[[], Awaitable[ClientResponse]]) -> ClientResponse:
        """``call()``, again after a pause while it fails transiently; the last answer, or MediaUnavailable."""
        for attempt in range(self.retries + 1):
            try:
                response = await call()
            except HttpResponseTooLarge:
                # The client's response cap (see ``_client``): more bytes than Meta said; not transient.
                raise MediaTooLarge(f"media {media_id} is over the limit of {self.max_bytes} bytes", media_id) from None
            except HttpError as error:
                failure = f"{type(error).__name__}: {error}"
            else:
                if response.status != 429 and response.status < 500:
                    return response
                failure = f"HTTP {response.status}"
            if attempt < self.retries:
                await self._sleep(self.backoff * 2**attempt)
        raise MediaUnavailable(f"media {media_id}: {failure}, {self.retries + 1} tries", media_id)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> MediaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _HashingFile:
    """A response body sink: writes to ``file`` and hashes and counts on the way."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.hash = hashlib.sha256()
        self.size = 0

    def restart(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes, /) -> None:
        self._file.write(chunk)
        self.hash.update(chunk)
        self.size += len(chunk)


def _graph_code(response: ClientResponse) -> int | None:
    try:
        return _decode_error(response.body).error.code
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _graph_message(response: ClientResponse) -> str:
    try:
        error = _decode_error(response.body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return f"HTTP {response.status}"
    return f"{error.message} (code {error.code})"


def _multipart(data: bytes, mime_type: str, filename: str) -> tuple[bytes, str]:
    """The upload's form: ``messaging_product``, ``type`` and ``file``, as Meta's reference shows it."""
    boundary = uuid.uuid4().hex
    safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="messaging_product"\r\n\r\nwhatsapp\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\n{mime_type}\r\n'.encode(),
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
            f"Content-Type: {mime_type}\r\n\r\n"
        ).encode(),
        data,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
