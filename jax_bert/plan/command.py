"""What scripts/plan.py does once its command line is read: one plan (and, when it does not fit, the
smallest change that fits) or the search over meshes, printed and optionally written as JSON.

The script runs this in a child process started with N fake CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=N, set before JAX starts), so that a mesh of N
devices exists to compile for.
"""
from __future__ import annotations

import math
import os

import jax

from jax_bert import files
from jax_bert.plan import accelerators, planner, report


def check_arguments(*, devices, mesh, accelerator: str, mfu: float, reserve: float, search: bool,
                    workers: int = 1) -> None:
    """Each bad value is a ValueError naming it (the script makes it one line and exit status 2)."""
    if devices is None or devices < 1:
        raise ValueError(f"--devices must be an integer >= 1 (the cluster's accelerators), got {devices}.")
    accelerators.accelerator(accelerator)
    if not 0 < mfu <= 1:
        raise ValueError(f"--mfu must be in (0, 1], got {mfu}.")
    if not 0 <= reserve < 1:
        raise ValueError(f"--reserve must be in [0, 1), got {reserve}.")
    if workers is None or workers < 1:
        raise ValueError(f"--workers must be an integer >= 1 (meshes planned at once), got {workers}.")
    if workers != 1 and not search:
        raise ValueError("--workers applies to --search only (one plan is one compile).")
    if mesh is not None:
        if search:
            raise ValueError("give --mesh or --search, not both (--search tries every mesh).")
        sizes = parse_mesh(mesh)
        if math.prod(sizes) != devices:
            raise ValueError(f"--mesh {mesh} uses {math.prod(sizes)} devices, not --devices {devices}.")


def parse_mesh(text: str) -> tuple[int, int, int]:
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) != 3 or min(sizes) < 1:
        raise ValueError(f"--mesh takes data,fsdp,tensor sizes >= 1 (e.g. 8,1,1), got {text!r}.")
    return sizes


def run(config, *, config_file: str, devices: int, mesh: str | None, accelerator: str, mfu: float = 0.4,
        reserve: float = 0.1, search: bool = False, workers: int = 1, json_path: str | None = None, command: str = "",
        out=print) -> dict:
    """Plans `config` and prints it; returns what --json writes."""
    acc = accelerators.accelerator(accelerator)
    if jax.device_count() < devices:
        raise ValueError(f"{devices} devices asked for but JAX has {jax.device_count()}: run scripts/plan.py, which "
                         f"starts them.")
    kwargs = dict(mfu=mfu, reserve=reserve, config_dir=os.path.dirname(os.path.abspath(config_file.split(":")[0])))
    result = {"command": command, "config": config_file, "accelerator": acc.name, "accelerator_source": acc.source}
    out(f"plan of {config_file} on {devices} x {acc.name} (compiled for {devices} fake CPU devices; nothing runs)")
    if search:
        rows = planner.search(config, devices, acc, log=out, workers=workers, **kwargs)
        out(report.search_table(rows))
        result["search"] = rows
        if rows and rows[0]["fits"]:
            out("\nbest:\n" + report.plan_text(rows[0]))
        else:
            out(f"\nno mesh of {devices} devices fits {acc.name}: try more devices or a larger accelerator.")
    else:
        sizes = parse_mesh(mesh) if mesh else planner.mesh_sizes(config, devices)
        result["plan"] = plan = planner.plan(config, sizes, acc, **kwargs)
        out(report.plan_text(plan))
        if not plan["fits"]:
            change = planner.smallest_change(config, sizes, acc, **kwargs)
            result["smallest_change"] = change
            if change is None:
                out(f"no change tried (accumulation up to {planner.ACCUMULATION[-1]}, remat, fsdp) fits: try more "
                    f"devices or a larger accelerator.")
            else:
                out(f"\nsmallest change that fits: {change['change']}\n" + report.plan_text(change["plan"]))
    if json_path:
        files.atomic_write_json(json_path, result)
        out(f"wrote {json_path}")
    return result
