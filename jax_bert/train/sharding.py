"""Device mesh, logical-axis rules, explicit shardings and multi-host initialisation.

A mesh has the named axes (data, fsdp, tensor). Model params and activations carry logical axis
names (jax_bert/model/bert.py, partitioning.py); RULES maps each logical name to a mesh axis. The
batch is split over (data, fsdp). fsdp shards the params (and their optimizer state and masks) along
their hidden ("embed") dimension, while every activation stays split over the batch and whole along
the hidden dimension: each layer's params are gathered where the layer runs and its gradients
reduce-scattered, so fsdp costs what data parallelism costs plus one layer's gathered params
(`constrained_to_mesh`). tensor shards heads, feed-forward units and the vocabulary, Megatron-style.
With one device every sharding is trivial and the step is plain jit.
"""
from __future__ import annotations

import functools
import logging
import math
import os
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import sparsity
from jax_bert.model import partitioning

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# logical axis name -> mesh axis (or None: replicated along that dimension). "embed" names the params'
# hidden dimension only: activations leave their hidden dimension unnamed (whole on every device).
RULES: dict[str, Any] = {
    "batch": BATCH_AXES,
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "mlp": "tensor",
    "norm": None,
    "layers": None,
}


def maybe_initialize_distributed(cfg) -> None:
    """Calls jax.distributed.initialize when the config or the environment asks for it.

    cfg.initialize: 'auto' (when a cluster is detected: SLURM, Open MPI, or the JAX_COORDINATOR_ADDRESS
    variable), 'yes' or 'no'. Explicit coordinator_address / num_processes / process_id win.
    """
    mode = cfg.get("initialize", "auto")
    if mode == "no":
        return
    explicit = bool(cfg.get("coordinator_address"))
    env = os.environ
    detected = explicit or "JAX_COORDINATOR_ADDRESS" in env or (
        "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1) or "OMPI_COMM_WORLD_SIZE" in env
    if mode == "auto" and not detected:
        return
    kwargs = {}
    if explicit:
        kwargs = dict(coordinator_address=cfg.coordinator_address, num_processes=int(cfg.num_processes),
                      process_id=int(cfg.process_id))
    elif "JAX_COORDINATOR_ADDRESS" in env:
        kwargs = dict(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                      num_processes=int(env["JAX_NUM_PROCESSES"]), process_id=int(env["JAX_PROCESS_ID"]))
    # Cross-process collectives for CPU devices (harmless on GPU hosts, where NCCL is used).
    jax.config.update("jax_cpu_collectives_implementation", cfg.get("cpu_collectives", "gloo"))
    # A process that stops sending heartbeats is declared dead after this long (JAX's default: 100 s).
    jax.distributed.initialize(**kwargs, heartbeat_timeout_seconds=int(cfg.get("heartbeat_timeout_seconds", 100)))
    logging.info("jax.distributed: process %d of %d", jax.process_index(), jax.process_count())


def make_mesh(mesh_cfg) -> Mesh:
    """Mesh of shape (data, fsdp, tensor) over every device, from the config; one size may be -1
    (fill the rest)."""
    sizes = [int(mesh_cfg.get(a, 1)) for a in MESH_AXES]
    return mesh_of(sizes)


def mesh_of(sizes, devices=None) -> Mesh:
    """Mesh of shape (data, fsdp, tensor) = `sizes` over `devices` (default: all); one size may be -1."""
    devices = jax.devices() if devices is None else list(devices)
    sizes = [int(s) for s in sizes]
    n = len(devices)
    if sizes.count(-1) > 1:
        raise ValueError(f"mesh: at most one of {MESH_AXES} may be -1, got {dict(zip(MESH_AXES, sizes))}.")
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        if n % known:
            raise ValueError(f"mesh: {dict(zip(MESH_AXES, sizes))} does not divide {n} devices.")
        sizes[sizes.index(-1)] = n // known
    if math.prod(sizes) != n:
        raise ValueError(f"mesh: {dict(zip(MESH_AXES, sizes))} uses {math.prod(sizes)} devices but "
                         f"{n} are present; set one axis to -1 to fill.")
    return Mesh(np.asarray(devices).reshape(sizes), MESH_AXES)


def logical_to_spec(logical: P, shape: tuple[int, ...], mesh: Mesh) -> P:
    """Maps logical names through RULES; a dimension that the mesh axis does not divide is replicated
    (so odd sizes such as a 28,996-token vocabulary still work), and a mesh axis is used once."""
    used: set[str] = set()
    out = []
    for name, dim in zip(tuple(logical) + (None,) * (len(shape) - len(logical)), shape):
        axis = RULES.get(name) if name is not None else None
        axes = (axis,) if isinstance(axis, str) else tuple(axis or ())
        axes = tuple(a for a in axes if a not in used and mesh.shape[a] > 1)
        size = math.prod(mesh.shape[a] for a in axes)
        if not axes or dim % size:
            out.append(None)
            continue
        used.update(axes)
        out.append(axes[0] if len(axes) == 1 else axes)
    return P(*out)


def param_shardings(logical_tree, shapes_tree, mesh: Mesh):
    """NamedSharding per param from its logical spec and shape."""
    return jax.tree.map(lambda spec, x: NamedSharding(mesh, logical_to_spec(spec, x.shape, mesh)),
                        logical_tree, shapes_tree, is_leaf=lambda x: isinstance(x, P))


def constrained_to_mesh(fn: Callable, mesh: Mesh) -> Callable:
    """fn, traced with the model's activations pinned to `mesh` by RULES (partitioning.constrain).

    Without the pins XLA's propagation may follow fsdp-sharded kernels into the activations
    (gathered over the global batch, partial sums all-reduced): memory and FLOPs that grow with the
    fsdp size. On one device there is nothing to pin and fn is returned as it is."""
    if mesh.size == 1:
        return fn
    to_sharding = lambda spec, shape: NamedSharding(mesh, logical_to_spec(spec, shape, mesh))

    @functools.wraps(fn)
    def traced_on_mesh(*args, **kwargs):
        with partitioning.activation_sharding(to_sharding):
            return fn(*args, **kwargs)

    return traced_on_mesh


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, leading_axes: int = 0) -> NamedSharding:
    """Sharding of a batch array: optional leading (accumulation) axes, then the batch dimension."""
    return NamedSharding(mesh, P(*([None] * leading_axes), BATCH_AXES))


def batch_shards(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def place_batch(local: dict[str, np.ndarray], mesh: Mesh, leading_axes: int = 0) -> dict[str, jax.Array]:
    """This process's rows of the global batch -> global arrays (jax.make_array_from_process_local_data)."""
    sharding = batch_sharding(mesh, leading_axes)
    out = {}
    for k, v in local.items():
        global_shape = list(v.shape)
        global_shape[leading_axes] *= jax.process_count()
        out[k] = jax.make_array_from_process_local_data(sharding, v, tuple(global_shape))
    return out


def shardings_like_params(tree, abstract_params, param_shardings, mesh: Mesh):
    """Shardings for a tree that holds copies of the params (an optimizer state: Adam's moments,
    sparse masks): a leaf whose key path ends with a param's path and has that param's shape gets
    that param's sharding; everything else (counts, schedules' hyperparameters) is replicated."""
    def by_path(t):
        return {tuple(sparsity.path_str(p).split("/")): x for p, x in jax.tree_util.tree_leaves_with_path(t)}

    shapes, shardings = by_path(abstract_params), by_path(param_shardings)
    depths = sorted({len(k) for k in shapes}, reverse=True)
    rep = replicated(mesh)

    def pick(path, leaf):
        names = tuple(sparsity.path_str(path).split("/"))
        for n in depths:
            param = shapes.get(names[-n:]) if len(names) >= n else None
            if param is not None and tuple(param.shape) == tuple(leaf.shape):
                return shardings[names[-n:]]
        return rep

    return jax.tree_util.tree_map_with_path(pick, tree)


def host_to_global(tree, shardings):
    """Host (numpy) arrays -> global arrays on `shardings`; each process fills only its own shards."""
    return jax.tree.map(
        lambda x, s: jax.make_array_from_callback(np.shape(x), s, lambda idx, x=x: np.asarray(x)[idx]),
        tree, shardings)
