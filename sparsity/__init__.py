"""Model-agnostic sparse training: mask trees shaped like the params, initialisers, statistics, and
sparse training as an optax transformation (static masks, RigL or gradual magnitude pruning). Depends
only on jax, optax and numpy (matplotlib for charts); it knows nothing of BERT.

    masks.py      which params are sparse (regex rules), mask trees, apply_masks
    init.py       mask initialisers and the per-tensor allocation of kept weights
    selection.py  the k smallest scores of each group from counts alone (no sort, no gather)
    schedule.py   what `sparse` asks of a mask schedule (is_update, update, check) and its update steps
    rigl.py       RiglSchedule and RigL's prune / regrow
    gmp.py        GmpSchedule, the cubic kept counts and the global magnitude prune
    transform.py  `sparse(inner, masks_fn, schedule)`: any optax optimizer with masks in its state
    stats.py      per-tensor statistics, a text table and a density chart
"""
from sparsity.gmp import GmpSchedule, cubic_kept_counts, gmp_masks, maybe_gmp_masks
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
from sparsity.rigl import (
                            RiglSchedule,
                            drop_fraction,
                            maybe_rigl_masks,
                            no_regrowth,
                            reset_moments,
                            rigl_masks,
)
from sparsity.schedule import MaskSchedule, MaskUpdate, is_update_step
from sparsity.stats import (
                            Stats,
                            TensorStats,
                            density_chart,
                            density_chart_png,
                            format_stats,
                            masked_nonzero,
                            sparsity_stats,
)
from sparsity.transform import SparseState, find_state, get_masks, sparse

__all__ = [
    "Allocation", "GmpSchedule", "METHODS", "MaskSchedule", "MaskUpdate", "RiglSchedule", "Rule", "SparseState",
    "SparsitySpec", "Stats", "TensorStats", "allocate", "apply_masks", "cubic_kept_counts", "density_chart",
    "density_chart_png", "drop_fraction", "erk_densities", "find_state", "fixed_fan_in", "format_stats",
    "full_masks", "get_masks", "gmp_masks", "init_masks", "is_update_step", "map_with_path", "masked_nonzero",
    "match_rules", "maybe_gmp_masks", "maybe_rigl_masks", "named_leaves", "no_regrowth", "path_str",
    "reset_moments", "rigl_masks", "sparse", "sparsity_stats", "uniform",
]
