"""What a train step costs on a mesh, read from XLA without allocating anything.

The step that trains is the step that is measured: `compile_train_step` lowers the jitted step of
`step.build` with abstract inputs (jax.ShapeDtypeStruct carrying their shardings) and compiles it, so
a mesh of fake CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=N) stands in for a
cluster. `cost_of` reads the compiled program's memory and cost analysis (per device) and counts its
collectives.

Two facts of XLA's analyses to keep in mind when reading the numbers:
- FLOPs count a loop body once: with `scan_layers` the layer stack (and with gradient accumulation
  the micro-batches) are loops, so compare programs of the same structure, or scale by the trip count.
- XLA:CPU has no reduce-scatter: a sharded gradient is an all-reduce of the whole tensor followed by
  a slice. Its temporaries therefore hold each sharded tensor's full gradient where a GPU would hold
  a shard; the bounds in the tests allow for it.
"""
from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jax_bert import model
from jax_bert.model import BertConfig
from jax_bert.train import sharding
from jax_bert.train import step as train_step
from jax_bert.train.teachers import Teacher

COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")


@dataclasses.dataclass(frozen=True)
class StepCost:
    """Per device: bytes of the arguments (state, batch, teachers), outputs and temporaries, XLA's
    FLOPs (loop bodies once), the collectives in the program text, and the compile time."""

    argument_bytes: int
    output_bytes: int
    temp_bytes: int
    alias_bytes: int  # outputs that reuse an argument's buffer (the donated state)
    flops: float
    collectives: dict[str, int]
    compile_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fsdp_temp_allowance(config: BertConfig, teacher_configs: Sequence[BertConfig] = ()) -> int:
    """Bytes per device that an fsdp step may hold beyond a data-parallel step at the same per-device
    batch: the params it gathers at one time and their full gradients before the reduce-scatter.

    With scanned layers a step gathers one layer at a time; the params outside the layer stack
    (embeddings, the tied vocabulary projection, the MLM head) are gathered whole and may stay gathered
    across the stack. So: 2 x (one layer + the rest) of the student (gathered params + gradients), plus
    1 x (one layer + the rest) of each frozen teacher (gathered, no gradients)."""
    def unit_bytes(cfg: BertConfig) -> int:
        layer = rest = 0
        for path, leaf in jax.tree_util.tree_leaves_with_path(model.abstract_params(cfg)):
            size = leaf.size * leaf.dtype.itemsize
            if "encoder" in jax.tree_util.keystr(path):
                layer += size // cfg.num_hidden_layers
            else:
                rest += size
        return layer + rest

    return 2 * unit_bytes(config) + sum(unit_bytes(t) for t in teacher_configs)


def abstract_teacher(config: BertConfig, mesh: Mesh, weight: float = 1.0) -> Teacher:
    """A teacher record whose params are abstract (shapes and shardings only)."""
    shapes = model.abstract_params(config)
    shardings = sharding.param_shardings(model.logical_axes(config), shapes, mesh)
    return Teacher(config, _on(shapes, shardings), shardings, weight, "(abstract)")


def abstract_batch(mesh: Mesh, *, rows: int, length: int, slots: int, accum_steps: int = 1) -> dict:
    """The train step's batch [accum_steps, rows, ...] as abstract arrays on the batch sharding."""
    batch_sharding = sharding.batch_sharding(mesh, leading_axes=1)

    def array(key):
        width = slots if key.startswith("masked") else length
        dtype = jnp.float32 if key == "masked_weights" else jnp.int32
        return jax.ShapeDtypeStruct((accum_steps, rows, width), dtype, sharding=batch_sharding)

    return {key: array(key) for key in train_step.BATCH_KEYS}


def compile_train_step(program: train_step.Program, mesh: Mesh, teachers: Sequence[Teacher] = (), *,
                       rows: int, length: int, slots: int, accum_steps: int = 1,
                       compiler_options: dict | None = None):
    """(compiled train step, compile seconds) for a micro-batch of `rows` sequences of `length`;
    `compiler_options`: XLA debug options for this compile only (planner.ANALYSIS_ONLY)."""
    state = _on(program.abstract_state, program.shardings)
    batch = abstract_batch(mesh, rows=rows, length=length, slots=slots, accum_steps=accum_steps)
    start = time.perf_counter()
    compiled = program.train_step.lower(state, batch, [t.params for t in teachers]).compile(compiler_options)
    return compiled, time.perf_counter() - start


def cost_of(compiled, compile_seconds: float = 0.0) -> StepCost:
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    text = compiled.as_text()
    counts = {op: len(re.findall(rf"\s{op}(?:-start)?\(", text)) for op in COLLECTIVES}
    return StepCost(int(memory.argument_size_in_bytes), int(memory.output_size_in_bytes),
                    int(memory.temp_size_in_bytes), int(memory.alias_size_in_bytes), float(cost.get("flops", 0.0)),
                    counts, compile_seconds)


def _on(shapes, shardings):
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), shapes, shardings)
