"""Getting one message to the Cloud API: the ``Transport`` contract and its keep-alive HTTP/1.1 implementation."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Protocol

import msgspec

from sluiceway.http import HttpClient, HttpError
from sluiceway.whatsapp.errors import SendError
from sluiceway.whatsapp.messages import ErrorEnvelope, OutboundMessage, ReadReceipt, SendResponse

#: Graph API version used when none is given (Meta keeps each version for two years).
DEFAULT_API_VERSION = "v23.0"
#: Where the Cloud API lives.
DEFAULT_BASE_URL = "https://graph.facebook.com"
#: Seconds from writing a send to the API's answer; past it the send is uncertain (it may have been taken).
DEFAULT_TIMEOUT = 10.0
#: Seconds a send may wait for a connection (a free one, or a new one) before it fails unsent (safe to retry).
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Keep-alive connections kept open to the API; sends beyond this wait for a free one.
DEFAULT_MAX_CONNECTIONS = 100
#: Environment variables ``from_env`` reads.
ENV_ACCESS_TOKEN = "WHATSAPP_ACCESS_TOKEN"
ENV_PHONE_NUMBER_ID = "WHATSAPP_PHONE_NUMBER_ID"

_encode = msgspec.json.Encoder().encode
_decode_ok = msgspec.json.Decoder(SendResponse).decode
_decode_error = msgspec.json.Decoder(ErrorEnvelope).decode


class SendResult(msgspec.Struct, frozen=True):
    """A message the provider accepted: ``message_id`` is its ``wamid``."""

    message_id: str
    wa_id: str | None = None


class Transport(Protocol):
    """Anything that sends one message and returns its provider id, or raises ``SendError``."""

    async def send(self, message: OutboundMessage) -> SendResult: ...


class WhatsAppCloudTransport:
    """Sends messages through ``POST /{api_version}/{phone_number_id}/messages`` over keep-alive HTTP/1.1.

    One :class:`~sluiceway.http.HttpClient` (a lean keep-alive HTTP/1.1 pool, about a
    third of an aiohttp POST's CPU) serves every send, its headers fixed once; the body
    is the message's msgspec encoding; failed
    calls raise :class:`SendError` carrying the envelope's ``error.code`` and classified
    by :func:`~sluiceway.whatsapp.errors.classify`. The access token goes into the
    ``Authorization`` header and nowhere else: not in ``repr``, logs or exceptions.

    Example::

        async with WhatsAppCloudTransport.from_env() as transport:
            result = await transport.send(OutboundMessage.of_text("15551234567", "hi"))
            result.message_id    # "wamid.HBgL..."

    Failures before the request is written (no free connection within ``connect_timeout``,
    connecting failed) are plain transient ``SendError``: the provider never saw them. A send
    written but not answered within ``timeout`` (or whose connection broke before the answer)
    may have been taken: its ``SendError`` is ``uncertain``, and the sender does not send it
    again (the Cloud API offers no idempotency key that would make a second send safe).
    """

    def __init__(
        self,
        phone_number_id: str,
        access_token: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if not phone_number_id:
            raise ValueError("phone_number_id must not be empty")
        if not access_token:
            raise ValueError("access_token must not be empty")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive, got {connect_timeout}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.phone_number_id = phone_number_id
        self.api_version = api_version
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/{api_version}/{phone_number_id}/messages"
        self._path = f"/{api_version}/{phone_number_id}/messages"
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self._token = access_token
        self._client: HttpClient | None = None

    @classmethod
    def from_env(cls, **kwargs: object) -> WhatsAppCloudTransport:
        """Build from ``WHATSAPP_PHONE_NUMBER_ID`` and ``WHATSAPP_ACCESS_TOKEN``; ``ValueError`` names a missing one."""
        missing = [name for name in (ENV_PHONE_NUMBER_ID, ENV_ACCESS_TOKEN) if not os.environ.get(name)]
        if missing:
            raise ValueError(f"environment variable(s) not set: {', '.join(missing)}")
        return cls(os.environ[ENV_PHONE_NUMBER_ID], os.environ[ENV_ACCESS_TOKEN], **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"WhatsAppCloudTransport(phone_number_id={self.phone_number_id!r}, "
            f"url={self.url!r}, access_token=<redacted>)"
        )

    def _open(self) -> HttpClient:
        if self._client is None:
            # No Accept-Encoding or User-Agent: the API answers small JSON either way.
            headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
            self._client = HttpClient(
                self.base_url,
                headers=headers,
                max_connections=self.max_connections,
                timeout=self.timeout,
                connect_timeout=self.connect_timeout,
            )
        return self._client

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send ``message``; its ``wamid`` on success, ``SendError`` on any failure."""
        status, body = await self._post(_encode(message))
        try:
            ok = _decode_ok(body)
            return SendResult(ok.messages[0].id, ok.contacts[0].wa_id if ok.contacts else None)
        except (msgspec.DecodeError, msgspec.ValidationError, IndexError):
            raise SendError(f"unreadable success response: {body[:200]!r}", http_status=status) from None

    async def mark_read(self, receipt: ReadReceipt) -> None:
        """Mark an inbound message read (with a typing indicator if ``receipt`` asks); ``SendError`` as ``send``."""
        await self._post(_encode(receipt))

    async def _post(self, request_body: bytes) -> tuple[int, bytes]:
        """POST to the messages endpoint; the 2xx status and body, else ``SendError`` from the error envelope."""
        client = self._client or self._open()
        try:
            response = await client.request("POST", self._path, request_body)
        except HttpError as exc:  # its messages name the origin and the failure, never a header
            raise SendError(f"request failed: {type(exc).__name__}: {exc}", uncertain=exc.sent) from None
        status, body = response.status, response.body
        if 200 <= status < 300:
            return status, body
        try:
            err = _decode_error(body).error
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise SendError(f"HTTP {status} without an error envelope: {body[:200]!r}", http_status=status) from None
        details = err.error_data.details if err.error_data else None
        raise SendError(err.message, code=err.code, http_status=status, details=details, fbtrace_id=err.fbtrace_id)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> WhatsAppCloudTransport:
        self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
