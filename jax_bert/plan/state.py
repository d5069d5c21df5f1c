"""Bytes per device of what a step holds between steps, from shapes and shardings alone: the state
(params, Adam's moments, the masks, the rest of the optimizer state), the teachers' params and the batch.

A device holds one shard of each array: `sharding.shard_shape(shape)` (a dimension the mesh axis does
not divide is replicated, so every device holds the same shape). The same function reads a live state,
which is how the tests hold the plan to what `init_state` really allocates.
"""
from __future__ import annotations

import math

import jax
import numpy as np

import sparsity

KINDS = ("params", "moments", "masks", "optimizer_other", "teachers", "batch")


def itemsize(dtype) -> int:
    """Bytes of one element; a typed PRNG key counts its key data (two uint32 for threefry)."""
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return int(np.prod(jax.random.key_data(jax.random.key(0)).shape)) * 4
    return np.dtype(dtype).itemsize


def leaf_bytes(leaf, leaf_sharding=None) -> int:
    """Bytes of one device's shard of `leaf` (an array, or a ShapeDtypeStruct with `leaf_sharding`)."""
    s = leaf_sharding if leaf_sharding is not None else getattr(leaf, "sharding", None)
    shape = s.shard_shape(tuple(leaf.shape)) if s is not None else tuple(leaf.shape)
    return math.prod(shape) * itemsize(leaf.dtype)


def kind_of(name: str, leaf) -> str:
    """Which part of the state a leaf at path `name` ("params/...", "opt_state/...") is."""
    if name.startswith("params/"):
        return "params"
    if name.startswith("opt_state/") and leaf.dtype == np.bool_:
        return "masks"
    if name.startswith("opt_state/") and len(leaf.shape) > 0 and jax.numpy.issubdtype(leaf.dtype, np.floating):
        return "moments"
    return "optimizer_other"  # counts, schedules' hyperparameters, the step, the rng


def state_bytes(state, shardings=None) -> dict[str, int]:
    """{params, moments, masks, optimizer_other: bytes per device} of a train state {step, params,
    opt_state, rng} (abstract with `shardings`, or live)."""
    out = dict.fromkeys(KINDS[:4], 0)
    flat_shardings = dict(jax.tree_util.tree_leaves_with_path(shardings)) if shardings is not None else {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        out[kind_of(sparsity.path_str(path), leaf)] += leaf_bytes(leaf, flat_shardings.get(path))
    return out


def tree_bytes(tree, shardings=None) -> int:
    """Bytes per device of any tree of arrays (teachers' params, a batch)."""
    flat = dict(jax.tree_util.tree_leaves_with_path(shardings)) if shardings is not None else {}
    return sum(leaf_bytes(leaf, flat.get(path)) for path, leaf in jax.tree_util.tree_leaves_with_path(tree))
