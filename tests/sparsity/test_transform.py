"""sparsity.sparse: any optax optimizer with masks in its state, static, RigL or a mask schedule of the
test's own, checked against the wrapped optimizer alone and against rigl_masks on the same numbers."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparsity as sp

RULES = [(r"^enc/.*kernel$", 0.75, -2), (r"^emb$", 0.5, -1)]


def toy_params(seed=0):
    r = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(r.normal(size=s), jnp.float32)  # noqa: E731
    return {"emb": f(12, 8), "enc": {"a": {"kernel": f(8, 16), "bias": f(16)}, "b": {"kernel": f(2, 16, 8)}},
            "head": {"kernel": f(8, 3)}}


def grads_at(params, seed):
    r = np.random.default_rng(1000 + seed)
    return jax.tree.map(lambda x: jnp.asarray(r.normal(size=x.shape), jnp.float32), params)


def masks_fn(params):
    return sp.init_masks(jax.random.key(0), params, sp.SparsitySpec(rules=RULES))


def kept_counts(masks):
    return [int(np.asarray(m).sum()) for m in jax.tree.leaves(masks)]


@pytest.mark.parametrize("inner", [optax.adamw(1e-2), optax.sgd(0.1, momentum=0.9)], ids=["adamw", "sgd"])
def test_static_masks_zero_the_off_weights_and_follow_the_inner_optimizer(inner):
    tx = sp.sparse(inner, masks_fn)
    params = toy_params()
    state = tx.init(params)
    masks = sp.get_masks(state)
    params = sp.apply_masks(params, masks)
    ref_params, ref_state = params, inner.init(params)
    update = jax.jit(tx.update)
    for i in range(4):
        g = grads_at(params, i)
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
        # The reference: the inner optimizer alone, then the masks applied to the new params.
        ref_updates, ref_state = inner.update(g, ref_state, ref_params)
        ref_params = sp.apply_masks(optax.apply_updates(ref_params, ref_updates), masks)
        assert sp.masked_nonzero(params, masks) == 0
    for path, x in sp.named_leaves(params):
        np.testing.assert_allclose(x, dict(sp.named_leaves(ref_params))[path], rtol=1e-6, atol=1e-7, err_msg=path)
    assert int(state.count) == 4
    for a, b in zip(jax.tree.leaves(masks), jax.tree.leaves(sp.get_masks(state))):  # static: unchanged
        np.testing.assert_array_equal(a, b)
    assert sp.get_masks(state)["head"]["kernel"] is None and sp.get_masks(state)["enc"]["a"]["bias"] is None


def test_rigl_updates_on_its_schedule_with_rigl_masks_numbers():
    schedule = sp.RiglSchedule(update_freq=2, start=2, end=10, drop_fraction=0.3, mode="global")
    inner = optax.adam(1e-2)
    tx = sp.sparse(inner, masks_fn, schedule)
    params = toy_params(1)
    state = tx.init(params)
    params = sp.apply_masks(params, sp.get_masks(state))
    update = jax.jit(tx.update)
    changed_at = []
    for i in range(6):
        g = grads_at(params, i)
        before_masks, before_inner = sp.get_masks(state), state.inner_state
        updates, state = update(g, state, params)
        new_params = optax.apply_updates(params, updates)
        masks = sp.get_masks(state)
        # Reference: the inner update, the masks, then RigL on the updated weights and the dense grads.
        inner_updates, _ = inner.update(g, before_inner, params)
        updated = sp.apply_masks(optax.apply_updates(params, inner_updates), before_masks)
        count = i + 1
        if count % 2 == 0:
            want_masks, regrown = sp.rigl_masks(updated, before_masks, g, schedule.fraction(count), mode="global")
        else:
            want_masks, regrown = before_masks, sp.no_regrowth(before_masks)
        for a, b in zip(jax.tree.leaves(want_masks), jax.tree.leaves(masks)):
            np.testing.assert_array_equal(a, b)
        keep = jax.tree.map(lambda m, r: None if m is None else m & ~r, want_masks, regrown,
                            is_leaf=lambda x: x is None)
        for (path, x), (_, y) in zip(sp.named_leaves(new_params), sp.named_leaves(sp.apply_masks(updated, keep))):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7, err_msg=path)
        assert sp.masked_nonzero(new_params, masks) == 0
        assert sum(kept_counts(masks)) == sum(kept_counts(before_masks))  # global mode: total density exact
        if any(bool(np.any(a != b)) for a, b in zip(jax.tree.leaves(masks), jax.tree.leaves(before_masks))):
            changed_at.append(count)
        params = new_params
    assert changed_at == [2, 4, 6]


def test_rigl_resets_the_regrown_moments_of_the_inner_adam():
    schedule = sp.RiglSchedule(update_freq=1, start=1, end=10, drop_fraction=0.5, mode="per_tensor",
                               reset_moments=True)
    tx = sp.sparse(optax.adam(1e-2), masks_fn, schedule)
    params = toy_params(2)
    state = tx.init(params)
    params = sp.apply_masks(params, sp.get_masks(state))
    before = sp.get_masks(state)
    _, state = tx.update(grads_at(params, 0), state, params)
    adam = state.inner_state[0]
    grown = 0
    mu, nu = dict(sp.named_leaves(adam.mu)), dict(sp.named_leaves(adam.nu))
    for (path, m0), (_, m1) in zip(sp.named_leaves(before), sp.named_leaves(sp.get_masks(state))):
        new = np.asarray(m1) & ~np.asarray(m0)
        grown += int(new.sum())
        assert np.all(np.asarray(mu[path])[new] == 0) and np.all(np.asarray(nu[path])[new] == 0), path
        kept = np.asarray(m1) & np.asarray(m0)
        assert np.all(np.asarray(mu[path])[kept] != 0), path  # the others keep their moments
    assert grown > 0


def test_masks_are_found_through_wrappers_and_dense_training_has_none():
    params = toy_params()
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     sp.sparse(optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3), masks_fn))
    state = tx.init(params)
    assert isinstance(sp.find_state(state), sp.SparseState)
    assert kept_counts(sp.get_masks(state)) == kept_counts(masks_fn(params))
    assert sp.get_masks(optax.adamw(1e-3).init(params)) is None
    with pytest.raises(ValueError, match="needs the params"):
        sp.sparse(optax.sgd(0.1), masks_fn).update(params, sp.sparse(optax.sgd(0.1), masks_fn).init(params))
    with pytest.raises(ValueError, match="update_freq"):
        sp.sparse(optax.sgd(0.1), masks_fn, sp.RiglSchedule(update_freq=0, end=10))


class PruneNegativeAtTwo:
    """A mask schedule of this test's own: update 2 switches off every weight the update leaves negative."""

    def __init__(self, bad=False):
        self.bad = bad

    def check(self):
        if self.bad:
            raise ValueError("bad schedule")

    def is_update(self, count):
        return count == 2

    def update(self, count, weights, masks, grads, inner_state):
        masks = jax.tree.map(lambda m, w: None if m is None else m & (w >= 0), masks, weights,
                             is_leaf=lambda x: x is None)
        return sp.MaskUpdate(masks, masks, inner_state)


def test_any_mask_schedule_runs_on_its_steps_on_the_updated_weights():
    inner = optax.sgd(0.1)
    with pytest.raises(ValueError, match="bad schedule"):  # checked when the optimizer is built
        sp.sparse(inner, masks_fn, PruneNegativeAtTwo(bad=True))
    tx = sp.sparse(inner, masks_fn, PruneNegativeAtTwo())
    params = toy_params(3)
    state = tx.init(params)
    params = sp.apply_masks(params, sp.get_masks(state))
    for count in (1, 2, 3):
        g = grads_at(params, count)
        before = sp.get_masks(state)
        updates, state = tx.update(g, state, params)
        updated = sp.apply_masks(optax.apply_updates(params, inner.update(g, inner.init(params), params)[0]), before)
        params = optax.apply_updates(params, updates)
        want = PruneNegativeAtTwo().update(count, updated, before, g, None).masks if count == 2 else before
        for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(sp.get_masks(state))):
            np.testing.assert_array_equal(a, b)
        assert sp.masked_nonzero(params, sp.get_masks(state)) == 0
    assert sum(kept_counts(sp.get_masks(state))) < sum(kept_counts(masks_fn(params)))
