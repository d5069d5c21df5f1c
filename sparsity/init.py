"""Mask initialisers and the per-tensor allocation of kept weights.

Every initialiser takes an explicit PRNG key, returns a bool jax array (True = kept) and is
deterministic given the key. Counts are Python ints, so the initialisers are jittable (e.g.
under ``jax.jit(..., out_shardings=...)`` to build masks already sharded).

Rounding: a level s turns into round_half_up((1 - s) * n) kept weights, where n is the fan-in
(fixed_fan_in, per output unit) or the tensor size (uniform).
"""
from __future__ import annotations

import functools
import math
import zlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sparsity.masks import METHODS, SparsitySpec, map_with_path, match_rules, named_leaves


def _round(x: float) -> int:
    # Half-up rather than Python's half-to-even: 0.2 * 768 = 153.6 -> 154 either way, but
    # half-up is what a reader expects from "round".
    return int(math.floor(x + 0.5))


def _matrix_dims(shape, fan_in_axis: int) -> tuple[int, int, int]:
    """(batch, units, fan_in) of a [..., a, b] tensor; leading axes are batch axes."""
    if len(shape) < 2:
        raise ValueError(f"a sparse tensor needs >= 2 dims, got shape {tuple(shape)}")
    ax = fan_in_axis % len(shape)
    if ax not in (len(shape) - 1, len(shape) - 2):
        raise ValueError(
            f"fan_in_axis {fan_in_axis} of shape {tuple(shape)} must be one of the last two axes")
    batch = int(np.prod(shape[:-2], dtype=np.int64))
    if ax == len(shape) - 2:
        return batch, int(shape[-1]), int(shape[-2])
    return batch, int(shape[-2]), int(shape[-1])


def _balanced_counts(key, total, n: int):
    """n int32 counts summing to total, each floor(total/n) or one more (the extra ones at random).

    total may be traced (so one compiled program serves every count of a shape)."""
    total = jnp.asarray(total, jnp.int32)
    base, extra = total // n, total % n
    return base + (jax.random.permutation(key, n) < extra).astype(jnp.int32)


def _fan_in_mask(key, shape, n_keep: int, fan_in_axis: int):
    batch, units, fan_in = _matrix_dims(shape, fan_in_axis)
    if not 0 <= n_keep <= batch * units * fan_in:
        raise ValueError(f"n_keep={n_keep} outside [0, {batch * units * fan_in}] for shape {shape}")
    return _fan_in_mask_jit(key, shape, jnp.int32(n_keep), fan_in_axis)


# Jitted with the shape static and the count traced: one compiled program per shape, instead
# of a dozen eager dispatches per tensor when masks are built outside jit.
@functools.partial(jax.jit, static_argnums=(1, 3))
def _fan_in_mask_jit(key, shape, n_keep, fan_in_axis: int):
    batch, units, fan_in = _matrix_dims(shape, fan_in_axis)
    k_slice, k_unit, k_pos = jax.random.split(key, 3)
    # Spread n_keep over the [in, out] slices, then over each slice's output units, so slices
    # differ by at most one weight and units by at most one input. When n_keep is a multiple
    # of batch * units (a level given per unit), every unit keeps exactly the same count.
    per_slice = _balanced_counts(k_slice, n_keep, batch)                       # [batch]
    base, extra = per_slice // units, per_slice % units
    unit_rank = jax.vmap(lambda k: jax.random.permutation(k, units))(
        jax.random.split(k_unit, batch))                                         # [batch, units]
    per_unit = base[:, None] + (unit_rank < extra[:, None]).astype(jnp.int32)
    # A uniformly random permutation per unit: {i : perm[i] < c} is a uniform c-subset.
    perm = jnp.argsort(jax.random.uniform(k_pos, (batch, units, fan_in)), axis=-1)
    mask = perm < per_unit[..., None]                                            # [batch, units, fan_in]
    if fan_in_axis % len(shape) == len(shape) - 2:
        mask = jnp.swapaxes(mask, -1, -2)
    return mask.reshape(shape)


def fixed_fan_in(key, shape, sparsity: float | None = None, *, fan_in_axis: int = -2,
                 n_keep: int | None = None):
    """Mask where each output unit keeps a fixed number of inputs, chosen at random.

    With ``sparsity`` s: every unit keeps exactly round((1 - s) * fan_in) inputs (0.8 on a
    768 x 768 kernel: 154 per unit). With ``n_keep`` (the whole tensor's count, as the overall
    solver gives): slices keep counts differing by at most one, units by at most one.
    fan_in_axis -2: Dense kernel [..., in, out]; -1: embedding [vocab, hidden] (rows).
    """
    shape = tuple(int(d) for d in shape)
    batch, units, fan_in = _matrix_dims(shape, fan_in_axis)
    if (sparsity is None) == (n_keep is None):
        raise ValueError("give exactly one of sparsity or n_keep")
    if sparsity is not None:
        _check_level(sparsity)
        k = _round((1.0 - sparsity) * fan_in)
        if k == 0:
            raise ValueError(f"sparsity {sparsity} keeps no input of fan-in {fan_in}")
        n_keep = k * units * batch
    return _fan_in_mask(key, shape, int(n_keep), fan_in_axis)


def uniform(key, shape, sparsity: float | None = None, *, n_keep: int | None = None):
    """Mask keeping exactly round((1 - s) * size) (or n_keep) weights of the tensor, at random."""
    shape = tuple(int(d) for d in shape)
    size = int(np.prod(shape, dtype=np.int64))
    if (sparsity is None) == (n_keep is None):
        raise ValueError("give exactly one of sparsity or n_keep")
    if sparsity is not None:
        _check_level(sparsity)
        n_keep = _round((1.0 - sparsity) * size)
    if not 0 <= n_keep <= size:
        raise ValueError(f"n_keep={n_keep} outside [0, {size}] for shape {shape}")
    return _uniform_mask(key, shape, jnp.int32(n_keep))


@functools.partial(jax.jit, static_argnums=1)
def _uniform_mask(key, shape, n_keep):
    size = math.prod(shape)
    return (jax.random.permutation(key, size) < n_keep).reshape(shape)


def _check_level(s):
    if not 0.0 <= float(s) < 1.0:
        raise ValueError(f"sparsity {s!r} is outside [0, 1)")


def erk_densities(shapes: dict[str, tuple[int, ...]], n_keep: int) -> dict[str, float]:
    """Erdos-Renyi-Kernel densities: d_i = min(1, eps * raw_i), sum_i d_i * size_i = n_keep.

    raw_i = (n_in + n_out) / (n_in * n_out) of the tensor's [in, out] matrix (the last two
    axes; leading batch axes share the same density). As in the RigL code, eps is solved,
    tensors whose density would exceed 1 are made dense and eps is solved again for the rest.
    """
    sizes = {p: int(np.prod(s, dtype=np.int64)) for p, s in shapes.items()}
    total = sum(sizes.values())
    if not 0 < n_keep <= total:
        raise ValueError(f"ERK: cannot keep {n_keep} of {total} sparse-candidate weights")
    raw = {p: (s[-1] + s[-2]) / (s[-1] * s[-2]) for p, s in shapes.items()}
    dense: set[str] = set()
    while True:
        free = [p for p in shapes if p not in dense]
        if not free:          # the budget is every weight: all dense
            break
        rhs = n_keep - sum(sizes[p] for p in dense)
        eps = rhs / sum(raw[p] * sizes[p] for p in free)
        top = max(raw[p] for p in free)
        if eps * top <= 1.0:
            break
        dense.update(p for p in free if raw[p] == top)
    return {p: 1.0 if p in dense else eps * raw[p] for p in shapes}


def _largest_remainder(exact: dict[str, float], total: int) -> dict[str, int]:
    """Integers within 1 of each exact value summing to total (ties by tree order)."""
    fl = {p: int(math.floor(v)) for p, v in exact.items()}
    rest = total - sum(fl.values())
    order = sorted(exact, key=lambda p: -(exact[p] - fl[p]))   # sorted() is stable
    for p in order[:rest]:
        fl[p] += 1
    return fl


class Allocation(NamedTuple):
    """How one sparse tensor is initialised."""

    n_keep: int          # kept weights in the whole tensor
    size: int
    fan_in_axis: int
    method: str

    @property
    def sparsity(self) -> float:
        return 1.0 - self.n_keep / self.size


def allocate(params, spec: SparsitySpec) -> dict[str, Allocation]:
    """Per-tensor kept counts for the params a spec makes sparse ({path: Allocation}).

    Rule levels (uniform / fixed_fan_in) give round-per-tensor / round-per-unit counts.
    With ``spec.target`` the rules whose level is None share one density c, solved so that
    the nonzero total (dense params + fixed-level tensors + these) is exactly
    round_half_up((1 - target) * all params); each tensor keeps c * size rounded up or down
    (largest remainder), i.e. within one weight of the common level.
    ERK: the budget (from the target, or from the rule levels) is spread by erk_densities.
    Only shapes are read, so ``jax.eval_shape`` output works.
    """
    if spec.method not in METHODS:
        raise ValueError(f"unknown sparsity method {spec.method!r}; use one of {METHODS}")
    matched = match_rules(params, spec.rules)
    shapes = {p: tuple(int(d) for d in jnp.shape(x)) for p, x in named_leaves(params)}
    sizes = {p: int(np.prod(s, dtype=np.int64)) for p, s in shapes.items()}
    total = sum(sizes.values())
    n_dense = sum(n for p, n in sizes.items() if p not in matched)
    free = [p for p, r in matched.items() if r.sparsity is None]
    fixed = [p for p, r in matched.items() if r.sparsity is not None]
    if spec.target is not None and not 0.0 <= float(spec.target) < 1.0:
        raise ValueError(f"target sparsity {spec.target!r} is outside [0, 1)")
    if free and spec.target is None:
        raise ValueError(
            f"rules {sorted({matched[p].pattern for p in free})} have no sparsity level; give "
            "each a level or set SparsitySpec.target (overall fraction of all params).")
    if spec.target is not None and not free:
        raise ValueError(
            "SparsitySpec.target is set but every rule has a fixed level; set the levels of the "
            "rules to solve to None.")

    def fixed_count(p):
        r = matched[p]
        if spec.method == "fixed_fan_in":
            batch, units, fan_in = _matrix_dims(shapes[p], r.fan_in_axis)
            return _round((1.0 - r.sparsity) * fan_in) * units * batch
        return _round((1.0 - r.sparsity) * sizes[p])

    counts: dict[str, int] = {}
    if spec.method == "erk":
        if free and fixed:
            raise ValueError("ERK spreads one budget over all sparse tensors: give either a "
                             "target with all rule levels None, or a level in every rule.")
        if spec.target is not None:
            budget = _round((1.0 - spec.target) * total) - n_dense
            _check_reachable(budget, spec.target, total, n_dense, sum(sizes[p] for p in free))
        else:
            budget = sum(fixed_count(p) for p in fixed)
        dens = erk_densities({p: shapes[p] for p in matched}, budget)
        counts = _largest_remainder({p: dens[p] * sizes[p] for p in matched}, budget)
    else:
        counts = {p: fixed_count(p) for p in fixed}
        if free:
            n_free = sum(sizes[p] for p in free)
            budget = _round((1.0 - spec.target) * total) - n_dense - sum(counts.values())
            _check_reachable(budget, spec.target, total, n_dense + sum(counts.values()), n_free)
            c = budget / n_free
            counts.update(_largest_remainder({p: c * sizes[p] for p in free}, budget))
    for p, k in counts.items():
        if k <= 0:
            raise ValueError(f"{p} of shape {shapes[p]} would keep no weight; lower the sparsity")
        if k > sizes[p]:
            raise AssertionError(f"{p}: n_keep {k} > size {sizes[p]}")
    return {p: Allocation(counts[p], sizes[p], matched[p].fan_in_axis, spec.method)
            for p in matched}


def _check_reachable(budget, target, total, n_other, n_free):
    if budget <= 0 or budget > n_free:
        raise ValueError(
            f"overall sparsity {target} is unreachable: of {total} params, {n_other} are dense or "
            f"fixed (they count as nonzero) and the {n_free} solvable sparse-candidate weights "
            f"would have to keep {budget}; the reachable range is "
            f"[{max(0.0, 1 - (n_other + n_free) / total):.6f}, {1 - (n_other + 1) / total:.6f}]. "
            "Make more params sparse or change the target.")


def _path_key(key, path: str):
    # A per-tensor key from the path's name (not its position), so adding or removing a
    # param leaves every other tensor's mask unchanged.
    return jax.random.fold_in(key, zlib.crc32(path.encode()) & 0x7FFFFFFF)


def init_masks(key, params, spec: SparsitySpec):
    """Mask tree for params: bool arrays for the sparse params, None for the dense ones."""
    alloc = allocate(params, spec)

    def make(path, leaf):
        a = alloc.get(path)
        if a is None:
            return None
        k = _path_key(key, path)
        shape = jnp.shape(leaf)
        if a.method == "fixed_fan_in":
            return fixed_fan_in(k, shape, fan_in_axis=a.fan_in_axis, n_keep=a.n_keep)
        return uniform(k, shape, n_keep=a.n_keep)

    return map_with_path(make, params)
