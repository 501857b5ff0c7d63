"""A worker's own line to the Graph API: media downloads and uploads, read receipts, ``ctx.send_now``.

Replies go through the supervisor's BatchSender (one set of rate limits for every worker), but
a handler that reads a tenant's photo, uploads a file or shows "typing..." needs an answer now,
inside the handler: those calls go from the worker itself, with the access token.

How the token reaches the worker: the supervisor's settings for workers (``worker_json``) leave
every secret out, because they travel in an environment variable any code in the worker may
print. The tokens go in a separate variable, ``SLUICEWAY_WORKER_GRAPH``, set by the runtime just
before the engine spawns its workers (environment variables of a process are readable only by
its own user, who could read the supervisor's memory anyway); each worker reads it once at setup
and removes it from its environment, so a handler's subprocess or a dump of ``os.environ`` does
not carry it. It is never logged, and :class:`WorkerGraph`'s ``repr`` hides it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from sluiceway.app.settings import Settings
from sluiceway.whatsapp.cloud_api import SendResult, WhatsAppCloudTransport
from sluiceway.whatsapp.media import MediaClient
from sluiceway.whatsapp.messages import OutboundMessage, ReadReceipt

#: The environment variable carrying the tokens from the runtime to its workers (see the module docstring).
GRAPH_ENV = "SLUICEWAY_WORKER_GRAPH"


class GraphTokens(msgspec.Struct, frozen=True):
    """The access token of each business number ("" keys the default one)."""

    tokens: dict[str, str] = {}


def graph_tokens(settings: Settings) -> GraphTokens:
    """Every token the settings hold: the default one under "", and each number's own."""
    tokens = {number: secret.reveal() for number, secret in settings.whatsapp_number_tokens.items()}
    if settings.whatsapp_access_token is not None:
        tokens[""] = settings.whatsapp_access_token.reveal()
    return GraphTokens(tokens)


def export_tokens(settings: Settings) -> None:
    """Put the tokens where the workers about to be spawned find them (the runtime calls this)."""
    os.environ[GRAPH_ENV] = msgspec.json.encode(graph_tokens(settings)).decode()


def take_tokens() -> GraphTokens:
    """The tokens the runtime exported, removed from this process's environment (a worker calls this once)."""
    raw = os.environ.pop(GRAPH_ENV, None)
    return GraphTokens() if raw is None else msgspec.json.decode(raw, type=GraphTokens)


class WorkerGraph:
    """One worker's media clients and read-receipt/send transports, one per business number.

    ``number`` "" (or one without its own token) uses the default token.
    """

    def __init__(self, settings: Settings, tokens: GraphTokens | Mapping[str, str]) -> None:
        self._settings = settings
        self._tokens = dict(tokens.tokens if isinstance(tokens, GraphTokens) else tokens)
        self._media: dict[str, MediaClient] = {}
        self._transports: dict[str, WhatsAppCloudTransport] = {}

    def __repr__(self) -> str:
        return f"WorkerGraph(numbers={sorted(self._tokens)}, tokens=<redacted>)"

    def _number(self, number: str) -> str:
        return number or self._settings.whatsapp_phone_number_id or ""

    def _token(self, number: str) -> str:
        token = self._tokens.get(number) or self._tokens.get("")
        if not token:
            raise RuntimeError(
                "the worker has no WhatsApp access token: set WHATSAPP_ACCESS_TOKEN (or "
                f"WHATSAPP_ACCESS_TOKEN_{number or '<phone number id>'}) to use media, mark_read or send_now"
            )
        return token

    def media(self, number: str = "") -> MediaClient:
        """The media client with ``number``'s token."""
        number = self._number(number)
        client = self._media.get(number)
        if client is None:
            settings = self._settings
            client = self._media[number] = MediaClient(
                self._token(number),
                base_url=settings.whatsapp_base_url,
                api_version=settings.whatsapp_api_version,
                max_bytes=settings.media_max_bytes,
                spool_bytes=settings.media_spool_bytes,
            )
        return client

    def transport(self, number: str = "") -> WhatsAppCloudTransport:
        """A transport sending from ``number`` (for read receipts and ``send_now``)."""
        number = self._number(number)
        if not number:
            raise RuntimeError("no business number: set WHATSAPP_PHONE_NUMBER_ID")
        transport = self._transports.get(number)
        if transport is None:
            settings = self._settings
            transport = self._transports[number] = WhatsAppCloudTransport(
                number,
                self._token(number),
                api_version=settings.whatsapp_api_version,
                base_url=settings.whatsapp_base_url,
                max_connections=4,
            )
        return transport

    async def mark_read(self, number: str, message_id: str, *, typing: bool) -> None:
        await self.transport(number).mark_read(ReadReceipt.of(message_id, typing=typing))

    async def send_now(self, number: str, message: OutboundMessage) -> SendResult:
        return await self.transport(number).send(message)

    async def aclose(self) -> None:
        for client in self._media.values():
            await client.aclose()
        for transport in self._transports.values():
            await transport.aclose()
        self._media.clear()
        self._transports.clear()
