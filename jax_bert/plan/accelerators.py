"""The accelerators a plan can be projected on: peak dense FLOP/s, memory, memory bandwidth and the
links between devices, each with where it comes from. Data only.

Peaks are the vendors' dense figures (no structured-sparsity doubling). `tf32` is what a float32 matmul
gets: JAX's default matmul precision lets XLA use TF32 tensor cores on Ampere and later; Volta has none.
`intra_node` is one direction of one GPU's NVLink bandwidth; `inter_node` is one GPU's share of its
host's network (the host's bandwidth / its GPUs), on the AWS instances the original study used (p3dn,
p4d) and their successors (p5, p5e).
"""
from __future__ import annotations

import dataclasses

GB = 1e9
T = 1e12


@dataclasses.dataclass(frozen=True)
class Accelerator:
    name: str
    bf16: float  # FLOP/s, dense bf16 matmuls
    tf32: float  # FLOP/s, float32 matmuls at JAX's default precision
    hbm_bytes: int
    hbm_bandwidth: float  # bytes/s
    intra_node: float  # bytes/s, one direction, per GPU (NVLink)
    inter_node: float  # bytes/s, per GPU (the host's network / gpus_per_node)
    gpus_per_node: int
    source: str

    def peak(self, dtype: str) -> float:
        return self.bf16 if dtype == "bfloat16" else self.tf32


ACCELERATORS = {a.name: a for a in (
    Accelerator("v100-32gb", bf16=15.7 * T, tf32=15.7 * T, hbm_bytes=32 * 2**30, hbm_bandwidth=900 * GB,
                intra_node=150 * GB, inter_node=100 / 8 / 8 * GB, gpus_per_node=8,
                source="NVIDIA V100 datasheet (SXM2: 15.7 TFLOP/s fp32, 125 fp16 tensor cores that bf16 "
                       "cannot use, 900 GB/s, NVLink 300 GB/s both ways); AWS p3dn.24xlarge: 100 Gbit/s per 8 GPUs"),
    Accelerator("a100-40gb", bf16=312 * T, tf32=156 * T, hbm_bytes=40 * 2**30, hbm_bandwidth=1555 * GB,
                intra_node=300 * GB, inter_node=400 / 8 / 8 * GB, gpus_per_node=8,
                source="NVIDIA A100 datasheet (SXM 40GB: 312 TFLOP/s bf16, 156 tf32, 1,555 GB/s, NVLink 600 GB/s "
                       "both ways); AWS p4d.24xlarge: 400 Gbit/s EFA per 8 GPUs"),
    Accelerator("a100-80gb", bf16=312 * T, tf32=156 * T, hbm_bytes=80 * 2**30, hbm_bandwidth=2039 * GB,
                intra_node=300 * GB, inter_node=400 / 8 / 8 * GB, gpus_per_node=8,
                source="NVIDIA A100 datasheet (SXM 80GB: 312 TFLOP/s bf16, 156 tf32, 2,039 GB/s, NVLink 600 GB/s "
                       "both ways); AWS p4de.24xlarge: 400 Gbit/s EFA per 8 GPUs"),
    Accelerator("h100-80gb", bf16=989 * T, tf32=494.5 * T, hbm_bytes=80 * 2**30, hbm_bandwidth=3350 * GB,
                intra_node=450 * GB, inter_node=3200 / 8 / 8 * GB, gpus_per_node=8,
                source="NVIDIA H100 datasheet (SXM: 989 TFLOP/s bf16 dense, 494.5 tf32, 3.35 TB/s, NVLink 900 GB/s "
                       "both ways); AWS p5.48xlarge: 3,200 Gbit/s EFA per 8 GPUs"),
    Accelerator("h200", bf16=989 * T, tf32=494.5 * T, hbm_bytes=141 * 10**9, hbm_bandwidth=4800 * GB,
                intra_node=450 * GB, inter_node=3200 / 8 / 8 * GB, gpus_per_node=8,
                source="NVIDIA H200 datasheet (SXM: 989 TFLOP/s bf16 dense, 494.5 tf32, 141 GB, 4.8 TB/s, NVLink "
                       "900 GB/s both ways); AWS p5e.48xlarge: 3,200 Gbit/s EFA per 8 GPUs"),
)}


def accelerator(name: str) -> Accelerator:
    if name not in ACCELERATORS:
        raise ValueError(f"unknown accelerator {name!r}; use one of {', '.join(ACCELERATORS)}.")
    return ACCELERATORS[name]
