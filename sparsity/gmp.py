"""Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune"): start dense, then every
few steps remove the smallest-magnitude weights across all sparse tensors so that the number of kept
weights follows a cubic decay to its final value; after the last prune the masks stay as they are.
`GmpSchedule` is the mask schedule `sparsity.sparse` runs; `gmp_masks` is one prune.

The kept count of each prune is a table of Python ints computed on the host in float64 (the
original's arithmetic, exactly), indexed inside jit by the prune number. The selection is RigL's
(sparsity/selection.py): a bisection over order-preserving keys that needs only counts, so each device
works on its own shards, and ties break by the lowest flat index (the sparse tensors one after
another in tree order), so every process, every mesh and every rerun prunes the same weights.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sparsity.masks import check_structure, is_none
from sparsity.schedule import MaskUpdate, is_update_step
from sparsity.selection import smallest


class GmpSchedule(NamedTuple):
    """When gradual magnitude pruning prunes, and how many weights it keeps (a mask schedule for
    `sparsity.sparse`, whose masks start all True, as `full_masks` makes them).

    The update after optimizer step `count` (1-based) prunes when start <= count <= end and
    (count - start) % period == 0: n = (end - start) / period + 1 prunes. After the i-th (i = 1..n)
    the sparse tensors together keep int(final_kept + (initial_kept - final_kept) * (1 - i/n)**3)
    weights (Zhu & Gupta's cubic; the original's warmup_steps is `start`, its max_steps -
    cooldown_steps is `end`), so the last prune leaves exactly `final_kept`. initial_kept None: every
    weight of the sparse tensors.
    """

    start: int
    end: int
    period: int
    final_kept: int
    initial_kept: int | None = None

    def check(self) -> None:
        """ValueError naming the bad field."""
        if self.period < 1:
            raise ValueError(f"GMP period must be >= 1, got {self.period}.")
        if self.start < 1:
            raise ValueError(f"GMP start must be >= 1 (the first prune follows that many updates), got {self.start}.")
        if self.end <= self.start or (self.end - self.start) % self.period:
            raise ValueError(f"GMP prunes from step {self.start} to step {self.end} every {self.period} steps: the "
                             f"pruning span {self.end - self.start} must be a positive multiple of the period.")
        if self.final_kept < 1:
            raise ValueError(f"GMP final_kept must be >= 1, got {self.final_kept}.")

    @property
    def num_prunes(self) -> int:
        return (self.end - self.start) // self.period + 1

    def is_update(self, count):
        return is_update_step(count, freq=self.period, start=self.start, end=self.end)

    def kept_counts(self, n_sparse: int) -> np.ndarray:
        """The kept count after each prune (host ints), for sparse tensors of n_sparse weights in all."""
        initial = n_sparse if self.initial_kept is None else self.initial_kept
        if not self.final_kept <= initial <= n_sparse:
            raise ValueError(f"GMP keeps {self.final_kept} of {initial} weights at the end, but the sparse tensors "
                             f"hold {n_sparse}: final_kept <= initial_kept <= {n_sparse} is needed.")
        return cubic_kept_counts(initial, self.final_kept, self.num_prunes)

    def kept_at(self, count, n_sparse: int):
        """int32: the count the prune at optimizer step `count` keeps (meaningful on prune steps)."""
        table = jnp.asarray(self.kept_counts(n_sparse), jnp.int32)
        return table[jnp.clip((count - self.start) // self.period, 0, self.num_prunes - 1)]

    def update(self, count, weights, masks, grads, inner_state) -> MaskUpdate:
        """Prune by the magnitude of `weights` (this step's updated weights) down to the schedule's kept
        count; the gradient and the inner state play no part, and pruned weights become 0."""
        del grads
        n_sparse = sum(math.prod(m.shape) for m in jax.tree.leaves(masks))  # static shapes
        masks = gmp_masks(weights, masks, self.kept_at(count, n_sparse))
        return MaskUpdate(masks, masks, inner_state)


def cubic_kept_counts(initial: int, final: int, num_prunes: int) -> np.ndarray:
    """Kept weights after the i-th of n prunes (i = 1..n): int(final + (initial - final) * (1 - i/n)**3).

    The original's formula, truncated as it was (int()); the last value is exactly `final`, and the
    values never increase.
    """
    if num_prunes < 1:
        raise ValueError(f"gradual pruning needs at least one prune, got {num_prunes}.")
    if not 0 < final <= initial:
        raise ValueError(f"the final kept count {final} must be in [1, {initial}] (the initial kept count).")
    counts = [int(final + (initial - final) * (1.0 - i / num_prunes) ** 3) for i in range(1, num_prunes + 1)]
    return np.asarray(counts, np.int64)


@jax.jit
def _prune(ws, ms, n_keep):
    n_active = sum(jnp.sum(m, dtype=jnp.int32) for m in ms)
    k = jnp.maximum(n_active - jnp.asarray(n_keep, jnp.int32), 0)
    inf = jnp.float32(jnp.inf)
    # The k smallest |w| among the active weights (inactive ones sort last), one ranking for all.
    dropped = smallest([jnp.where(m, jnp.abs(w).astype(jnp.float32), inf) for w, m in zip(ws, ms)],
                       [k] * len(ms), per_tensor=False)
    return [m & ~d for m, d in zip(ms, dropped)]


def gmp_masks(weights, masks, n_keep):
    """One magnitude prune -> new masks: the active weights with the smallest |w| (one ranking over all
    sparse tensors, ties by the lowest index) are switched off so that exactly `n_keep` stay on
    (nothing changes when `n_keep` is at least the active count). Masks of dense params stay None.
    Masked-off weights of the input need not be 0."""
    check_structure(masks, weights, "params")
    treedef = jax.tree_util.tree_structure(masks, is_leaf=is_none)
    ms, ws = treedef.flatten_up_to(masks), treedef.flatten_up_to(weights)
    idx = [i for i, m in enumerate(ms) if m is not None]
    for i in idx:
        if ms[i].shape != ws[i].shape:
            raise ValueError(f"mask/param shapes differ: {ms[i].shape}, {ws[i].shape}")
    if not idx:
        return masks
    pruned = _prune([ws[i] for i in idx], [ms[i] for i in idx], n_keep)
    new = list(ms)
    for i, m in zip(idx, pruned):
        new[i] = m
    return treedef.unflatten(new)


def maybe_gmp_masks(pred, weights, masks, n_keep):
    """gmp_masks under lax.cond(pred): the selection only runs on prune steps."""
    return jax.lax.cond(pred, lambda ops: gmp_masks(*ops), lambda ops: ops[1], (weights, masks, n_keep))
