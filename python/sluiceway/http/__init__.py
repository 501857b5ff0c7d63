"""HTTP plumbing shared by the WhatsApp transport, the emulators' webhooks and the benchmarks."""

from sluiceway.http.client import HttpClient as HttpClient
from sluiceway.http.client import HttpConnectionError as HttpConnectionError
from sluiceway.http.client import HttpError as HttpError
from sluiceway.http.client import HttpTimeout as HttpTimeout
from sluiceway.http.client import Response as Response

__all__ = ["HttpClient", "HttpConnectionError", "HttpError", "HttpTimeout", "Response"]
