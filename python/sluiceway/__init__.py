"""sluiceway: move chat messages fast and safely."""

from sluiceway._core import __version__ as __version__
from sluiceway.sheets import CacheConfig as CacheConfig
from sluiceway.sheets import CacheResult as CacheResult
from sluiceway.sheets import SheetsCache as SheetsCache
from sluiceway.sheets import SheetsClient as SheetsClient
from sluiceway.sheets import SheetsClientConfig as SheetsClientConfig
from sluiceway.sheets import SheetsError as SheetsError

__all__ = [
    "CacheConfig",
    "CacheResult",
    "SheetsCache",
    "SheetsClient",
    "SheetsClientConfig",
    "SheetsError",
    "__version__",
]
