"""Timing helpers shared by the benchmarks: interleaved step timing, a monitor of the CPU share other
processes used meanwhile (numbers taken on a busy machine are not comparable), the environment
record and a plain-text table."""
from __future__ import annotations

import datetime
import os
import platform
import time


def time_steps(step, n: int, before=None) -> list[float]:
    """Per-step wall seconds of n blocking calls (`before` runs untimed ahead of each)."""
    out = []
    for _ in range(n):
        if before is not None:
            before()
        start = time.perf_counter()
        step()
        out.append(time.perf_counter() - start)
    return out


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


def use_cpu_devices(n: int) -> None:
    """Runs JAX on `n` CPU devices (fake ones on one host: the meshes of a cluster, to compile for).
    Must come before anything asks JAX for a device."""
    import jax

    if n > 1:
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", n)
    if jax.device_count() < n:
        raise SystemExit(f"error: {n} devices asked for but JAX started with {jax.device_count()}; "
                         f"run the benchmark in a fresh process.")


def split_rounds(n: int, rounds: int) -> list[int]:
    rounds = max(1, min(rounds, n))
    return [n // rounds + (1 if i < n % rounds else 0) for i in range(rounds)]


def environment(with_torch: bool = False) -> dict:
    import jax

    env = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "python": platform.python_version(), "jax": jax.__version__, "backend": jax.default_backend(),
           "device_kind": jax.devices()[0].device_kind, "device_count": jax.device_count(),
           "cpu_count": os.cpu_count(), "usable_cpus": usable_cpus(), "machine": platform.machine(),
           "xla_flags": os.environ.get("XLA_FLAGS", ""), "load_average_at_start": os.getloadavg()[0]}
    if with_torch:
        import torch
        import transformers

        env.update(torch=torch.__version__, transformers=transformers.__version__,
                   torch_threads=torch.get_num_threads())
    return env


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """columns: (key, header, format)."""
    cells = [[h for _, h, _ in columns]] + [
        ["" if r.get(k) is None else (f.format(r[k]) if f else str(r[k])) for k, _, f in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for j, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))
