"""RigL's selection against hand-made and brute-force numpy references, its schedule, the moment reset."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparsity as sp
from helpers import leaf, tiny_params

# --------------------------------------------------------------------------- RigL


def test_rigl_hand_made_example():
    w = jnp.array([[0.5, -0.1, 0.0, 0.9, -0.3, 0.0, 0.2, 0.0]], jnp.float32)
    m = jnp.array([[1, 1, 0, 1, 1, 0, 1, 0]], bool)
    g = jnp.array([[0.0, 5.0, 0.4, 0.0, 0.0, 0.7, 0.0, 0.1]], jnp.float32)
    params, masks, grads = {"k": w}, {"k": m}, {"k": g}
    # 5 active, floor(0.5 * 5) = 2 dropped: |w| smallest among active are -0.1 (idx 1), 0.2 (idx 6).
    # Candidates after the drop: idx 1, 2, 5, 6, 7 with |g| 5.0, 0.4, 0.7, 0.0, 0.1 -> grow 1 and 5.
    new_m, regrown = sp.rigl_masks(params, masks, grads, 0.5, mode="per_tensor")
    np.testing.assert_array_equal(new_m["k"][0], [1, 1, 0, 1, 1, 1, 0, 0])
    # idx 1 was dropped and regrown in the same step: it keeps its value (RigL default) and is
    # not a new connection; idx 5 is new and starts at 0; idx 6 is pruned to 0.
    np.testing.assert_array_equal(regrown["k"][0], [0, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_allclose(kept_values(params, new_m, regrown)["k"][0], [0.5, -0.1, 0, 0.9, -0.3, 0, 0, 0])
    m2, r2 = sp.rigl_masks(params, masks, grads, 0.5, mode="per_tensor", reinit_when_same=True)
    np.testing.assert_array_equal(r2["k"][0], [0, 1, 0, 0, 0, 1, 0, 0])
    m3, r3 = sp.rigl_masks(params, masks, grads, 0.5, reinit_when_same=True)
    np.testing.assert_allclose(kept_values(params, m3, r3)["k"][0], [0.5, 0, 0, 0.9, -0.3, 0, 0, 0])


def kept_values(params, new_masks, regrown):
    """What the sparse optimizer leaves of the weights after a RigL update: their values where the
    new mask keeps them and they were not regrown, 0 elsewhere."""
    keep = jax.tree.map(lambda m, r: None if m is None else m & ~r, new_masks, regrown, is_leaf=lambda x: x is None)
    return sp.apply_masks(params, keep)


def sparse_items(masks, tree):
    """[(path, mask, leaf of tree)] of the sparse params (mask not None)."""
    flat = dict(sp.named_leaves(tree))
    return [(p, m, flat[p]) for p, m in sp.named_leaves(masks)]


def _rigl_numpy(w, m, g, f):
    """Brute-force float32 reference for one group (1-D arrays); ties broken by lower index."""
    w, m, g = np.abs(w.astype(np.float32)), m.astype(bool), np.abs(g.astype(np.float32))
    idx = np.arange(w.size)
    k = int(np.floor(np.float32(f) * np.float32(m.sum())))
    active = idx[m]
    drop = active[np.lexsort((active, w[active]))][:k]
    kept = m.copy()
    kept[drop] = False
    cand = idx[~kept]
    grow = cand[np.lexsort((cand, -g[cand]))][:k]
    new = kept.copy()
    new[grow] = True
    return new, grow[~m[grow]]


def _random_problem(seed, quantize):
    params = tiny_params(seed)
    spec = sp.SparsitySpec(rules=[(r"^enc/.*kernel$", 0.6, -2), (r"word_embeddings/embedding$", 0.7, -1)])
    masks = sp.init_masks(jax.random.key(seed), params, spec)
    r = np.random.default_rng(100 + seed)
    if quantize:  # many exact ties in |w| and |g|, to exercise the tie-breaking
        params = jax.tree.map(lambda x: jnp.asarray(r.integers(-3, 4, x.shape), jnp.float32), params)
        grads = jax.tree.map(lambda x: jnp.asarray(r.integers(-2, 3, x.shape), jnp.float32), params)
    else:
        grads = jax.tree.map(lambda x: jnp.asarray(r.normal(size=x.shape), jnp.float32), params)
    return sp.apply_masks(params, masks), masks, grads


def _check_against_numpy(params, masks, grads, f, mode):
    new_m, regrown = sp.rigl_masks(params, masks, grads, f, mode=mode)
    new_p = kept_values(params, new_m, regrown)
    items = sparse_items(masks, params)
    gl = dict((p, x) for p, _, x in sparse_items(masks, grads))
    if mode == "global":
        groups = [[(p, None) for p, _, _ in items]]
    else:
        groups = [[(p, b)] for p, m, _ in items for b in range(math.prod(m.shape[:-2]) or 1)]
    for group in groups:
        def part(tree_or_dict, p, b):
            x = np.asarray(tree_or_dict[p] if isinstance(tree_or_dict, dict) and p in tree_or_dict
                           else leaf(tree_or_dict, p))
            if b is None:
                return x.reshape(-1)
            return x.reshape(-1, x.shape[-2] * x.shape[-1])[b]
        cat = lambda t: np.concatenate([part(t, p, b) for p, b in group])
        ref_m, ref_grown = _rigl_numpy(cat(params), cat(masks), cat(gl), f)
        np.testing.assert_array_equal(cat(new_m), ref_m)
        ref_regrown = np.zeros_like(ref_m)
        ref_regrown[ref_grown] = True
        np.testing.assert_array_equal(cat(regrown), ref_regrown)
        w_new = cat(new_p)
        np.testing.assert_array_equal(w_new, np.where(ref_m & ~ref_regrown, cat(params), 0))
        assert cat(new_m).sum() == cat(masks).sum()  # density of the group exactly preserved
    return new_p, new_m, regrown


@pytest.mark.parametrize("mode", ["per_tensor", "global"])
@pytest.mark.parametrize("quantize", [False, True])
def test_rigl_matches_brute_force_numpy(mode, quantize):
    params, masks, grads = _random_problem(1, quantize)
    new_p, new_m, regrown = _check_against_numpy(params, masks, grads, 0.3, mode)
    # Invariants: dense params untouched, regrown weights exactly 0, masked-off weights 0.
    np.testing.assert_array_equal(leaf(new_p, "pooler/dense/kernel"), leaf(params, "pooler/dense/kernel"))
    assert leaf(regrown, "pooler/dense/kernel") is None
    for _, r, w in sparse_items(regrown, new_p):
        assert np.all(np.asarray(w)[np.asarray(r)] == 0)
    assert sum(int(np.asarray(r).sum()) for r in jax.tree.leaves(regrown)) > 0
    assert sp.masked_nonzero(new_p, new_m) == 0
    if mode == "per_tensor":
        for (_, m0), (_, m1) in zip(sp.named_leaves(masks), sp.named_leaves(new_m)):
            np.testing.assert_array_equal(np.asarray(m0).sum(axis=(-2, -1)),
                                          np.asarray(m1).sum(axis=(-2, -1)))
    else:
        assert (sp.sparsity_stats(params, masks).overall ==
                sp.sparsity_stats(params, new_m).overall)


class OriginalCosineScheduler:
    """The original's CosineDecayPruneScheduler (prune_scheduler.py), in float64 numpy."""

    def __init__(self, prune_fraction, total_steps, warmup_steps):
        self.p, self.total, self.warmup, self.count = prune_fraction, total_steps - warmup_steps, warmup_steps, 0

    def fraction(self):
        t = self.count - self.warmup
        return 0.0 if t < 0 else 0.5 * self.p * (1 + np.cos(t * np.pi / (self.total - 1)))


def original_update_fractions(p, prune_freq, max_steps, accumulation):
    """{global step: drop fraction} of the original's RigL mixin: training_step runs once per micro-batch,
    steps the scheduler once per call, and prunes (fraction > 0) when global_step % prune_freq == 0; we take
    the first micro-batch's call at each global step (where our single update falls)."""
    sched = OriginalCosineScheduler(p, max_steps * accumulation, prune_freq)
    out = {}
    for global_step in range(max_steps):
        for micro in range(accumulation):
            if global_step % prune_freq == 0 and micro == 0:
                out[global_step] = sched.fraction()
            sched.count += 1
    return out


@pytest.mark.parametrize("freq,steps,accumulation", [(100, 1000, 1), (25, 150, 1), (10, 150, 3), (7, 60, 2)])
def test_drop_fraction_is_the_originals_cosine_at_every_update_step(freq, steps, accumulation):
    schedule = sp.RiglSchedule(update_freq=freq, start=freq, end=steps, drop_fraction=0.3,
                               accumulation=accumulation)
    want = original_update_fractions(0.3, freq, steps, accumulation)
    counts = np.arange(1, steps + 1)
    updates = counts[np.asarray(schedule.is_update(jnp.asarray(counts)))]
    got = np.asarray(schedule.fraction(jnp.asarray(updates)), np.float64)
    if accumulation == 1:  # exactly p at the first update (with accumulation its warm-up counts micro-batches)
        assert got[0] == pytest.approx(0.3, abs=1e-7)
    for count, f in zip(updates, got):
        # an update at the end of the run (no training_step of the original's left) drops nothing
        np.testing.assert_allclose(f, want.get(int(count), 0.0), rtol=3e-7, atol=3e-8, err_msg=f"update {count}")
    # every update of the original that drops something is one of ours
    assert {s for s, f in want.items() if f > 0} <= set(updates.tolist())


def test_drop_fraction_before_the_first_update_and_constant():
    f = np.asarray(sp.drop_fraction(jnp.asarray([0, 99, 100, 1000, 1500]), initial=0.3, end=1000, warmup=100))
    np.testing.assert_allclose(f, [0.0, 0.0, 0.3, 0.0, 0.0], atol=1e-8)
    np.testing.assert_allclose(sp.drop_fraction(77, initial=0.2, schedule="constant"), 0.2)


def test_rigl_drops_the_originals_count_at_every_update_through_the_optimizer():
    """End to end through sparsity.sparse: each update switches off floor(f * n_active) weights, f from the
    float64 formula with accumulation 2 (grads are 0 on active weights, so no dropped weight regrows)."""
    import ml_collections

    from jax_bert.train import sparse_config

    cfg = ml_collections.ConfigDict({"rigl": {"enabled": True, "update_freq": 5, "start": 5, "num_updates": 0,
                                              "end_fraction": 1.0, "drop_fraction": 0.3, "schedule": "cosine",
                                              "mode": "global", "reset_moments": False, "reinit_when_same": False,
                                              "accumulation_steps": 2}})
    steps = 40
    schedule = sparse_config.rigl_schedule(cfg, steps)
    rng = np.random.default_rng(0)
    params = {"k": jnp.asarray(rng.normal(size=(40, 50)), jnp.float32)}
    mask0 = jnp.asarray(rng.random((40, 50)) < 0.2)
    tx = sp.sparse(optax.sgd(1e-3), lambda p: {"k": mask0}, schedule)
    state = tx.init(params)
    params = sp.apply_masks(params, sp.get_masks(state))
    update = jax.jit(tx.update)
    want = original_update_fractions(0.3, 5, steps, 2)
    n_active = int(mask0.sum())
    seen = 0
    for count in range(1, steps + 1):
        before = np.asarray(sp.get_masks(state)["k"])
        grads = {"k": jnp.asarray(np.where(before, 0.0, 1.0 + rng.random(before.shape)), jnp.float32)}
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        after = np.asarray(sp.get_masks(state)["k"])
        dropped = int((before & ~after).sum())
        assert dropped == math.floor(want.get(count, 0.0) * n_active), f"update after step {count}"
        seen += dropped > 0
    assert seen == 7  # updates at 5, 10, .., 35 drop weights; the one at 40 (the end) drops none


def test_is_update_step_matches_python_predicate():
    steps = np.arange(0, 1100)
    got = np.asarray(sp.is_update_step(jnp.asarray(steps), freq=100, start=100, end=1000))
    want = np.array([100 <= s <= 1000 and (s - 100) % 100 == 0 for s in steps])
    np.testing.assert_array_equal(got, want)
    assert int(got.sum()) == 10
    assert bool(sp.is_update_step(5000, freq=100, start=100, end=None))


def test_rigl_under_jit_and_lax_cond():
    params, masks, grads = _random_problem(2, False)
    freq, start, end = 10, 10, 100

    @jax.jit
    def step_fn(step, p, m, g):
        pred = sp.is_update_step(step, freq=freq, start=start, end=end)
        f = sp.drop_fraction(step, initial=0.3, end=end, warmup=start)
        return sp.maybe_rigl_masks(pred, p, m, g, f, mode="global")

    eager = sp.rigl_masks(params, masks, grads, sp.drop_fraction(20, initial=0.3, end=end, warmup=start))
    on = step_fn(jnp.int32(20), params, masks, grads)
    for x, y in zip(jax.tree.leaves(eager), jax.tree.leaves(on)):
        np.testing.assert_array_equal(x, y)
    off = step_fn(jnp.int32(25), params, masks, grads)
    for x, y in zip(jax.tree.leaves(masks), jax.tree.leaves(off[0])):
        np.testing.assert_array_equal(x, y)
    assert not any(bool(np.asarray(r).any()) for r in jax.tree.leaves(off[1]))


@pytest.mark.parametrize("inject", [False, True])
def test_reset_moments_zeroes_exactly_regrown(inject):
    params, masks, grads = _random_problem(3, False)
    tx = (optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3) if inject
          else optax.adamw(1e-3))
    state = tx.init(params)
    update = jax.jit(tx.update)
    for _ in range(2):
        _, state = update(grads, state, params)
    _, regrown = sp.rigl_masks(params, masks, grads, 0.3, mode="per_tensor")
    new_state = sp.reset_moments(state, regrown)
    is_adam = lambda x: isinstance(x, optax.ScaleByAdamState)
    old_adam = [x for x in jax.tree.leaves(state, is_leaf=is_adam) if is_adam(x)]
    new_adam = [x for x in jax.tree.leaves(new_state, is_leaf=is_adam) if is_adam(x)]
    assert len(old_adam) == len(new_adam) == 1
    old, new = old_adam[0], new_adam[0]
    assert int(new.count) == int(old.count) == 2
    for moment in ("mu", "nu"):
        o, n = getattr(old, moment), getattr(new, moment)
        for path, r, ox in sparse_items(regrown, o):
            nx, r, ox = np.asarray(leaf(n, path)), np.asarray(r), np.asarray(ox)
            assert r.any() and np.all(ox[r] != 0)       # there was something to reset
            np.testing.assert_array_equal(nx, np.where(r, 0, ox))
        np.testing.assert_array_equal(leaf(n, "pooler/dense/kernel"), leaf(o, "pooler/dense/kernel"))




def test_bad_rigl_settings_raise_clear_errors():
    params, masks, _ = _random_problem(0, False)
    with pytest.raises(ValueError, match="RigL mode"):
        sp.rigl_masks(params, masks, params, 0.3, mode="sideways")
    with pytest.raises(ValueError, match="end > 0"):
        sp.drop_fraction(3, end=0)
    with pytest.raises(ValueError, match="schedule"):
        sp.drop_fraction(3, schedule="linear", end=10)
    with pytest.raises(ValueError, match="frequency"):
        sp.is_update_step(3, freq=0, start=0)
    for bad, message in [(dict(update_freq=0), "update_freq must be >= 1"), (dict(start=10, end=10), "not after"),
                         (dict(drop_fraction=1.0), "drop_fraction"), (dict(mode="x"), "mode")]:
        with pytest.raises(ValueError, match=message):
            sp.RiglSchedule(**{"end": 1000, **bad}).check()


def test_a_rigl_run_logs_the_loss_around_every_update():
    """jax_bert/train/loop.py logs these steps whatever train.log_every: the step before each update, the
    update step and the 10 after (clipped to the run)."""
    import ml_collections

    from jax_bert.train import sparse_config

    cfg = ml_collections.ConfigDict({"rigl": {"enabled": True, "update_freq": 25, "start": 25, "num_updates": 0,
                                              "end_fraction": 1.0, "drop_fraction": 0.3, "schedule": "cosine",
                                              "mode": "global", "reset_moments": False, "reinit_when_same": False,
                                              "accumulation_steps": 1}})
    assert sparse_config.rigl_update_steps(cfg, 150) == [25, 50, 75, 100, 125, 150]
    logged = sparse_config.rigl_logged_steps(cfg, 150)
    want = {n for u in (25, 50, 75, 100, 125, 150) for n in range(u - 1, u + 11) if n <= 150}
    assert logged == want and min(logged) == 24 and 36 not in logged
    cfg.rigl.enabled = False
    assert sparse_config.rigl_logged_steps(cfg, 150) == frozenset()
