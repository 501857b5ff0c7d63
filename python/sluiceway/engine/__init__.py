"""The message engine: a supervisor with a priority queue feeding uvloop worker processes.

Public names: ``MessageParallelizer``, ``ParallelizerConfig``, ``Message``, ``Priority``,
``Statistics``, ``DeadLetter``, ``Accepted`` (what ``accept`` returns), ``current_worker``, the
engine's errors, and for hooks ``EngineHooks``, ``EngineView`` and their events (``LatencyDelta``, ``WorkerStarted``,
``WorkerExited``, ``Scaled``); ``run`` (in ``sluiceway.engine.runner``) drains the engine
on SIGINT/SIGTERM.
"""

from sluiceway.engine.config import ParallelizerConfig as ParallelizerConfig
from sluiceway.engine.context import WorkerContext as WorkerContext
from sluiceway.engine.context import current_worker as current_worker
from sluiceway.engine.dead_letters import DeadLetter as DeadLetter
from sluiceway.engine.errors import Backpressure as Backpressure
from sluiceway.engine.errors import BrokerUnavailable as BrokerUnavailable
from sluiceway.engine.errors import DuplicateMessage as DuplicateMessage
from sluiceway.engine.errors import EngineNotRunning as EngineNotRunning
from sluiceway.engine.errors import HandlerError as HandlerError
from sluiceway.engine.errors import MessageDeadLettered as MessageDeadLettered
from sluiceway.engine.errors import UnencodablePayload as UnencodablePayload
from sluiceway.engine.errors import WorkerStartupError as WorkerStartupError
from sluiceway.engine.hooks import EngineHooks as EngineHooks
from sluiceway.engine.hooks import EngineView as EngineView
from sluiceway.engine.hooks import LatencyDelta as LatencyDelta
from sluiceway.engine.hooks import Scaled as Scaled
from sluiceway.engine.hooks import WorkerExited as WorkerExited
from sluiceway.engine.hooks import WorkerStarted as WorkerStarted
from sluiceway.engine.message import Accepted as Accepted
from sluiceway.engine.message import Message as Message
from sluiceway.engine.message import MessageIds as MessageIds
from sluiceway.engine.message import Priority as Priority
from sluiceway.engine.retry import RetryPolicy as RetryPolicy
from sluiceway.engine.runner import run as run
from sluiceway.engine.statistics import Statistics as Statistics
from sluiceway.engine.statistics import WorkerStatistics as WorkerStatistics
from sluiceway.engine.supervisor import MessageParallelizer as MessageParallelizer
from sluiceway.engine.supervisor import ShutdownSummary as ShutdownSummary

__all__ = [
    "Accepted",
    "Backpressure",
    "BrokerUnavailable",
    "DeadLetter",
    "DuplicateMessage",
    "EngineHooks",
    "EngineNotRunning",
    "EngineView",
    "HandlerError",
    "LatencyDelta",
    "Message",
    "MessageDeadLettered",
    "MessageIds",
    "MessageParallelizer",
    "ParallelizerConfig",
    "Priority",
    "RetryPolicy",
    "Scaled",
    "ShutdownSummary",
    "Statistics",
    "UnencodablePayload",
    "WorkerContext",
    "WorkerExited",
    "WorkerStarted",
    "WorkerStartupError",
    "WorkerStatistics",
    "current_worker",
    "run",
]
