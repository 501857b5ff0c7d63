"""sluiceway: move chat messages fast and safely."""

from sluiceway._core import __version__ as __version__
from sluiceway.engine import Backpressure as Backpressure
from sluiceway.engine import DeadLetter as DeadLetter
from sluiceway.engine import EngineHooks as EngineHooks
from sluiceway.engine import Message as Message
from sluiceway.engine import MessageParallelizer as MessageParallelizer
from sluiceway.engine import ParallelizerConfig as ParallelizerConfig
from sluiceway.engine import Priority as Priority
from sluiceway.engine import Statistics as Statistics
from sluiceway.engine import current_worker as current_worker

__all__ = [
    "Backpressure",
    "DeadLetter",
    "EngineHooks",
    "Message",
    "MessageParallelizer",
    "ParallelizerConfig",
    "Priority",
    "Statistics",
    "__version__",
    "current_worker",
]
