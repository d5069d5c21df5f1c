"""Sparse pretraining: which BERT params are sparse, their masks in the train state, and the
masking / RigL work done inside the jitted step (the `post_update` of train.make_train_step).

Invariant after every step: every masked-off weight is exactly 0, and the number of kept weights
is exactly what the config says (per tensor; overall in RigL's global mode).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

import sparsity

# The original layout: every encoder Linear (query, key, value, attention output, intermediate,
# output) and the word embeddings; for the embedding each ROW (token) keeps a fixed count.
ENCODER_KERNELS = r"^bert/encoder/.*/kernel$"
WORD_EMBEDDINGS = r"^bert/embeddings/word_embeddings/embedding$"


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.enabled = False
    c.method = "fixed_fan_in"  # 'fixed_fan_in' (the original), 'uniform' or 'erk'
    # Either the sparsity of every selected tensor (`level`) or of ALL params, dense ones included
    # (`overall`): then the per-tensor level is solved so that 80% means 80.0% of every parameter.
    c.level = 0.8
    c.overall = -1.0  # >= 0 switches to the overall form
    c.include = (ENCODER_KERNELS, WORD_EMBEDDINGS)  # regexes over "/"-joined param paths
    c.seed = 0
    c.rigl = ml_collections.ConfigDict({
        "enabled": False,
        "update_freq": 100,
        "start": 100,  # first update after this many steps
        "end_fraction": 1.0,  # T_end as a fraction of train.steps (the RigL paper: 0.75)
        "drop_fraction": 0.3,
        "schedule": "cosine",  # or 'constant'
        "mode": "global",  # or 'per_tensor' (the RigL paper)
        "reset_moments": False,  # zero Adam's moments of regrown weights (the RigL paper)
    })
    return c


def _fan_in_axis(pattern: str) -> int:
    return -1 if "embedding" in pattern else -2


def spec_from_config(cfg) -> sparsity.SparsitySpec:
    overall = cfg.overall if cfg.overall is not None and cfg.overall >= 0 else None
    if overall is None and not 0.0 <= cfg.level < 1.0:
        raise ValueError(f"sparsity.level must be in [0, 1), got {cfg.level}.")
    if overall is not None and not 0.0 <= overall < 1.0:
        raise ValueError(f"sparsity.overall must be in [0, 1), got {overall}.")
    if not cfg.include:
        raise ValueError("sparsity.include is empty: list the regexes of the params to make sparse.")
    level = None if overall is not None else float(cfg.level)
    rules = [sparsity.Rule(p, level, _fan_in_axis(p)) for p in cfg.include]
    return sparsity.SparsitySpec(rules, target=overall, method=cfg.method)


def validate_rigl(cfg, total_steps: int) -> None:
    r = cfg.rigl
    if not r.enabled:
        return
    end = rigl_end(cfg, total_steps)
    if r.update_freq < 1:
        raise ValueError(f"sparsity.rigl.update_freq must be >= 1, got {r.update_freq}: RigL would never update.")
    if r.start < 0 or end <= r.start:
        raise ValueError(f"sparsity.rigl: end step {end} (end_fraction {r.end_fraction} of {total_steps} steps) "
                         f"is not after start {r.start}: RigL would never update.")
    if not 0.0 < r.drop_fraction < 1.0:
        raise ValueError(f"sparsity.rigl.drop_fraction must be in (0, 1), got {r.drop_fraction}.")
    if r.schedule not in ("cosine", "constant") or r.mode not in ("global", "per_tensor"):
        raise ValueError("sparsity.rigl.schedule must be 'cosine' or 'constant' and mode 'global' or 'per_tensor'.")


def rigl_end(cfg, total_steps: int) -> int:
    return int(math.floor(cfg.rigl.end_fraction * total_steps))


@dataclasses.dataclass
class SparseTraining:
    """Everything the engine needs to train with masks; built once, before compilation."""

    config: Any
    spec: sparsity.SparsitySpec
    total_steps: int

    @classmethod
    def from_config(cls, cfg, abstract_params, total_steps: int) -> "SparseTraining | None":
        if not cfg.enabled:
            return None
        spec = spec_from_config(cfg)
        validate_rigl(cfg, total_steps)
        sparsity.allocate(abstract_params, spec)  # every error (no match, unreachable) before compiling
        return cls(cfg, spec, total_steps)

    def add_masks(self, abstract: dict, shardings: dict) -> tuple[dict, dict]:
        masks = jax.eval_shape(lambda p: sparsity.init_masks(jax.random.key(0), p, self.spec), abstract["params"])
        mask_sh = jax.tree.map(lambda m, s: None if m is None else s, masks, shardings["params"],
                               is_leaf=lambda x: x is None)
        return {**abstract, "masks": masks}, {**shardings, "masks": mask_sh}

    def init_state(self, state: dict, shardings: dict) -> dict:
        """Adds the masks and zeroes the masked-off weights (jitted, on the state's shardings)."""

        def add(params):
            masks = sparsity.init_masks(jax.random.key(self.config.seed), params, self.spec)
            return sparsity.apply_masks(params, masks), masks

        params, masks = jax.jit(add, out_shardings=(shardings["params"], shardings["masks"]))(state["params"])
        return {**state, "params": params, "masks": masks}

    def post_update(self, state, new_params, opt_state, grads):
        """After the optimizer: the masks, then RigL (under lax.cond, on update steps only), whose
        update zeroes every weight outside the new masks itself."""
        masks = state["masks"]
        new_params = sparsity.apply_masks(new_params, masks)
        extras = {}
        r = self.config.rigl
        if r.enabled:
            step = state["step"] + 1  # the number of steps done once this one is applied
            end = rigl_end(self.config, self.total_steps)
            pred = sparsity.is_update_step(step, freq=r.update_freq, start=r.start, end=end)
            frac = sparsity.drop_fraction(step, initial=r.drop_fraction, schedule=r.schedule, end=end)
            # Prune by the magnitude of the updated, masked weights and grow by the dense gradient
            # this step already computed; no extra pass.
            new_params, masks, regrown = sparsity.maybe_rigl_update(pred, new_params, masks, grads, frac,
                                                                    mode=r.mode)
            if r.reset_moments:
                opt_state = sparsity.reset_moments(opt_state, regrown)
            extras = {"rigl_update": pred.astype(jnp.float32), "drop_fraction": frac}
        return new_params, opt_state, extras, {"masks": masks}


def export_summary(params, masks) -> tuple[str, Any]:
    """A printable per-tensor table and the statistics object (for tensorboard's density chart)."""
    stats = sparsity.sparsity_stats(params, masks)
    return sparsity.format_stats(stats, only_sparse=True), stats
