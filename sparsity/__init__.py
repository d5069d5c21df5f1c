"""Model-agnostic sparse training: mask trees shaped like the params, initialisers, statistics, and
sparse training as an optax transformation (static masks, RigL or gradual magnitude pruning). Depends
only on jax, optax and numpy (matplotlib for charts); it knows nothing of BERT.

    masks.py      which params are sparse (regex rules), mask trees, apply_masks
    init.py       mask initialisers and the per-tensor allocation of kept weights
    selection.py  the k smallest scores of each group from counts alone (no sort, no gather)
    rigl.py       RigL's schedule and its prune / regrow selection
    gmp.py        gradual magnitude pruning: the cubic kept counts and the global magnitude prune
    transform.py  `sparse(inner, masks_fn, rigl | gmp)`: any optax optimizer with masks in its state
    stats.py      per-tensor statistics, a text table and a density chart
"""
from sparsity.gmp import cubic_kept_counts, gmp_masks, maybe_gmp_masks
from sparsity.init import Allocation, allocate, erk_densities, fixed_fan_in, init_masks, uniform
from sparsity.masks import (
                            METHODS,
                            Rule,
                            SparsitySpec,
                            apply_masks,
                            full_masks,
                            map_with_path,
                            match_rules,
                            named_leaves,
                            path_str,
)
from sparsity.rigl import drop_fraction, is_update_step, maybe_rigl_masks, no_regrowth, reset_moments, rigl_masks
from sparsity.stats import (
                            Stats,
                            TensorStats,
                            density_chart,
                            density_chart_png,
                            format_stats,
                            masked_nonzero,
                            sparsity_stats,
)
from sparsity.transform import GmpSchedule, RiglSchedule, SparseState, find_state, get_masks, sparse

__all__ = [
    "Allocation", "GmpSchedule", "METHODS", "RiglSchedule", "Rule", "SparseState", "SparsitySpec", "Stats",
    "TensorStats", "allocate", "apply_masks", "cubic_kept_counts", "density_chart", "density_chart_png",
    "drop_fraction", "erk_densities", "find_state", "fixed_fan_in", "format_stats", "full_masks", "get_masks",
    "gmp_masks", "init_masks", "is_update_step", "map_with_path", "masked_nonzero", "match_rules",
    "maybe_gmp_masks", "maybe_rigl_masks", "named_leaves", "no_regrowth", "path_str", "reset_moments",
    "rigl_masks", "sparse", "sparsity_stats", "uniform",
]
