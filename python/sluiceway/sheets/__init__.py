"""The Google Sheets read cache and client.

:class:`SheetsCache` keeps ranges under an exact memory budget with single-flight,
stale-while-revalidate and A1-overlap invalidation; :class:`SheetsClient` reads
through it over google-api-python-client, coalescing misses into ``values.batchGet``
and keeping traffic under Google's per-minute quotas.

``SheetsClient`` is imported on first use: it brings in the Google API client and httplib2
(~170 ms), which a worker that only uses the cache (or no Sheets at all) never needs.
"""

from typing import TYPE_CHECKING

from sluiceway.sheets.cache import CacheResult as CacheResult
from sluiceway.sheets.cache import SheetsCache as SheetsCache
from sluiceway.sheets.config import CacheConfig as CacheConfig
from sluiceway.sheets.config import SheetsClientConfig as SheetsClientConfig
from sluiceway.sheets.errors import BadRequestError as BadRequestError
from sluiceway.sheets.errors import InvalidRangeError as InvalidRangeError
from sluiceway.sheets.errors import PermissionDeniedError as PermissionDeniedError
from sluiceway.sheets.errors import QuotaExceededError as QuotaExceededError
from sluiceway.sheets.errors import SheetsError as SheetsError
from sluiceway.sheets.errors import SheetsUnavailableError as SheetsUnavailableError
from sluiceway.sheets.errors import SpreadsheetNotFoundError as SpreadsheetNotFoundError
from sluiceway.sheets.invalidation import EngineInvalidation as EngineInvalidation
from sluiceway.sheets.invalidation import Invalidation as Invalidation
from sluiceway.sheets.invalidation import InvalidationChannel as InvalidationChannel
from sluiceway.sheets.invalidation import LocalInvalidation as LocalInvalidation
from sluiceway.sheets.ranges import A1Range as A1Range
from sluiceway.sheets.ranges import parse_a1 as parse_a1

if TYPE_CHECKING:
    from sluiceway.sheets.client import SheetsClient as SheetsClient
else:
    from sluiceway._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {"SheetsClient": "sluiceway.sheets.client"})

__all__ = [
    "A1Range",
    "BadRequestError",
    "CacheConfig",
    "CacheResult",
    "EngineInvalidation",
    "InvalidRangeError",
    "Invalidation",
    "InvalidationChannel",
    "LocalInvalidation",
    "PermissionDeniedError",
    "QuotaExceededError",
    "SheetsCache",
    "SheetsClient",
    "SheetsClientConfig",
    "SheetsError",
    "SheetsUnavailableError",
    "SpreadsheetNotFoundError",
    "parse_a1",
]
