"""RigL (Evci et al. 2020, "Rigging the Lottery"): drop small weights, regrow by gradient.

`RiglSchedule` is the mask schedule `sparsity.sparse` runs (when to update, the decaying drop
fraction, the moment reset); `rigl_masks` is one update of the masks. Everything here is pure and
jittable with static shapes. The counts depend on traced masks, so both the drop and the regrowth
are the count-only selection of sparsity/selection.py (no sort, no gather: each device works on its
own shards), ties broken by the lowest flat index, so every process, every mesh and every rerun
picks the same weights.

Counts: in each group (a tensor slice in per_tensor mode, everything in global mode)
k = floor(drop_frac * n_active), computed in float32 (exact while n_active < 2**24; above
that it may differ from the exact floor by a few weights, identically everywhere).
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from sparsity.masks import check_structure, is_none
from sparsity.schedule import MaskUpdate, is_update_step
from sparsity.selection import group_counts, smallest

MODES = ("global", "per_tensor")


class RiglSchedule(NamedTuple):
    """When and how RigL changes the masks (a mask schedule for `sparsity.sparse`).

    The update after optimizer step `count` (1-based: the number of updates applied once it is
    done) changes the masks when start <= count <= end and (count - start) % update_freq == 0.
    drop_fraction is the initial fraction of active weights replaced, decayed by `schedule`
    (the original's cosine, exactly drop_fraction at the first update `start` and 0 at `end`; or
    'constant'; see `drop_fraction`). accumulation: the original's gradient-accumulation steps, which set
    the clock of its cosine (it counted training_step calls, one per micro-batch); 1 when it had none.
    It is a property of the recipe being reproduced, not of how this run splits its batch. mode:
    'global' (one ranking over all sparse tensors) or 'per_tensor'. reset_moments zeroes the inner
    optimizer's Adam moments of regrown weights; reinit_when_same also restarts from 0 a weight pruned
    and regrown in the same update.
    """

    update_freq: int = 100
    start: int = 100
    end: int = 1
    drop_fraction: float = 0.3
    schedule: str = "cosine"
    mode: str = "global"
    reset_moments: bool = False
    reinit_when_same: bool = False
    accumulation: int = 1

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
        if self.accumulation < 1:
            raise ValueError(f"RigL accumulation must be >= 1 (the original's accumulation steps), "
                             f"got {self.accumulation}.")

    def is_update(self, count):
        return is_update_step(count, freq=self.update_freq, start=self.start, end=self.end)

    def fraction(self, count):
        return drop_fraction(count, initial=self.drop_fraction, schedule=self.schedule, end=self.end,
                             warmup=self.start, accumulation=self.accumulation)

    def update(self, count, weights, masks, grads, inner_state) -> MaskUpdate:
        """Prune by the magnitude of `weights` (this step's updated weights), regrow by the dense `grads`;
        regrown weights start again from 0 (and from zero moments with reset_moments)."""
        masks, regrown = rigl_masks(weights, masks, grads, self.fraction(count), mode=self.mode,
                                    reinit_when_same=self.reinit_when_same)
        keep = jax.tree.map(lambda m, r: None if m is None else m & ~r, masks, regrown, is_leaf=is_none)
        if self.reset_moments:
            inner_state = reset_moments(inner_state, regrown)
        return MaskUpdate(masks, keep, inner_state)


def drop_fraction(step, *, initial: float = 0.3, schedule: str = "cosine", end: int | None = None,
                  warmup: int = 0, accumulation: int = 1):
    """Fraction of active weights to drop at the update after optimizer step ``step``.

    cosine: the original's CosineDecayPruneScheduler (its prune_scheduler.py),
        initial / 2 * (1 + cos(pi * (t - warmup) / (T - warmup - 1))),  t = step * accumulation,
        T = end * accumulation,
    where t counts its training_step calls (one per micro-batch) before the update at ``step`` and
    warmup is its first update step (its default: prune_freq): exactly ``initial`` at the first update,
    0 before it and 0 from t = T - 1 on (the original's last call; ours clips there, so an update at
    ``end`` drops nothing). constant: initial.
    The integers are exact; the ratio and the cosine are float32 (within 1e-7 of float64).
    """
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"unknown drop-fraction schedule {schedule!r}; use 'cosine' or 'constant'")
    if not 0.0 <= initial <= 1.0:
        raise ValueError(f"initial drop fraction {initial} is outside [0, 1]")
    step = jnp.asarray(step, jnp.int32)
    if schedule == "constant":
        return jnp.full(step.shape, initial, jnp.float32)
    if end is None or end <= 0:
        raise ValueError(f"cosine drop-fraction schedule needs end > 0 (the step it reaches 0), got {end}")
    if accumulation < 1 or warmup < 0:
        raise ValueError(f"cosine drop-fraction schedule needs accumulation >= 1 and warmup >= 0, got "
                         f"{accumulation} and {warmup}")
    span = max(int(end) * int(accumulation) - int(warmup) - 1, 1)  # T - warmup - 1, never 0
    t = step * int(accumulation) - int(warmup)
    ratio = jnp.clip(t, 0, span).astype(jnp.float32) / jnp.float32(span)
    return jnp.where(t < 0, jnp.float32(0.0), 0.5 * initial * (1.0 + jnp.cos(jnp.float32(math.pi) * ratio)))


@functools.partial(jax.jit, static_argnums=(4, 5))
def _select(ws, ms, gs, drop_frac, per_tensor, reinit_when_same):
    """RigL on lists of tensors: (new masks, regrown masks)."""
    n_active = group_counts(ms, per_tensor)
    k = [jnp.floor(drop_frac * n.astype(jnp.float32)).astype(jnp.int32) for n in n_active]
    inf = jnp.float32(jnp.inf)
    # Drop: the k smallest |w| among active weights (inactive ones sort last).
    dropped = smallest([jnp.where(m, jnp.abs(w).astype(jnp.float32), inf) for w, m in zip(ws, ms)], k, per_tensor)
    kept = [m & ~d for m, d in zip(ms, dropped)]
    # Grow: the k largest |grad| among weights inactive after the drop; a just-dropped weight is a
    # candidate, as in the RigL code.
    grown = smallest([jnp.where(c, inf, -jnp.abs(g).astype(jnp.float32)) for g, c in zip(gs, kept)], k,
                     per_tensor)
    # Regrown = new connections (they start at 0; their moments may be reset). A weight dropped and
    # regrown in the same step keeps its value unless reinit_when_same (RigL's flag of that name).
    regrown = grown if reinit_when_same else [g & ~m for g, m in zip(grown, ms)]
    return [c | g for c, g in zip(kept, grown)], regrown


def rigl_masks(weights, masks, grads, drop_frac, *, mode: str = "global",
               reinit_when_same: bool = False):
    """One RigL mask update -> (new_masks, regrown_masks).

    Prunes the floor(drop_frac * n_active) smallest-|w| active weights and regrows as many
    weights with the largest |grad| among those inactive after the drop; density is exactly
    unchanged (per tensor slice in per_tensor mode, overall in global mode). `regrown_masks`
    marks the weights that start again from 0 (None for dense params): the caller keeps a
    weight's value where `new_masks & ~regrown_masks` and zeroes it elsewhere.

    mode="per_tensor": each [in, out] slice of a tensor (leading axes, e.g. the scanned
    layer axis, are batch axes) is its own group, so a scanned and an unscanned model
    update identically. mode="global": one ranking over all sparse tensors, in tree order.
    Every step works on each tensor where it lies: on a mesh, only scalar counts (per group)
    cross devices. Masked-off weights of the input need not be 0.
    """
    if mode not in MODES:
        raise ValueError(f"unknown RigL mode {mode!r}; use one of {MODES}")
    check_structure(masks, weights, "params")
    check_structure(masks, grads, "grads")
    treedef = jax.tree_util.tree_structure(masks, is_leaf=is_none)
    ms = treedef.flatten_up_to(masks)
    ws = treedef.flatten_up_to(weights)
    gs = treedef.flatten_up_to(grads)
    idx = [i for i, m in enumerate(ms) if m is not None]
    for i in idx:
        if ms[i].shape != ws[i].shape or gs[i].shape != ws[i].shape:
            raise ValueError(f"mask/param/grad shapes differ: {ms[i].shape}, {ws[i].shape}, "
                             f"{gs[i].shape}")
    if not idx:
        return masks, masks
    f = jnp.clip(jnp.asarray(drop_frac, jnp.float32), 0.0, 1.0)
    new_sparse, regrown_sparse = _select([ws[i] for i in idx], [ms[i] for i in idx], [gs[i] for i in idx], f,
                                         mode == "per_tensor", reinit_when_same)
    new_m, regrown = list(ms), [None] * len(ms)
    for i, m, r in zip(idx, new_sparse, regrown_sparse):
        new_m[i], regrown[i] = m, r
    return treedef.unflatten(new_m), treedef.unflatten(regrown)


def no_regrowth(masks):
    """All-False regrown-mask tree (None for dense params): the 'no update' branch."""
    return jax.tree.map(lambda m: None if m is None else jnp.zeros_like(m), masks, is_leaf=is_none)


def maybe_rigl_masks(pred, weights, masks, grads, drop_frac, *, mode: str = "global",
                     reinit_when_same: bool = False):
    """rigl_masks under lax.cond(pred): the selection only runs on update steps."""
    def update(operands):
        w, m, g, f = operands
        return rigl_masks(w, m, g, f, mode=mode, reinit_when_same=reinit_when_same)

    def skip(operands):
        _, m, _, _ = operands
        return m, no_regrowth(m)

    return jax.lax.cond(pred, update, skip, (weights, masks, grads, drop_frac))


def reset_moments(opt_state, regrown_masks):
    """Zero Adam's mu and nu (ScaleByAdamState) at regrown weights, anywhere in opt_state.

    Works for plain, chained (adamw) and inject_hyperparams states, and for optax.masked
    states (MaskedNode leaves are left alone). Other state (counts, other transforms) is
    returned unchanged.
    """
    def zero(m, x):
        if m is None or not hasattr(x, "shape") or x.shape != m.shape:
            return x
        return jnp.where(m, jnp.zeros((), x.dtype), x)

    def fix(node):
        if not isinstance(node, optax.ScaleByAdamState):
            return node
        check_structure(regrown_masks, node.mu, "Adam's mu")
        mu = jax.tree.map(zero, regrown_masks, node.mu, is_leaf=is_none)
        nu = jax.tree.map(zero, regrown_masks, node.nu, is_leaf=is_none)
        return node._replace(mu=mu, nu=nu)

    return jax.tree.map(fix, opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
