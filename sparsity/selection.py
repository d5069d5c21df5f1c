"""Count-only selection: which k scores of each group are the smallest, found without a sort.

RigL's prune and regrow and gradual magnitude pruning all pick "the k smallest" of traced scores
with a traced k, so a static top_k does not apply, and a sort, a cumulative sum or a gather over
sharded tensors would pull them onto every device (and XLA's CPU sort is single-threaded). Here
each group's k-th smallest score is found by a bisection over order-preserving integer keys that
needs only counts of "keys at or below v"; when the threshold is tied, a second bisection over the
element indices takes the lowest-indexed ties, again from counts alone. Each device works on its
own shards and only per-group counts cross devices (small all-reduces). Ties break by the lowest
index (row-major in each [in, out] slice, or the tensors one after another in global mode), so
every process, every mesh and every rerun picks the same weights. Pure and jittable.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def group_counts(preds, per_tensor: bool):
    """Number of True entries of each group, one array per tensor that broadcasts against it: per
    [in, out] slice (the last two axes) in per-tensor mode, over every tensor together in global mode.
    Only these counts cross devices when the tensors are sharded (small all-reduces)."""
    if per_tensor:
        return [jnp.sum(p, axis=(-2, -1), keepdims=True, dtype=jnp.int32) for p in preds]
    total = sum(jnp.sum(p, dtype=jnp.int32) for p in preds)
    return [total] * len(preds)


def smallest(scores, k, per_tensor: bool):
    """Bool per tensor: the k smallest scores of each group, ties broken by the lowest index (the
    row-major order of each [in, out] slice, or of the tensors one after another in global mode).

    scores: float arrays (compared as float32, -0.0 as +0.0); k: int32 per group, shaped as
    `group_counts` returns them. No sort and no gather: a bisection over the 2**32 values of
    order-preserving keys finds each group's k-th smallest key from counts alone, then a second
    bisection over the element indices takes the lowest-indexed ties at that key, again from counts.
    """
    keys = [_order_keys(s) for s in scores]
    zeros = [jnp.zeros_like(c) for c in k]

    def k_at_or_below(values):  # per group: do at least k keys lie at or below its value?
        counts = group_counts([key <= v for key, v in zip(keys, values)], per_tensor)
        return [c >= n for c, n in zip(counts, k)]

    threshold = _bisect([jnp.zeros_like(z, jnp.uint32) for z in zeros],
                        [jnp.full_like(z, 2**32 - 1, jnp.uint32) for z in zeros], 32, k_at_or_below)
    below = [key < t for key, t in zip(keys, threshold)]
    at = [key == t for key, t in zip(keys, threshold)]
    room = [n - c for n, c in zip(k, group_counts(below, per_tensor))]  # ties to take, per group
    if per_tensor:
        index = [_flat_index(s.shape, (s.ndim - 2, s.ndim - 1)) for s in scores]
        size = max(s.shape[-1] * s.shape[-2] for s in scores)
    else:
        offsets = np.cumsum([0] + [s.size for s in scores])
        index = [_flat_index(s.shape, tuple(range(s.ndim)), int(o)) for s, o in zip(scores, offsets)]
        size = int(offsets[-1])
    if size >= 2**31 - 1:  # the int32 element indices would overflow
        raise ValueError(f"the selection ranks groups of up to {2**31 - 2} weights; this group has {size}.")

    def room_below(bounds):  # per group: are there `room` ties with an index below its bound?
        counts = group_counts([a & (i < b) for a, i, b in zip(at, index, bounds)], per_tensor)
        return [c >= r for c, r in zip(counts, room)]

    def lowest_ties(_):  # the smallest bound with `room` ties below it: exactly `room` ties are taken
        bound = _bisect(zeros, [z + size for z in zeros], max(1, size.bit_length()), room_below)
        return [b | (a & (i < j)) for b, a, i, j in zip(below, at, index, bound)]

    # Usually every group takes all of its ties (continuous magnitudes rarely tie); the index
    # bisection is then skipped.
    take_all = functools.reduce(jnp.logical_and, [jnp.all(r == c) for r, c in zip(room, group_counts(at, per_tensor))])
    return jax.lax.cond(take_all, lambda _: [b | a for b, a in zip(below, at)], lowest_ties, None)


def _order_keys(scores):
    """uint32 keys with the order of the float32 scores (-0.0 counted as +0.0)."""
    bits = jax.lax.bitcast_convert_type(scores.astype(jnp.float32) + 0.0, jnp.int32)
    flipped = jnp.where(bits >= 0, bits ^ jnp.int32(-2**31), ~bits)
    return jax.lax.bitcast_convert_type(flipped, jnp.uint32)


def _flat_index(shape, axes, offset: int = 0):
    """int32 row-major index of every element over `axes` (+ offset), built from iotas: a sharded
    tensor computes its part shard by shard, nothing is gathered."""
    index = jnp.full(shape, offset, jnp.int32)
    stride = 1
    for axis in reversed(axes):
        index = index + jax.lax.broadcasted_iota(jnp.int32, shape, axis) * stride
        stride *= shape[axis]
    return index


def _bisect(lo, hi, steps: int, enough):
    """The smallest value v in [lo, hi] per group with enough(v) true (monotone), by `steps` halvings."""
    def halve(_, bounds):
        lo, hi = bounds
        mid = [low + (high - low) // 2 for low, high in zip(lo, hi)]
        ok = enough(mid)
        return ([jnp.where(e, low, m + 1) for e, low, m in zip(ok, lo, mid)],
                [jnp.where(e, m, high) for e, m, high in zip(ok, mid, hi)])

    return jax.lax.fori_loop(0, steps, halve, (lo, hi))[0]
