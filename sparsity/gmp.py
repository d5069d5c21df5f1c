"""Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune"): start dense, then every
few steps remove the smallest-magnitude weights across all sparse tensors so that the number of kept
weights follows a cubic decay to its final value; after the last prune the masks stay as they are.

The kept count of each prune is a table of Python ints computed on the host in float64 (the
original's arithmetic, exactly), indexed inside jit by the prune number. The selection is RigL's
(sparsity/selection.py): a bisection over order-preserving keys that needs only counts, so each device
works on its own shards, and ties break by the lowest flat index (the sparse tensors one after
another in tree order), so every process, every mesh and every rerun prunes the same weights.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sparsity.masks import _check_structure, _is_none
from sparsity.selection import smallest


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
    _check_structure(masks, weights, "params")
    treedef = jax.tree_util.tree_structure(masks, is_leaf=_is_none)
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
