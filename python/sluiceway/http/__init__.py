"""Lean HTTP/1.1 on asyncio protocols and httptools: the client the WhatsApp transport and the
emulators' webhooks use, and the server the webhook ingress runs on."""

from sluiceway.http.client import BodySink as BodySink
from sluiceway.http.client import ClientResponse as ClientResponse
from sluiceway.http.client import HttpClient as HttpClient
from sluiceway.http.client import HttpConnectionError as HttpConnectionError
from sluiceway.http.client import HttpError as HttpError
from sluiceway.http.client import HttpPoolTimeout as HttpPoolTimeout
from sluiceway.http.client import HttpResponseTooLarge as HttpResponseTooLarge
from sluiceway.http.client import HttpTimeout as HttpTimeout
from sluiceway.http.server import HttpServer as HttpServer
from sluiceway.http.server import Request as Request
from sluiceway.http.server import Response as Response

__all__ = [
    "BodySink",
    "ClientResponse",
    "HttpClient",
    "HttpConnectionError",
    "HttpError",
    "HttpPoolTimeout",
    "HttpResponseTooLarge",
    "HttpServer",
    "HttpTimeout",
    "Request",
    "Response",
]
