"""The performance monitor: metrics, alerts, anomalies, history, autoscaling, profiling and HTTP exposure."""

from sluiceway.monitor.alerts import Alert as Alert
from sluiceway.monitor.alerts import AlertLevel as AlertLevel
from sluiceway.monitor.anomaly import Anomaly as Anomaly
from sluiceway.monitor.autoscale import AutoscalePolicy as AutoscalePolicy
from sluiceway.monitor.autoscale import ScalingDecision as ScalingDecision
from sluiceway.monitor.autoscale import ScalingInputs as ScalingInputs
from sluiceway.monitor.config import AutoscaleConfig as AutoscaleConfig
from sluiceway.monitor.config import MonitorConfig as MonitorConfig
from sluiceway.monitor.config import Thresholds as Thresholds
from sluiceway.monitor.history import Point as Point
from sluiceway.monitor.monitor import PerformanceMonitor as PerformanceMonitor
from sluiceway.monitor.profiling import Profile as Profile
from sluiceway.monitor.profiling import install_worker_profiler as install_worker_profiler
from sluiceway.monitor.report import MonitorEvent as MonitorEvent
from sluiceway.monitor.report import PipelineReport as PipelineReport
from sluiceway.monitor.report import PipelineSample as PipelineSample
from sluiceway.monitor.report import Report as Report

__all__ = [
    "Alert",
    "AlertLevel",
    "Anomaly",
    "AutoscaleConfig",
    "AutoscalePolicy",
    "MonitorConfig",
    "MonitorEvent",
    "PerformanceMonitor",
    "PipelineReport",
    "PipelineSample",
    "Point",
    "Profile",
    "Report",
    "ScalingDecision",
    "ScalingInputs",
    "Thresholds",
    "install_worker_profiler",
]
