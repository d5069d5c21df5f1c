"""Step time and fit on an accelerator, from a plan's FLOPs, bytes and collectives (pure functions).

- compute: the step's FLOPs per device / the peak for the compute dtype;
- memory traffic: a lower bound, the state read and written by the optimizer (params, gradients,
  moments, masks) and the weights read by each micro-batch's forward and backward (teachers: forward),
  activations left out;
- communication: each collective as a ring moves it (all-reduce 2(g-1)/g of its bytes per device,
  all-gather and all-to-all (g-1)/g, reduce-scatter (g-1) x its shard, a permute its bytes), over
  NVLink when each of its groups lies within one node, else over the node's network share.
The roofline time is the largest of the three (perfect overlap: a lower bound); the time at an MFU
is the compute at that fraction of the peak, or the communication or memory time if one is longer.
"""
from __future__ import annotations

from jax_bert.plan.accelerators import Accelerator

_RING = {"all-reduce": lambda g: 2 * (g - 1) / g, "all-gather": lambda g: (g - 1) / g,
         "reduce-scatter": lambda g: g - 1, "all-to-all": lambda g: (g - 1) / g, "collective-permute": lambda g: 1.0}


def spans_nodes(groups, devices: int, gpus_per_node: int) -> bool:
    """Whether a collective's groups cross hosts (device d on host d // gpus_per_node); no groups in
    the text means one group of every device."""
    if not groups:
        return devices > gpus_per_node
    return any(len({d // gpus_per_node for d in g}) > 1 for g in groups)


def communication_seconds(found, devices: int, acc: Accelerator) -> dict[str, float]:
    """{kind: seconds per step} on `acc`, and the "total"."""
    out: dict[str, float] = {}
    for c in found:
        g = c.group_size if c.groups else devices
        if g <= 1 and c.kind != "collective-permute":
            continue
        link = acc.inter_node if spans_nodes(c.groups, devices, acc.gpus_per_node) else acc.intra_node
        out[c.kind] = out.get(c.kind, 0.0) + c.count * c.bytes * _RING[c.kind](max(g, 2)) / link
    out["total"] = sum(out.values())
    return out


def step_time(*, flops_per_device: float, dtype: str, hbm_bytes: float, comm_seconds: float,
              acc: Accelerator, mfu: float) -> dict[str, float]:
    compute = flops_per_device / acc.peak(dtype)
    memory = hbm_bytes / acc.hbm_bandwidth
    return {"compute_s": compute, "memory_s": memory, "communication_s": comm_seconds,
            "roofline_s": max(compute, memory, comm_seconds), "mfu": mfu,
            "at_mfu_s": max(compute / mfu, memory, comm_seconds)}


def hbm_traffic(state_bytes: dict[str, int], *, student_weight_bytes: float, teacher_weight_bytes: float,
                accum_steps: int) -> float:
    """Bytes one device moves to and from HBM per step, at least (see the module docstring)."""
    optimizer = 3 * state_bytes["params"] + 2 * state_bytes["moments"] + state_bytes["masks"]
    return optimizer + accum_steps * (2 * student_weight_bytes + teacher_weight_bytes)


def fits(peak_bytes: int, acc: Accelerator, reserve: float) -> tuple[bool, int]:
    """(whether the peak fits, the budget: HBM minus the reserved fraction)."""
    budget = int(acc.hbm_bytes * (1 - reserve))
    return peak_bytes <= budget, budget
