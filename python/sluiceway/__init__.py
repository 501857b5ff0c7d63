"""sluiceway: move chat messages fast and safely."""

from sluiceway._core import __version__ as __version__
from sluiceway.engine import Backpressure as Backpressure
from sluiceway.engine import EngineHooks as EngineHooks
from sluiceway.engine import Message as Message
from sluiceway.engine import MessageParallelizer as MessageParallelizer
from sluiceway.engine import ParallelizerConfig as ParallelizerConfig
from sluiceway.engine import Priority as Priority
from sluiceway.engine import Statistics as Statistics
from sluiceway.engine import current_worker as current_worker
from sluiceway.histogram import LatencyHistogram as LatencyHistogram
from sluiceway.monitor import Alert as Alert
from sluiceway.monitor import AutoscaleConfig as AutoscaleConfig
from sluiceway.monitor import MonitorConfig as MonitorConfig
from sluiceway.monitor import PerformanceMonitor as PerformanceMonitor
from sluiceway.monitor import Report as Report
from sluiceway.monitor import Thresholds as Thresholds
from sluiceway.monitor import install_worker_profiler as install_worker_profiler
from sluiceway.sheets import CacheConfig as CacheConfig
from sluiceway.sheets import CacheResult as CacheResult
from sluiceway.sheets import SheetsCache as SheetsCache
from sluiceway.sheets import SheetsClient as SheetsClient
from sluiceway.sheets import SheetsClientConfig as SheetsClientConfig
from sluiceway.sheets import SheetsError as SheetsError
from sluiceway.whatsapp import BatchSender as BatchSender
from sluiceway.whatsapp import BreakerConfig as BreakerConfig
from sluiceway.whatsapp import FailedSend as FailedSend
from sluiceway.whatsapp import OutboundMessage as OutboundMessage
from sluiceway.whatsapp import RateLimits as RateLimits
from sluiceway.whatsapp import RecipientLimit as RecipientLimit
from sluiceway.whatsapp import SendError as SendError
from sluiceway.whatsapp import SenderConfig as SenderConfig
from sluiceway.whatsapp import WhatsAppCloudTransport as WhatsAppCloudTransport

__all__ = [
    "Alert",
    "AutoscaleConfig",
    "Backpressure",
    "BatchSender",
    "BreakerConfig",
    "CacheConfig",
    "CacheResult",
    "EngineHooks",
    "FailedSend",
    "LatencyHistogram",
    "Message",
    "MessageParallelizer",
    "MonitorConfig",
    "OutboundMessage",
    "ParallelizerConfig",
    "PerformanceMonitor",
    "Priority",
    "RateLimits",
    "RecipientLimit",
    "Report",
    "SendError",
    "SenderConfig",
    "SheetsCache",
    "SheetsClient",
    "SheetsClientConfig",
    "SheetsError",
    "Statistics",
    "Thresholds",
    "WhatsAppCloudTransport",
    "__version__",
    "current_worker",
    "install_worker_profiler",
]
