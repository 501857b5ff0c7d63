"""The Rust core's data structures under their public names.

See each class's docstring (written in Rust, shown by ``help()``) and
``sluiceway/_core.pyi`` for the full contract.
"""

from sluiceway._core import ByteLRU as ByteLRU
from sluiceway._core import KeyedLimiter as KeyedLimiter
from sluiceway._core import PriorityQueue as PriorityQueue
from sluiceway._core import QueueEmpty as QueueEmpty
from sluiceway._core import QueueFull as QueueFull
from sluiceway._core import RateLimiter as RateLimiter
from sluiceway._core import TokenBucket as TokenBucket
from sluiceway._core import WindowLimiter as WindowLimiter

__all__ = [
    "ByteLRU",
    "KeyedLimiter",
    "PriorityQueue",
    "QueueEmpty",
    "QueueFull",
    "RateLimiter",
    "TokenBucket",
    "WindowLimiter",
]
