"""Sparse training as an optax transformation: wrap any optimizer; its state holds the masks.

    tx = sparsity.sparse(optax.adamw(1e-3), masks_fn=lambda p: sparsity.init_masks(key, p, spec),
                         rigl=sparsity.RiglSchedule(update_freq=100, start=100, end=10_000))
    opt_state = tx.init(params)
    params = sparsity.apply_masks(params, sparsity.get_masks(opt_state))   # start sparse
    updates, opt_state = tx.update(grads, opt_state, params)               # grads: dense
    params = optax.apply_updates(params, updates)

So the train step is the same for dense and sparse training. After every update each masked-off
weight is exactly 0: where a weight is off, the update is `-param` (and `p + (-p)` is exactly 0).
On RigL's schedule (`lax.cond`, so other steps pay nothing) the masks change: the weights are
ranked by the magnitude they have after this step's update, and regrown by the dense gradient
this update receives; density stays exactly what it was. With gradual magnitude pruning instead
(`gmp=GmpSchedule(...)`, masks from `full_masks`: training starts dense) the masks only lose weights:
on its schedule the smallest-magnitude weights after this step's update are switched off so that
the kept count follows the cubic schedule. The shape follows jaxpruner's `wrap_optax`. Masks are
reached with `get_masks(opt_state)` for statistics, export and checkpoints.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sparsity.gmp import cubic_kept_counts, maybe_gmp_masks
from sparsity.masks import _is_none, apply_masks
from sparsity.rigl import MODES, drop_fraction, is_update_step, maybe_rigl_masks, reset_moments


class RiglSchedule(NamedTuple):
    """When and how RigL changes the masks.

    The update after optimizer step `count` (1-based: the number of updates applied once it is
    done) changes the masks when start <= count <= end and (count - start) % update_freq == 0.
    drop_fraction is the initial fraction of active weights replaced, decayed by `schedule`
    ('cosine' to 0 at `end`, or 'constant'). mode: 'global' (one ranking over all sparse tensors)
    or 'per_tensor'. reset_moments zeroes the inner optimizer's Adam moments of regrown weights;
    reinit_when_same also restarts from 0 a weight pruned and regrown in the same update.
    """

    update_freq: int = 100
    start: int = 100
    end: int = 1
    drop_fraction: float = 0.3
    schedule: str = "cosine"
    mode: str = "global"
    reset_moments: bool = False
    reinit_when_same: bool = False

    def check(self) -> None:
        """ValueError naming the bad field; RigL that would never update is an error too."""
        if self.update_freq < 1:
            raise ValueError(f"RigL update_freq must be >= 1, got {self.update_freq}: RigL would never update.")
        if self.start < 0 or self.end <= self.start:
            raise ValueError(f"RigL end step {self.end} is not after start {self.start}: RigL would never update.")
        if not 0.0 < self.drop_fraction < 1.0:
            raise ValueError(f"RigL drop_fraction must be in (0, 1), got {self.drop_fraction}.")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"RigL schedule must be 'cosine' or 'constant', got {self.schedule!r}.")
        if self.mode not in MODES:
            raise ValueError(f"RigL mode must be one of {MODES}, got {self.mode!r}.")

    def is_update(self, count):
        return is_update_step(count, freq=self.update_freq, start=self.start, end=self.end)

    def fraction(self, count):
        return drop_fraction(count, initial=self.drop_fraction, schedule=self.schedule, end=self.end)


class GmpSchedule(NamedTuple):
    """When gradual magnitude pruning prunes, and how many weights it keeps.

    The update after optimizer step `count` (1-based) prunes when start <= count <= end and
    (count - start) % period == 0: n = (end - start) / period + 1 prunes. After the i-th (i = 1..n)
    the sparse tensors together keep int(final_kept + (initial_kept - final_kept) * (1 - i/n)**3)
    weights (Zhu & Gupta's cubic; the original's warmup_steps is `start`, its max_steps -
    cooldown_steps is `end`), so the last prune leaves exactly `final_kept`. initial_kept None: every
    weight of the sparse tensors (the masks start all True, as `full_masks` makes them).
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


class SparseState(NamedTuple):
    inner_state: Any  # the wrapped optimizer's state
    masks: Any  # bool arrays shaped like the sparse params, None where a param is dense
    count: jax.Array  # int32: updates applied so far


def sparse(inner: optax.GradientTransformation, masks_fn: Callable[[Any], Any],
           rigl: RiglSchedule | None = None, gmp: GmpSchedule | None = None) -> optax.GradientTransformation:
    """`inner` with masks: static, or changed by RigL or by gradual magnitude pruning on its schedule.

    masks_fn(params) -> the initial mask tree (e.g. `init_masks(key, params, spec)`, or for GMP
    `full_masks(params, rules)`); it is called once, by `init`.
    """
    if rigl is not None and gmp is not None:
        raise ValueError("sparsity.sparse takes RigL or gradual magnitude pruning, not both.")
    if rigl is not None:
        rigl.check()
    if gmp is not None:
        gmp.check()

    def init(params):
        return SparseState(inner.init(params), masks_fn(params), jnp.zeros([], jnp.int32))

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("sparsity.sparse needs the params in update(grads, state, params).")
        updates, inner_state = inner.update(grads, state.inner_state, params)
        count = state.count + 1
        masks, keep = state.masks, state.masks
        if rigl is not None:
            # Rank by the magnitude each weight has after this update, regrow by the dense gradient.
            updated = apply_masks(optax.apply_updates(params, updates), masks)
            masks, regrown = maybe_rigl_masks(rigl.is_update(count), updated, masks, grads,
                                              rigl.fraction(count), mode=rigl.mode,
                                              reinit_when_same=rigl.reinit_when_same)
            keep = jax.tree.map(lambda m, r: None if m is None else m & ~r, masks, regrown, is_leaf=_is_none)
            if rigl.reset_moments:
                inner_state = reset_moments(inner_state, regrown)
        if gmp is not None:
            # Prune by the magnitude each weight has after this update; pruned weights become 0 below.
            updated = apply_masks(optax.apply_updates(params, updates), masks)
            n_sparse = sum(math.prod(m.shape) for m in jax.tree.leaves(masks))  # static shapes
            masks = maybe_gmp_masks(gmp.is_update(count), updated, masks, gmp.kept_at(count, n_sparse))
            keep = masks
        return _zero_outside(updates, params, keep), SparseState(inner_state, masks, count)

    return optax.GradientTransformation(init, update)


def _zero_outside(updates, params, keep):
    """The updates, and -param wherever `keep` is False: those weights become exactly 0."""
    def f(k, u, p):
        return u if k is None else jnp.where(k, u, -p.astype(u.dtype))

    return jax.tree.map(f, keep, updates, params, is_leaf=_is_none)


def find_state(opt_state) -> SparseState | None:
    """The SparseState inside an optimizer state (at any depth), or None for dense training."""
    found = [x for x in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, SparseState))
             if isinstance(x, SparseState)]
    if len(found) > 1:
        raise ValueError("the optimizer state holds more than one sparsity.sparse state.")
    return found[0] if found else None


def get_masks(opt_state):
    """The current mask tree of a sparse optimizer state, or None for dense training."""
    state = find_state(opt_state)
    return None if state is None else state.masks
