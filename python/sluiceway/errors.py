"""sluiceway's exceptions: one root, `SluicewayError`, defined in the Rust core.

Kept in a module of their own so that every subpackage can import them without
import loops.
"""

from sluiceway._core import QueueEmpty as QueueEmpty
from sluiceway._core import QueueFull as QueueFull
from sluiceway._core import SluicewayError as SluicewayError

__all__ = ["QueueEmpty", "QueueFull", "SluicewayError"]
