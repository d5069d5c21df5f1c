"""The optimizer: global-norm clipping (torch's formula), then AdamW with scheduled lr (and b1),
as the HF Trainer does; for sparse pretraining the whole of it wrapped by `sparsity.sparse`
(sparse_config.py turns the config's `sparsity` group into the masks and their schedule).

Matches `torch.optim.AdamW` + `clip_grad_norm_` + a scheduler, step for step:
- optax's `scale_by_adam` reads b1 from `inject_hyperparams` at every update and uses that current
  b1 both in the moment update (mu = b1 mu + (1 - b1) g) and in the bias correction
  (1 - b1**t), exactly as torch's AdamW uses `group['betas'][0]` (which OneCycleLR rewrites before
  each step). So no custom Adam is needed; tests/test_schedules.py checks this against torch.
- optax's `add_decayed_weights` before the lr scaling gives p - lr * (adam + wd * p), which is
  torch's decoupled decay p * (1 - lr * wd) - lr * adam.
- Weight decay skips biases and LayerNorm params (the Trainer's rule), via `decay_mask`.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

import sparsity
from jax_bert.train import schedules, sparse_config


def default_config() -> ml_collections.ConfigDict:
    """All optimizer and schedule fields, with bert_100k's values (the original dense baseline)."""
    c = ml_collections.ConfigDict()
    c.schedule = "warmup_linear"  # 'warmup_linear' | 'one_cycle' | 'constant' | 'three_stage'
    c.learning_rate = 1e-4  # peak lr; for one_cycle and three_stage this is max_lr
    c.warmup_steps = 2000  # warmup_linear and three_stage
    c.total_steps = 100_000  # schedule length (the training steps)
    # one_cycle only (torch OneCycleLR arguments):
    c.pct_start = 0.3
    c.anneal_strategy = "linear"
    c.div_factor = 25.0
    c.final_div_factor = 1e4
    c.three_phase = False
    c.cycle_momentum = True  # cycle Adam's b1 between max_momentum and base_momentum
    c.base_momentum = 0.85
    c.max_momentum = 0.95
    # three_stage only (the original's lr for gradual magnitude pruning of a pretrained model): warm-up
    # from 0 over warmup_steps, constant max_lr while pruning, then in the last cooldown_steps the lr
    # multiplied by cooldown_gamma twice (after a third and after two thirds of the cool-down).
    c.cooldown_steps = 0
    c.cooldown_gamma = 0.1
    # AdamW:
    c.b1 = 0.9  # used when b1 is not cycled
    c.b2 = 0.999
    c.eps = 1e-8
    c.weight_decay = 0.01
    c.clip = 1.0  # global gradient-norm clip; <= 0 disables
    return c


def decays(names: list[str]) -> bool:
    """The Hugging Face Trainer rule: no weight decay for biases and LayerNorm params."""
    return bool(names) and names[-1] != "bias" and "LayerNorm" not in names


def decay_mask(params) -> Any:
    """A tree of bools shaped like `params`: True where weight decay applies."""
    return jax.tree_util.tree_map_with_path(lambda path, _: decays(_path_names(path)), params)


def _path_names(path) -> list[str]:
    """Names along a pytree key path; the `.value` of a boxed (nn.Partitioned) leaf is dropped."""
    names = sparsity.path_str(path).split("/")
    return names[:-1] if len(names) > 1 and names[-1] == "value" else names


def _validate(config) -> None:
    for name in ("b1", "b2"):
        v = config.get(name)
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {v}.")
    if config.get("eps") <= 0:
        raise ValueError(f"eps must be > 0, got {config.get('eps')}.")
    if config.get("weight_decay") < 0:
        raise ValueError(f"weight_decay must be >= 0, got {config.get('weight_decay')}.")


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """torch.nn.utils.clip_grad_norm_: g * min(1, max_norm / (||g|| + 1e-6)), ||g|| over all leaves.

    Why not optax.clip_by_global_norm: its `where(norm < max, g, g / norm * max)` kept XLA:CPU from
    fusing the clip into Adam's moment updates, so the clipped gradients were written out and read
    back: the optimizer update of BERT-base took 225 ms instead of 103 ms on a 2-core CPU (~3% of
    the training step). A multiply fuses, and this is also torch's formula (the 1e-6 included).
    The state is optax's EmptyState, as optax's clip has, so checkpoints are unchanged."""

    def update(updates, state, params=None):
        del params
        norm = optax.tree.norm(updates)
        scale = jnp.minimum(1.0, max_norm / (norm + 1e-6))
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config, params=None, lr_schedule=None) -> optax.GradientTransformation:
    """clip_by_global_norm(config.clip) then AdamW with the config's lr (and b1) schedules.

    `config` has fields of `default_config()` (missing ones take those defaults, unknown ones are
    an error). `params`, when given, is only checked; the decay mask is computed from the tree at
    `init`/`update`, by names alone, so the same optimizer also serves a tree with a leading seed
    axis (vmapped fine-tuning). `lr_schedule`, when given, replaces the config's learning-rate
    schedule (b1 stays as the config says).
    """
    full = default_config()
    given = dict(config)
    unknown = sorted(set(given) - set(full))
    if unknown:
        raise ValueError(f"unknown optimizer config fields {unknown}; the fields are {sorted(full)}.")
    full.update(given)
    _validate(full)
    config_lr, b1_schedule = schedules.make_schedules(full)
    lr_schedule = config_lr if lr_schedule is None else lr_schedule
    if params is not None and not any(jax.tree_util.tree_leaves(decay_mask(params))):
        raise ValueError(
            "no parameter gets weight decay: every leaf is named 'bias' or sits under 'LayerNorm'; "
            "check the param tree."
        )
    adamw = optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
        learning_rate=lr_schedule,
        b1=b1_schedule if b1_schedule is not None else full.b1,
        b2=full.b2,
        eps=full.eps,
        weight_decay=full.weight_decay,
        mask=decay_mask,
    )
    if full.clip > 0:
        return optax.chain(clip_by_global_norm(full.clip), adamw)
    return adamw


def current_hyperparams(opt_state) -> dict[str, jax.Array]:
    """{'learning_rate', 'b1'} used by the most recent update (before any: those of step 0).

    Works on the state of `make_optimizer`'s transformation, also when it is wrapped (e.g. in
    optax.MultiSteps); jit-friendly.
    """
    hyperparams = optax.tree_utils.tree_get(
        opt_state,
        "hyperparams",
        filtering=lambda path, _: getattr(path[-1], "tuple_name", None) == "InjectStatefulHyperparamsState",
    )
    if hyperparams is None:
        raise ValueError("opt_state has no injected hyperparams; build it with make_optimizer.")
    return {k: jnp.asarray(hyperparams[k]) for k in ("learning_rate", "b1")}


def make_train_optimizer(config, abstract_params, lr_schedule=None) -> optax.GradientTransformation:
    """The pretraining optimizer of a whole run config: make_optimizer(config.optim) over
    train.steps, wrapped by sparsity.sparse when config.sparsity is enabled (sparse_config.py: static
    masks, RigL, or gradual magnitude pruning from all-True masks; its errors are raised here, from the
    params' shapes). `lr_schedule` replaces the config's learning-rate schedule (the LR range test's
    ramp)."""
    optim_cfg = dict(config.optim)
    optim_cfg["total_steps"] = int(config.train.steps)
    tx = make_optimizer(optim_cfg, lr_schedule=lr_schedule)
    return sparse_config.wrap_optimizer(tx, config.sparsity, int(config.train.steps), abstract_params)
