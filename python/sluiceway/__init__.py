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

__all__ = [
    "Alert",
    "AutoscaleConfig",
    "LatencyHistogram",
    "MonitorConfig",
    "PerformanceMonitor",
    "Report",
    "Thresholds",
    "__version__",
    "install_worker_profiler",
]
