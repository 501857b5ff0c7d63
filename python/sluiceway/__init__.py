"""sluiceway: move chat messages fast and safely."""

from sluiceway._core import __version__ as __version__
from sluiceway.histogram import LatencyHistogram as LatencyHistogram
from sluiceway.monitor import Alert as Alert
from sluiceway.monitor import AutoscaleConfig as AutoscaleConfig
from sluiceway.monitor import MonitorConfig as MonitorConfig
from sluiceway.monitor import PerformanceMonitor as PerformanceMonitor
from sluiceway.monitor import Report as Report
from sluiceway.monitor import Thresholds as Thresholds
from sluiceway.monitor import install_worker_profiler as install_worker_profiler
from sluiceway.whatsapp import BatchSender as BatchSender
from sluiceway.whatsapp import BreakerConfig as BreakerConfig
from sluiceway.whatsapp import DeadLetter as DeadLetter
from sluiceway.whatsapp import OutboundMessage as OutboundMessage
from sluiceway.whatsapp import RateLimits as RateLimits
from sluiceway.whatsapp import RecipientLimit as RecipientLimit
from sluiceway.whatsapp import SendError as SendError
from sluiceway.whatsapp import SenderConfig as SenderConfig
from sluiceway.whatsapp import WhatsAppCloudTransport as WhatsAppCloudTransport

__all__ = [
    "Alert",
    "AutoscaleConfig",
    "BatchSender",
    "BreakerConfig",
    "DeadLetter",
    "LatencyHistogram",
    "MonitorConfig",
    "OutboundMessage",
    "PerformanceMonitor",
    "RateLimits",
    "RecipientLimit",
    "Report",
    "SendError",
    "SenderConfig",
    "Thresholds",
    "WhatsAppCloudTransport",
    "__version__",
    "install_worker_profiler",
]
