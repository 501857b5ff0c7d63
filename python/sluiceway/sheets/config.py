"""Configuration of the Sheets cache and client: frozen, validated msgspec Structs."""

from __future__ import annotations

import msgspec

from sluiceway._validation import integer_at_least, non_negative, positive, require

#: Google's documented Sheets quotas (https://developers.google.com/sheets/api/limits):
#: 300 read and 300 write requests per minute per project, and 60 of each per minute
#: per user per project. A bot authenticates as one service account, i.e. one user,
#: so the per-user figure is the one it meets first.
GOOGLE_READS_PER_MINUTE_PER_USER = 60
GOOGLE_WRITES_PER_MINUTE_PER_USER = 60


class CacheConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How :class:`~sluiceway.SheetsCache` keeps values.

    Example::

        CacheConfig(default_ttl=600.0, max_memory_bytes=64 * 2**20)
    """

    #: Seconds a fetched range stays fresh.
    default_ttl: float = 3600.0
    #: The exact budget for encoded values, keys and tags (``ByteLRU`` evicts past it).
    max_memory_bytes: int = 300 * 2**20
    #: Encoded values larger than this are stored lz4-compressed.
    compression_threshold_bytes: int = 10 * 2**10
    #: Serve an expired value for ``stale_while_revalidate`` seconds while it is refreshed.
    allow_stale_reads: bool = True
    #: Length of the stale window after ``default_ttl`` (or the per-call ``ttl``).
    stale_while_revalidate: float = 300.0

    def __post_init__(self) -> None:
        positive("default_ttl", self.default_ttl)
        require(self.max_memory_bytes > 0, "max_memory_bytes", self.max_memory_bytes, "a positive number of bytes")
        require(
            self.compression_threshold_bytes >= 0,
            "compression_threshold_bytes",
            self.compression_threshold_bytes,
            "zero or a positive number of bytes",
        )
        non_negative("stale_while_revalidate", self.stale_while_revalidate)


class SheetsClientConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How :class:`~sluiceway.SheetsClient` talks to Google.

    Example::

        SheetsClientConfig(read_requests_per_minute=300, coalesce_window=0.01)
    """

    #: Client-side read budget; defaults to Google's per-user quota.
    read_requests_per_minute: int = GOOGLE_READS_PER_MINUTE_PER_USER
    #: Client-side write budget; defaults to Google's per-user quota.
    write_requests_per_minute: int = GOOGLE_WRITES_PER_MINUTE_PER_USER
    #: Misses on one spreadsheet arriving within this many seconds share one ``values.batchGet``.
    coalesce_window: float = 0.005
    #: A batch is sent at once when it reaches this many ranges (keeps the URL short).
    max_batch_ranges: int = 100
    #: Retries after a 429 or 5xx answer before the error reaches the caller.
    max_retries: int = 5
    #: First backoff delay in seconds; it doubles each retry (Google: 1 s, 2 s, 4 s...).
    initial_backoff: float = 1.0
    #: Cap of a single backoff delay (Google recommends 32 or 64 seconds).
    max_backoff: float = 32.0
    #: Threads running the blocking google-api-python-client, each with its own ``httplib2.Http``.
    max_workers: int = 8
    #: Socket timeout of each HTTP request, in seconds.
    request_timeout: float = 60.0

    def __post_init__(self) -> None:
        for field in ("read_requests_per_minute", "write_requests_per_minute", "max_batch_ranges", "max_workers"):
            integer_at_least(field, getattr(self, field), 1)
        require(self.max_retries >= 0, "max_retries", self.max_retries, "zero or a positive integer")
        non_negative("coalesce_window", self.coalesce_window)
        positive("initial_backoff", self.initial_backoff)
        positive("max_backoff", self.max_backoff)
        positive("request_timeout", self.request_timeout)
