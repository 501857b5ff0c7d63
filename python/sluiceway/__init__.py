"""sluiceway: move chat messages fast and safely.

Every public name is importable from here (``from sluiceway import Bot, MessageParallelizer``)
and is imported on first use: ``import sluiceway`` alone loads only the Rust core's version,
because every engine worker imports this package at start and most of them never touch the
Google API client, aiohttp or rich. ``_EXPORTS`` says where each name lives; the
``TYPE_CHECKING`` block repeats it as imports for type checkers and IDEs
(tests/test_top_level.py keeps the two and ``__all__`` equal).
"""

from typing import TYPE_CHECKING

from sluiceway._core import __version__ as __version__

#: Public name -> the module it is imported from on first use.
_EXPORTS = {
    # the bot runtime (sluiceway run)
    "Bot": "sluiceway.app",
    "Context": "sluiceway.app",
    "DEFAULT_HIGH_PRIORITY_KEYWORDS": "sluiceway.app",
    "InboundMessage": "sluiceway.app",
    "KeywordClassifier": "sluiceway.app",
    "Settings": "sluiceway.app",
    "load_settings": "sluiceway.app",
    # the engine
    "Accepted": "sluiceway.engine",
    "Backpressure": "sluiceway.engine",
    "DeadLetter": "sluiceway.engine",
    "DuplicateMessage": "sluiceway.engine",
    "EngineHooks": "sluiceway.engine",
    "Message": "sluiceway.engine",
    "MessageParallelizer": "sluiceway.engine",
    "ParallelizerConfig": "sluiceway.engine",
    "Priority": "sluiceway.engine",
    "Statistics": "sluiceway.engine",
    "current_worker": "sluiceway.engine",
    # the monitor
    "Alert": "sluiceway.monitor",
    "AutoscaleConfig": "sluiceway.monitor",
    "LatencyHistogram": "sluiceway.histogram",
    "MonitorConfig": "sluiceway.monitor",
    "PerformanceMonitor": "sluiceway.monitor",
    "Report": "sluiceway.monitor",
    "Thresholds": "sluiceway.monitor",
    "install_worker_profiler": "sluiceway.monitor",
    # the Sheets cache and client
    "CacheConfig": "sluiceway.sheets",
    "CacheResult": "sluiceway.sheets",
    "SheetsCache": "sluiceway.sheets",
    "SheetsClient": "sluiceway.sheets",
    "SheetsClientConfig": "sluiceway.sheets",
    "SheetsError": "sluiceway.sheets",
    # the WhatsApp sender
    "BatchSender": "sluiceway.whatsapp",
    "BreakerConfig": "sluiceway.whatsapp",
    "FailedSend": "sluiceway.whatsapp",
    "OutboundMessage": "sluiceway.whatsapp",
    "RateLimits": "sluiceway.whatsapp",
    "RecipientLimit": "sluiceway.whatsapp",
    "ReplyButton": "sluiceway.whatsapp",
    "SendError": "sluiceway.whatsapp",
    "SenderConfig": "sluiceway.whatsapp",
    "WhatsAppCloudTransport": "sluiceway.whatsapp",
    # subpackages, so that `import sluiceway; sluiceway.engine.run(...)` keeps working
    "app": "sluiceway.app",
    "core": "sluiceway.core",
    "engine": "sluiceway.engine",
    "errors": "sluiceway.errors",
    "histogram": "sluiceway.histogram",
    "http": "sluiceway.http",
    "monitor": "sluiceway.monitor",
    "sheets": "sluiceway.sheets",
    "whatsapp": "sluiceway.whatsapp",
}

if TYPE_CHECKING:
    from sluiceway import app as app
    from sluiceway import core as core
    from sluiceway import engine as engine
    from sluiceway import errors as errors
    from sluiceway import histogram as histogram
    from sluiceway import http as http
    from sluiceway import monitor as monitor
    from sluiceway import sheets as sheets
    from sluiceway import whatsapp as whatsapp
    from sluiceway.app import DEFAULT_HIGH_PRIORITY_KEYWORDS as DEFAULT_HIGH_PRIORITY_KEYWORDS
    from sluiceway.app import Bot as Bot
    from sluiceway.app import Context as Context
    from sluiceway.app import InboundMessage as InboundMessage
    from sluiceway.app import KeywordClassifier as KeywordClassifier
    from sluiceway.app import Settings as Settings
    from sluiceway.app import load_settings as load_settings
    from sluiceway.engine import Accepted as Accepted
    from sluiceway.engine import Backpressure as Backpressure
    from sluiceway.engine import DeadLetter as DeadLetter
    from sluiceway.engine import DuplicateMessage as DuplicateMessage
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
    from sluiceway.whatsapp import ReplyButton as ReplyButton
    from sluiceway.whatsapp import SenderConfig as SenderConfig
    from sluiceway.whatsapp import SendError as SendError
    from sluiceway.whatsapp import WhatsAppCloudTransport as WhatsAppCloudTransport
else:
    from sluiceway._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "DEFAULT_HIGH_PRIORITY_KEYWORDS",
    "Accepted",
    "Alert",
    "AutoscaleConfig",
    "Backpressure",
    "BatchSender",
    "Bot",
    "BreakerConfig",
    "CacheConfig",
    "CacheResult",
    "Context",
    "DeadLetter",
    "DuplicateMessage",
    "EngineHooks",
    "FailedSend",
    "InboundMessage",
    "KeywordClassifier",
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
    "ReplyButton",
    "Report",
    "SendError",
    "SenderConfig",
    "Settings",
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
    "load_settings",
]
