"""Getting one message to the Cloud API: the ``Transport`` contract and its aiohttp implementation."""

from __future__ import annotations

import asyncio
import os
from types import TracebackType
from typing import Protocol

import aiohttp
import msgspec
import yarl

from sluiceway.whatsapp.errors import SendError
from sluiceway.whatsapp.messages import ErrorEnvelope, OutboundMessage, SendResponse

#: Graph API version used when none is given (Meta keeps each version for two years).
DEFAULT_API_VERSION = "v23.0"
#: Where the Cloud API lives.
DEFAULT_BASE_URL = "https://graph.facebook.com"
#: Seconds a whole send may take (connect, write, wait, read) before it counts as a transient failure.
DEFAULT_TIMEOUT = 10.0
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
    """Sends messages through ``POST /{api_version}/{phone_number_id}/messages`` on aiohttp.

    One pooled ``ClientSession`` with keep-alive connections serves every send; failed
    calls raise :class:`SendError` carrying the envelope's ``error.code`` and classified
    by :func:`~sluiceway.whatsapp.errors.classify`. The access token goes into the
    ``Authorization`` header and nowhere else: not in ``repr``, logs or exceptions.

    Example::

        async with WhatsAppCloudTransport.from_env() as transport:
            result = await transport.send(OutboundMessage.of_text("15551234567", "hi"))
            result.message_id    # "wamid.HBgL..."

    Warning: aiohttp's own exceptions are replaced by ``SendError`` without chaining,
    so their request details (which include headers) cannot leak the token; the
    original exception's type and text are kept in the message.
    """

    def __init__(
        self,
        phone_number_id: str,
        access_token: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if not phone_number_id:
            raise ValueError("phone_number_id must not be empty")
        if not access_token:
            raise ValueError("access_token must not be empty")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.phone_number_id = phone_number_id
        self.api_version = api_version
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/{api_version}/{phone_number_id}/messages"
        self._url = yarl.URL(self.url)  # parsed once, not on every send
        self.timeout = timeout
        self.max_connections = max_connections
        self._headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_env(cls, **kwargs: object) -> WhatsAppCloudTransport:
        """Build from ``WHATSAPP_PHONE_NUMBER_ID`` and ``WHATSAPP_ACCESS_TOKEN``; ``ValueError`` names a missing one."""
        missing = [name for name in (ENV_PHONE_NUMBER_ID, ENV_ACCESS_TOKEN) if not os.environ.get(name)]
        if missing:
            raise ValueError(f"environment variable(s) not set: {', '.join(missing)}")
        return cls(os.environ[ENV_PHONE_NUMBER_ID], os.environ[ENV_ACCESS_TOKEN], **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"WhatsAppCloudTransport(phone_number_id={self.phone_number_id!r}, url={self.url!r}, access_token=<redacted>)"

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30.0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers=self._headers,
                # The API answers small JSON: no compression to negotiate, no user agent to add.
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                auto_decompress=False,
            )
        return self._session

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send ``message``; its ``wamid`` on success, ``SendError`` on any failure."""
        session = self._open()
        try:
            async with session.post(self._url, data=_encode(message)) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # `from None`: aiohttp errors carry request_info with our headers (the token).
            raise SendError(f"request failed: {type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            try:
                ok = _decode_ok(body)
                return SendResult(ok.messages[0].id, ok.contacts[0].wa_id if ok.contacts else None)
            except (msgspec.DecodeError, msgspec.ValidationError, IndexError):
                raise SendError(f"unreadable success response: {body[:200]!r}", http_status=status) from None
        try:
            err = _decode_error(body).error
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise SendError(f"HTTP {status} without an error envelope: {body[:200]!r}", http_status=status) from None
        details = err.error_data.details if err.error_data else None
        raise SendError(err.message, code=err.code, http_status=status, details=details, fbtrace_id=err.fbtrace_id)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> WhatsAppCloudTransport:
        self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
