"""The sparsity package's masks: selection rules, initialisers, the overall-sparsity solver, stats."""
import math

import jax
import numpy as np
import pytest
from scipy.optimize import brentq

import sparsity as sp
from helpers import KERNEL, SOLVED_RULES, SPARSE_RULES, leaf, n_params, tiny_params

# --------------------------------------------------------------------------- initialisers


@pytest.mark.parametrize("fan_in,expected", [(768, 154), (3072, 614)])
def test_fixed_fan_in_original_layout_counts(fan_in, expected):
    m = sp.fixed_fan_in(jax.random.key(0), (fan_in, 3), 0.8)
    np.testing.assert_array_equal(np.asarray(m).sum(axis=0), [expected] * 3)


def test_fixed_fan_in_scanned_kernel_and_embedding_rows():
    m = np.asarray(sp.fixed_fan_in(jax.random.key(1), (3, 16, 10), 0.75, fan_in_axis=-2))
    assert m.dtype == bool and m.shape == (3, 16, 10)
    np.testing.assert_array_equal(m.sum(axis=1), np.full((3, 10), 4))  # every (layer, out) unit
    e = np.asarray(sp.fixed_fan_in(jax.random.key(1), (30, 20), 0.8, fan_in_axis=-1))
    np.testing.assert_array_equal(e.sum(axis=1), np.full(30, 4))      # every row keeps 4 of 20
    # Random positions, not the same subset for every unit.
    assert len({tuple(c) for c in m.reshape(3, 16, 10).transpose(0, 2, 1).reshape(30, 16)}) > 20


def test_fixed_fan_in_with_n_keep_balances_slices_and_units():
    n_keep = 3 * 10 * 4 + 17
    m = np.asarray(sp.fixed_fan_in(jax.random.key(2), (3, 16, 10), n_keep=n_keep))
    assert m.sum() == n_keep
    per_slice = m.sum(axis=(1, 2))
    per_unit = m.sum(axis=1)
    assert per_slice.max() - per_slice.min() <= 1
    assert set(np.unique(per_unit)) <= {4, 5}


def test_uniform_exact_count_and_determinism():
    shape = (3, 16, 10)
    m = sp.uniform(jax.random.key(3), shape, 0.7)
    assert int(m.sum()) == round(0.3 * 480)
    assert int(sp.uniform(jax.random.key(3), shape, n_keep=37).sum()) == 37
    np.testing.assert_array_equal(m, sp.uniform(jax.random.key(3), shape, 0.7))
    assert not np.array_equal(m, sp.uniform(jax.random.key(4), shape, 0.7))


def test_init_masks_deterministic_and_structured():
    params = tiny_params()
    spec = sp.SparsitySpec(rules=SPARSE_RULES)
    a = sp.init_masks(jax.random.key(0), params, spec)
    b = sp.init_masks(jax.random.key(0), params, spec)
    c = sp.init_masks(jax.random.key(1), params, spec)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c)))
    assert leaf(a, "pooler/dense/kernel") is None and leaf(a, "enc/layers/attention/query/bias") is None
    q = np.asarray(leaf(a, KERNEL))
    assert q.dtype == bool
    np.testing.assert_array_equal(q.sum(axis=1), np.full((3, 16), round(0.2 * 16)))
    emb = np.asarray(leaf(a, "emb/word_embeddings/embedding"))
    np.testing.assert_array_equal(emb.sum(axis=1), np.full(30, round(0.2 * 16)))


def test_init_masks_jittable_same_result():
    params = tiny_params()
    spec = sp.SparsitySpec(rules=SPARSE_RULES)
    eager = sp.init_masks(jax.random.key(5), params, spec)
    jitted = jax.jit(lambda k: sp.init_masks(k, params, spec))(jax.random.key(5))
    for x, y in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------- overall solver


@pytest.mark.parametrize("method", ["fixed_fan_in", "uniform", "erk"])
@pytest.mark.parametrize("target", [0.3, 0.5, 0.61, 0.7])
def test_overall_target_exact(method, target):
    params = tiny_params()
    total = n_params(params)
    spec = sp.SparsitySpec(rules=SOLVED_RULES, target=target, method=method)
    alloc = sp.allocate(params, spec)
    masks = sp.init_masks(jax.random.key(0), params, spec)
    stats = sp.sparsity_stats(params, masks)
    # Exactly the target count of nonzeros, dense params counted as nonzero.
    assert stats.overall.nonzero == math.floor((1 - target) * total + 0.5)
    assert stats.overall.size == total
    for path, a in alloc.items():
        assert int(np.asarray(leaf(masks, path)).sum()) == a.n_keep
    if method != "erk":
        # One common level: every tensor within one weight of it.
        n_sparse = sum(a.size for a in alloc.values())
        c = sum(a.n_keep for a in alloc.values()) / n_sparse
        for a in alloc.values():
            assert abs(a.n_keep - c * a.size) < 1.0


def test_overall_solver_with_a_fixed_level_rule():
    params = tiny_params()
    rules = [(r"^enc/.*kernel$", None, -2), (r"word_embeddings/embedding$", 0.5, -1)]
    alloc = sp.allocate(params, sp.SparsitySpec(rules=rules, target=0.6))
    assert alloc["emb/word_embeddings/embedding"].n_keep == 30 * 8       # fixed: 8 of 16 per row
    kept = sum(a.n_keep for a in alloc.values())
    dense = n_params(params) - sum(a.size for a in alloc.values())
    assert kept + dense == math.floor(0.4 * n_params(params) + 0.5)


def test_overall_solver_works_on_shapes_only():
    params = tiny_params()
    shapes = jax.eval_shape(lambda: params)
    spec = sp.SparsitySpec(rules=SOLVED_RULES, target=0.5)
    assert sp.allocate(shapes, spec) == sp.allocate(params, spec)


def test_unreachable_targets_raise_with_numbers():
    params = tiny_params()
    total = n_params(params)
    with pytest.raises(ValueError, match=rf"unreachable.*{total}"):
        sp.allocate(params, sp.SparsitySpec(rules=SOLVED_RULES, target=0.95))
    # Too low: the fixed-level tensor is sparser than the whole model may be.
    rules = [(r"^enc/.*kernel$", None, -2), (r"word_embeddings/embedding$", 0.9, -1)]
    with pytest.raises(ValueError, match="unreachable"):
        sp.allocate(params, sp.SparsitySpec(rules=rules, target=0.01))


def test_erk_densities_match_scipy_root_and_cap():
    shapes = {"big": (64, 64), "mid": (3, 16, 40), "tiny": (2, 3), "emb": (30, 16)}
    sizes = {p: math.prod(s) for p, s in shapes.items()}
    n_keep = int(0.3 * sum(sizes.values()))
    d = sp.erk_densities(shapes, n_keep)
    raw = {p: (s[-1] + s[-2]) / (s[-1] * s[-2]) for p, s in shapes.items()}
    # Independent solve: sum_i min(1, eps * raw_i) * size_i = n_keep.
    eps = brentq(lambda e: sum(min(1.0, e * raw[p]) * sizes[p] for p in shapes) - n_keep, 1e-9, 1e9)
    for p in shapes:
        assert d[p] == pytest.approx(min(1.0, eps * raw[p]), rel=1e-9)
    assert d["tiny"] == 1.0                      # capped and redistributed
    assert sum(d[p] * sizes[p] for p in shapes) == pytest.approx(n_keep)
    assert set(sp.erk_densities(shapes, sum(sizes.values())).values()) == {1.0}
    with pytest.raises(ValueError, match="ERK"):
        sp.erk_densities(shapes, sum(sizes.values()) + 1)


def test_erk_with_rule_levels_spends_the_same_budget():
    params = tiny_params()
    alloc = sp.allocate(params, sp.SparsitySpec(rules=SPARSE_RULES, method="erk"))
    fixed = sp.allocate(params, sp.SparsitySpec(rules=SPARSE_RULES, method="uniform"))
    assert sum(a.n_keep for a in alloc.values()) == sum(a.n_keep for a in fixed.values())
    # ERK: the smaller matrix (16x16) is denser than the larger (16x40).
    assert alloc[KERNEL].sparsity < alloc["enc/layers/intermediate/dense/kernel"].sparsity


# --------------------------------------------------------------------------- selection, errors


def test_match_rules_and_apply_masks():
    params = tiny_params()
    matched = sp.match_rules(params, SPARSE_RULES)
    assert KERNEL in matched and "pooler/dense/kernel" not in matched
    assert matched["emb/word_embeddings/embedding"].fan_in_axis == -1
    masks = sp.init_masks(jax.random.key(0), params, sp.SparsitySpec(rules=SPARSE_RULES))
    out = sp.apply_masks(params, masks)
    m = np.asarray(leaf(masks, KERNEL))
    np.testing.assert_array_equal(np.asarray(leaf(out, KERNEL)),
                                  np.where(m, np.asarray(leaf(params, KERNEL)), 0))
    np.testing.assert_array_equal(leaf(out, "pooler/dense/kernel"), leaf(params, "pooler/dense/kernel"))
    assert sp.masked_nonzero(out, masks) == 0
    assert sp.masked_nonzero(params, masks) == sum(
        int((~np.asarray(x)).sum()) for x in jax.tree.leaves(masks))


def test_bad_inputs_raise_clear_errors():
    params = tiny_params()
    with pytest.raises(ValueError, match=r"'nope/kernel' matches no parameter.*emb/"):
        sp.match_rules(params, [("nope/kernel", 0.5, -2)])
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
            sp.match_rules(params, [(KERNEL, bad, -2)])
    with pytest.raises(ValueError, match="fan_in_axis"):
        sp.match_rules(params, [(KERNEL, 0.5, 0)])
    with pytest.raises(ValueError, match=">= 2 dims"):
        sp.match_rules(params, [("LayerNorm/scale", 0.5, -2)])
    with pytest.raises(ValueError, match="not a valid regex"):
        sp.match_rules(params, [("(", 0.5, -2)])
    with pytest.raises(ValueError, match="unknown sparsity method"):
        sp.allocate(params, sp.SparsitySpec(rules=SPARSE_RULES, method="magic"))
    with pytest.raises(ValueError, match="no sparsity level"):
        sp.allocate(params, sp.SparsitySpec(rules=SOLVED_RULES))
    with pytest.raises(ValueError, match=r"target sparsity 1.2"):
        sp.allocate(params, sp.SparsitySpec(rules=SOLVED_RULES, target=1.2))
    with pytest.raises(ValueError, match="fixed level"):
        sp.allocate(params, sp.SparsitySpec(rules=SPARSE_RULES, target=0.5))
    masks = sp.init_masks(jax.random.key(0), params, sp.SparsitySpec(rules=SPARSE_RULES))
    with pytest.raises(ValueError, match="different structures"):
        sp.apply_masks({"emb": params["emb"]}, masks)


# --------------------------------------------------------------------------- stats


def test_stats_table_and_chart():
    params = tiny_params()
    masks = sp.init_masks(jax.random.key(0), params, sp.SparsitySpec(rules=SPARSE_RULES))
    st = sp.sparsity_stats(params, masks)
    q = st.per_tensor[KERNEL]
    assert q == (3 * 16 * 3, 3 * 16 * 16, 1 - 3 / 16)
    assert st.per_tensor["pooler/dense/bias"] == (16, 16, 0.0)
    assert st.overall.size == n_params(params)
    assert st.overall.nonzero == sum(s.nonzero for s in st.per_tensor.values())
    # Counting values instead of masks: the masked params' zeros show up.
    vals = sp.sparsity_stats(sp.apply_masks(params, masks))
    assert vals.per_tensor[KERNEL].nonzero == q.nonzero
    table = sp.format_stats(st)
    assert KERNEL in table and "overall" in table and f"{100 * st.overall.sparsity:.2f}%" in table
    png = sp.density_chart_png(st)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = sp.density_chart(st)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.min() < 100 and img.max() > 200      # something was drawn on a light background
