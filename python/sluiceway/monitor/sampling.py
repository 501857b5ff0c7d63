"""psutil sampling of the machine and of the engine's processes (runs in the monitor process).

``psutil.Process`` objects are kept between samples because ``cpu_percent`` measures
since the previous call on the same object; each process is read inside ``oneshot()``
so its ``/proc`` files are read once per sample.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import psutil

from sluiceway.monitor.report import MachineResources, ProcessResources, ResourceSample


class ResourceSampler:
    """Samples the machine, the supervisor, the workers and the monitor process itself.

    Example::

        sampler = ResourceSampler(supervisor_pid=os.getppid())
        sample = sampler.sample(worker_pids=[1234, 1235])
    """

    def __init__(self, supervisor_pid: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._roles = {supervisor_pid: "supervisor", os.getpid(): "monitor"}
        self._processes: dict[int, psutil.Process] = {}
        psutil.cpu_percent(interval=None)  # primes the machine-wide counter

    def sample(self, worker_pids: Iterable[int]) -> ResourceSample:
        """One sample; processes that are gone are skipped and forgotten."""
        wanted = dict(self._roles)
        for pid in worker_pids:
            wanted.setdefault(pid, "worker")
        for pid in list(self._processes):
            if pid not in wanted:
                del self._processes[pid]
        memory = psutil.virtual_memory()
        processes = []
        for pid, role in wanted.items():
            figures = self._sample_process(pid, role, memory.total)
            if figures is not None:
                processes.append(figures)
        machine = MachineResources(
            cpu_percent=psutil.cpu_percent(interval=None),
            cpu_count=psutil.cpu_count() or 1,
            memory_percent=memory.percent,
            memory_used_bytes=memory.total - memory.available,
            memory_total_bytes=memory.total,
            load_1m=os.getloadavg()[0],
        )
        return ResourceSample(at=self._clock(), machine=machine, processes=processes)

    def _sample_process(self, pid: int, role: str, memory_total: int) -> ProcessResources | None:
        process = self._processes.get(pid)
        try:
            if process is None:
                process = self._processes[pid] = psutil.Process(pid)
                process.cpu_percent(interval=None)  # first call only primes it
            with process.oneshot():
                times = process.cpu_times()
                memory = process.memory_info()
                return ProcessResources(
                    pid=pid,
                    role=role,
                    cpu_percent=process.cpu_percent(interval=None),
                    cpu_seconds=times.user + times.system,
                    rss_bytes=memory.rss,
                    memory_percent=100.0 * memory.rss / memory_total,
                    threads=process.num_threads(),
                )
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            self._processes.pop(pid, None)
            return None
