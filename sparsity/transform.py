"""Sparse training as an optax transformation: wrap any optimizer; its state holds the masks.

    tx = sparsity.sparse(optax.adamw(1e-3), masks_fn=lambda p: sparsity.init_masks(key, p, spec),
                         schedule=sparsity.RiglSchedule(update_freq=100, start=100, end=10_000))
    opt_state = tx.init(params)
    params = sparsity.apply_masks(params, sparsity.get_masks(opt_state))   # start sparse
    updates, opt_state = tx.update(grads, opt_state, params)               # grads: dense
    params = optax.apply_updates(params, updates)

So the train step is the same for dense and sparse training. After every update each masked-off
weight is exactly 0: where a weight is off, the update is `-param` (and `p + (-p)` is exactly 0).
Without a schedule the masks are static. With one (sparsity/schedule.py: RiglSchedule,
GmpSchedule), on its update steps (`lax.cond`, so other steps pay nothing) the schedule sees the
weights as they are after this step's update and the dense gradient, and returns the new masks:
RigL prunes by magnitude and regrows by gradient at constant density; gradual magnitude pruning
(masks from `full_masks`: training starts dense) only switches off the smallest weights, so that
the kept count follows its cubic schedule. The shape follows jaxpruner's `wrap_optax`. Masks are
reached with `get_masks(opt_state)` for statistics, export and checkpoints.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sparsity.masks import apply_masks, is_none
from sparsity.schedule import MaskSchedule, MaskUpdate


class SparseState(NamedTuple):
    inner_state: Any  # the wrapped optimizer's state
    masks: Any  # bool arrays shaped like the sparse params, None where a param is dense
    count: jax.Array  # int32: updates applied so far


def sparse(inner: optax.GradientTransformation, masks_fn: Callable[[Any], Any],
           schedule: MaskSchedule | None = None) -> optax.GradientTransformation:
    """`inner` with masks: static, or changed on the steps of `schedule` (RiglSchedule, GmpSchedule).

    masks_fn(params) -> the initial mask tree (e.g. `init_masks(key, params, spec)`, or for GMP
    `full_masks(params, rules)`); it is called once, by `init`.
    """
    if schedule is not None:
        schedule.check()

    def init(params):
        return SparseState(inner.init(params), masks_fn(params), jnp.zeros([], jnp.int32))

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("sparsity.sparse needs the params in update(grads, state, params).")
        updates, inner_state = inner.update(grads, state.inner_state, params)
        count = state.count + 1
        masks, keep = state.masks, state.masks
        if schedule is not None:
            # The schedule ranks the weights as this update leaves them (the old masks applied); it runs
            # under lax.cond, so steps off its schedule pay nothing for it.
            updated = apply_masks(optax.apply_updates(params, updates), masks)
            masks, keep, inner_state = jax.lax.cond(schedule.is_update(count), schedule.update, _unchanged,
                                                    count, updated, masks, grads, inner_state)
        return _zero_outside(updates, params, keep), SparseState(inner_state, masks, count)

    return optax.GradientTransformation(init, update)


def _unchanged(count, weights, masks, grads, inner_state) -> MaskUpdate:
    """The no-update branch: the masks, and so the weights that keep their values, stay as they are."""
    del count, weights, grads
    return MaskUpdate(masks, masks, inner_state)


def _zero_outside(updates, params, keep):
    """The updates, and -param wherever `keep` is False: those weights become exactly 0."""
    def f(k, u, p):
        return u if k is None else jnp.where(k, u, -p.astype(u.dtype))

    return jax.tree.map(f, keep, updates, params, is_leaf=is_none)


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
