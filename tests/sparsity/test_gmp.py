"""Gradual magnitude pruning: the cubic kept counts against the original's arithmetic, the global
magnitude prune against a brute-force numpy reference (ties included), and the optax transformation
step by step (kept count on the schedule at every prune step, pruned weights stay 0, final count exact)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparsity as sp

RULES = [(r"^enc/.*kernel$", None, -2), (r"^emb$", None, -1)]


def toy_params(seed=0, quantize=False):
    r = np.random.default_rng(seed)

    def f(*shape):
        x = r.integers(-3, 4, shape) if quantize else r.normal(size=shape)  # quantized: many ties
        return jnp.asarray(x, jnp.float32)

    return {"emb": f(12, 8), "enc": {"a": {"kernel": f(8, 16), "bias": f(16)}, "b": {"kernel": f(2, 16, 8)}},
            "head": {"kernel": f(8, 3)}}


def sparse_leaves(masks, tree):
    """[(path, mask, leaf)] of the sparse params, in tree order."""
    leaves = dict(sp.named_leaves(tree))
    return [(p, np.asarray(m), np.asarray(leaves[p])) for p, m in sp.named_leaves(masks)]


def kept(masks) -> int:
    return sum(int(np.asarray(m).sum()) for m in jax.tree.leaves(masks))


def original_counts(initial, final, warmup, cooldown, period, max_steps):
    """The original's GradualMagnitudePruningMixin arithmetic, step by step: the kept count after each
    prune, keyed by its 1-based training step."""
    pruning_steps = max_steps - warmup - cooldown
    total_prune_iterations = pruning_steps / period + 1
    start_on, end_on = float(initial), float(final)
    out, prune_iteration = {}, 1
    for train_step in range(1, max_steps + 1):
        if train_step < warmup or train_step > max_steps - cooldown or (train_step - warmup) % period:
            continue
        lambda_t = np.power(1 - prune_iteration / total_prune_iterations, 3)
        out[train_step] = int(end_on + (start_on - end_on) * lambda_t)
        prune_iteration += 1
    return out


@pytest.mark.parametrize("initial,final,warmup,cooldown,period,max_steps", [
    (384, 40, 2, 2, 2, 12),
    (107_495_424, 21_499_085, 2_000, 20_000, 1_000, 52_000),  # BERT-base-sized counts, the original's pretrained GMP
    (1_000_003, 7, 5_000, 20_000, 500, 100_000),
])
def test_cubic_counts_are_the_originals(initial, final, warmup, cooldown, period, max_steps):
    schedule = sp.GmpSchedule(start=warmup, end=max_steps - cooldown, period=period, final_kept=final)
    want = original_counts(initial, final, warmup, cooldown, period, max_steps)
    assert schedule.num_prunes == len(want)
    np.testing.assert_array_equal(schedule.kept_counts(initial), list(want.values()))
    assert schedule.kept_counts(initial)[-1] == final
    assert np.all(np.diff(schedule.kept_counts(initial)) <= 0)
    prune_steps = [c for c in range(1, max_steps + 1) if bool(schedule.is_update(c))] if max_steps < 100 else None
    if prune_steps is not None:
        assert prune_steps == list(want)


def _numpy_prune(masks, weights, n_keep):
    """Brute force: rank the active weights of all sparse tensors (tree order, flattened) by |w|, the
    lowest index first among equals, and switch off the smallest until n_keep remain."""
    items = sparse_leaves(masks, weights)
    m = np.concatenate([mask.reshape(-1) for _, mask, _ in items])
    w = np.abs(np.concatenate([x.reshape(-1) for _, _, x in items]))
    active = np.flatnonzero(m)
    order = active[np.argsort(w[active], kind="stable")]
    out = m.copy()
    out[order[:max(0, len(active) - n_keep)]] = False
    return out


@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("start", ["full", "partial"])
def test_gmp_masks_match_brute_force_numpy(quantize, start):
    params = toy_params(3, quantize)
    masks = sp.full_masks(params, RULES)
    if start == "partial":  # an earlier prune left some weights off (they need not be 0 in the input)
        masks = sp.gmp_masks(toy_params(4), masks, 500)
    for n_keep in (400, 123, 1, kept(masks), kept(masks) + 5):
        new = sp.gmp_masks(params, masks, n_keep)
        flat = np.concatenate([m.reshape(-1) for _, m, _ in sparse_leaves(new, params)])
        np.testing.assert_array_equal(flat, _numpy_prune(masks, params, n_keep))
        assert kept(new) == min(n_keep, kept(masks))
        assert new["head"]["kernel"] is None and new["enc"]["a"]["bias"] is None
    # Under jit and lax.cond, with a traced count: the same masks, and none changed when not pruning.
    pruned = jax.jit(sp.maybe_gmp_masks)(True, params, masks, jnp.int32(200))
    skipped = jax.jit(sp.maybe_gmp_masks)(False, params, masks, jnp.int32(200))
    for a, b, c in zip(jax.tree.leaves(pruned), jax.tree.leaves(sp.gmp_masks(params, masks, 200)),
                       jax.tree.leaves(skipped)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(skipped), jax.tree.leaves(masks)):
        np.testing.assert_array_equal(a, b)


def test_full_masks_are_all_true_where_the_rules_select():
    masks = sp.full_masks(toy_params(), RULES)
    assert [p for p, _ in sp.named_leaves(masks)] == ["emb", "enc/a/kernel", "enc/b/kernel"]
    assert all(bool(np.all(m)) for m in jax.tree.leaves(masks))
    with pytest.raises(ValueError, match="matches no parameter"):
        sp.full_masks(toy_params(), [(r"^nothing$", None, -2)])
    # The sparse tensors are reported as such while still dense (the loop logs this table at step 0).
    stats = sp.sparsity_stats(toy_params(), masks)
    assert stats.masked == {"emb", "enc/a/kernel", "enc/b/kernel"} and stats.overall.sparsity == 0.0
    table = sp.format_stats(stats, only_sparse=True)
    assert "enc/a/kernel" in table and "head/kernel" not in table
    assert sp.density_chart(stats).ndim == 3


@pytest.mark.parametrize("quantize", [False, True])
def test_the_transform_prunes_on_schedule_and_pruned_weights_stay_zero(quantize):
    schedule = sp.GmpSchedule(start=2, end=10, period=2, final_kept=40)
    inner = optax.adam(1e-2)
    tx = sp.sparse(inner, lambda p: sp.full_masks(p, RULES), schedule)
    params = toy_params(1, quantize)
    state = tx.init(params)
    n_sparse = kept(sp.get_masks(state))
    assert n_sparse == 12 * 8 + 8 * 16 + 2 * 16 * 8  # dense start
    want = original_counts(n_sparse, 40, warmup=2, cooldown=2, period=2, max_steps=12)
    update = jax.jit(tx.update)
    r = np.random.default_rng(7)
    for count in range(1, 13):
        g = jax.tree.map(lambda x: jnp.asarray(r.normal(size=x.shape), jnp.float32), params)
        before_masks, before_inner = sp.get_masks(state), state.inner_state
        updates, state = update(g, state, params)
        new_params = optax.apply_updates(params, updates)
        masks = sp.get_masks(state)
        # Reference: the inner update with the old masks, then (on prune steps) the prune of those weights.
        inner_updates, _ = inner.update(g, before_inner, params)
        updated = sp.apply_masks(optax.apply_updates(params, inner_updates), before_masks)
        want_masks = sp.gmp_masks(updated, before_masks, want[count]) if count in want else before_masks
        for a, b in zip(jax.tree.leaves(want_masks), jax.tree.leaves(masks)):
            np.testing.assert_array_equal(a, b)
        # The kept count is the cubic schedule's at every prune step and unchanged in between.
        assert kept(masks) == want.get(count, kept(before_masks)), count
        for (path, x), (_, y) in zip(sp.named_leaves(new_params), sp.named_leaves(sp.apply_masks(updated, masks))):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7, err_msg=path)
        # Pruned weights are exactly 0 and never come back.
        assert sp.masked_nonzero(new_params, masks) == 0
        for a, b in zip(jax.tree.leaves(masks), jax.tree.leaves(before_masks)):
            assert not np.any(np.asarray(a) & ~np.asarray(b))
        params = new_params
    assert kept(masks) == 40  # exact final count
    assert sorted(want) == [2, 4, 6, 8, 10]


def test_bad_gmp_settings_raise_clear_errors():
    inner, masks_fn = optax.sgd(0.1), lambda p: sp.full_masks(p, RULES)
    with pytest.raises(ValueError, match="period must be >= 1"):
        sp.sparse(inner, masks_fn, sp.GmpSchedule(start=2, end=10, period=0, final_kept=4))
    with pytest.raises(ValueError, match="start must be >= 1"):
        sp.sparse(inner, masks_fn, sp.GmpSchedule(start=0, end=10, period=2, final_kept=4))
    with pytest.raises(ValueError, match="positive multiple of the period"):
        sp.sparse(inner, masks_fn, sp.GmpSchedule(start=2, end=9, period=2, final_kept=4))
    tx = sp.sparse(inner, masks_fn, sp.GmpSchedule(start=2, end=10, period=2, final_kept=10_000))
    params = toy_params()
    with pytest.raises(ValueError, match="final_kept <= initial_kept <= 480"):
        tx.update(params, tx.init(params), params)
