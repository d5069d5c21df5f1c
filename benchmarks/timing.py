"""Timing helpers shared by the benchmarks: interleaved step timing, the monitor of the CPU share other
processes used meanwhile (jax_bert/cpu_load.py: numbers taken on a busy machine are not comparable),
fake CPU devices for compiling a mesh, the environment record and a plain-text table."""
from __future__ import annotations

import datetime
import os
import platform
import time

from jax_bert.cpu_load import CpuMonitor, is_quiet, load_note, ratio_text, usable_cpus  # noqa: F401 - part of the benchmarks' kit


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
