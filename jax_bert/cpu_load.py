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


# Above this share of the CPUs used by other processes, a side-by-side ratio is not reported as valid:
# contention slows the two sides unequally (PyTorch's threads far more than XLA's), so a ratio from a
# busy machine flatters one side (the GLUE suite against Hugging Face: 6.51x busy, 2.72x quiet).
BUSY_SHARE = 0.10


def is_quiet(monitor: CpuMonitor) -> bool:
    """Whether a ratio timed under `monitor` may be reported (unknown load, off Linux, counts as quiet)."""
    return monitor.other_share is None or monitor.other_share <= BUSY_SHARE


def load_note(monitor: CpuMonitor) -> str:
    if monitor.other_share is None:
        return ""
    warn = "  (WARNING: the machine was busy; these numbers are not quiet-machine numbers, and no ratio " \
        "between the compared ways is valid)" if not is_quiet(monitor) else ""
    return f"other processes used {monitor.other_share:.0%} of the CPUs while timing{warn}"


def ratio_text(value: float, monitor: CpuMonitor, fmt: str = "{:.2f}x") -> str:
    """A ratio as printed by a side-by-side benchmark: the number on a quiet machine; on a busy one the
    number marked NOT VALID with the share that made it so (kept, to see how far contention moves it)."""
    text = fmt.format(value)
    if is_quiet(monitor):
        return text
    return f"{text} NOT VALID (other processes used {monitor.other_share:.0%} of the CPUs; rerun on a quiet machine)"


def usable_cpus() -> int:
    """The CPUs this process may run on (os.cpu_count() unless pinned, e.g. by taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
