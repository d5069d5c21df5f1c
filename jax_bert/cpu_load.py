"""The share of the CPUs that other processes used while a block of work ran.

Timings taken while other processes were busy are not comparable with quiet-machine ones (contention
slows some programs far more than others), so the benchmarks and the study record this share beside
every wall time.
"""
from __future__ import annotations

import os
import time


class CpuMonitor:
    """The share of all CPUs used by OTHER processes while the block ran: system-wide busy time
    (/proc/stat) minus this process's CPU time, over wall time x CPUs. None off Linux."""

    def __init__(self):
        self.other_share = None

    @staticmethod
    def _busy_seconds():
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def __enter__(self):
        self._busy, self._own, self._wall = self._busy_seconds(), sum(os.times()[:2]), time.perf_counter()
        return self

    def __exit__(self, *exc):
        busy = self._busy_seconds()
        if busy is not None and self._busy is not None:
            wall = time.perf_counter() - self._wall
            other = (busy - self._busy) - (sum(os.times()[:2]) - self._own)
            self.other_share = min(1.0, max(0.0, other / (wall * (os.cpu_count() or 1))))  # all CPUs


def load_note(monitor: CpuMonitor) -> str:
    if monitor.other_share is None:
        return ""
    warn = "  (WARNING: the machine was busy; these numbers are not quiet-machine numbers)" \
        if monitor.other_share > 0.1 else ""
    return f"other processes used {monitor.other_share:.0%} of the CPUs while timing{warn}"


def usable_cpus() -> int:
    """The CPUs this process may run on (os.cpu_count() unless pinned, e.g. by taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
