"""Model-agnostic sparse training: mask trees shaped like the params, initialisers,
statistics and the RigL update. Depends only on jax, optax, numpy (matplotlib for charts)."""
from sparsity.init import (Allocation, allocate, erk_densities, fixed_fan_in, init_masks,
                           uniform)
from sparsity.masks import (METHODS, Rule, SparsitySpec, apply_masks, map_with_path,
                            mask_updates, match_rules, named_leaves, select, sparse_items)
from sparsity.rigl import (drop_fraction, is_update_step, maybe_rigl_update, no_regrowth,
                           reset_moments, rigl_update)
from sparsity.stats import (Stats, TensorStats, density_chart, density_chart_png,
                            format_stats, masked_nonzero, sparsity_stats)

__all__ = [
    "Allocation", "METHODS", "Rule", "SparsitySpec", "Stats", "TensorStats", "allocate",
    "apply_masks", "density_chart", "density_chart_png", "drop_fraction", "erk_densities",
    "fixed_fan_in", "format_stats", "init_masks", "is_update_step", "map_with_path",
    "mask_updates", "masked_nonzero", "match_rules", "maybe_rigl_update", "named_leaves",
    "no_regrowth", "reset_moments", "rigl_update", "select", "sparse_items", "sparsity_stats",
    "uniform",
]
