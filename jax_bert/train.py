"""The train state, the jitted train step and the eval step.

The state is one pytree: {step, params, opt_state, rng} (plus `masks` for sparse training). The train
step is one pure function, jitted once with explicit in/out shardings and the state donated. Gradient
accumulation is a `lax.scan` over micro-batches that sums the loss and gradients; the mean is taken
once over every masked token of the global batch, so accumulation changes nothing but memory.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from jax_bert import losses, model, optim, sharding
from jax_bert.config import BertConfig

BATCH_KEYS = ("input_ids", "attention_mask", "token_type_ids", "masked_positions", "masked_labels",
              "masked_weights")


def state_shardings(model_config: BertConfig, optimizer: optax.GradientTransformation, mesh: Mesh,
                    with_masks: bool = False):
    """(abstract state, shardings of the state) — computed without allocating any array."""
    abstract_params = jax.eval_shape(lambda: model.init_params(model_config, jax.random.key(0)))
    p_sh = sharding.param_shardings(model.logical_axes(model_config), abstract_params, mesh)
    abstract_opt = jax.eval_shape(optimizer.init, abstract_params)
    rep = sharding.replicated(mesh)
    opt_sh = optax.tree_map_params(optimizer, lambda _, s: s, abstract_opt, p_sh,
                                   transform_non_params=lambda _: rep)
    abstract = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": abstract_params,
                "opt_state": abstract_opt, "rng": jax.eval_shape(lambda: jax.random.key(0))}
    shardings = {"step": rep, "params": p_sh, "opt_state": opt_sh, "rng": rep}
    return abstract, shardings


def host_to_global(tree, shardings):
    """Host (numpy) arrays -> global arrays on `shardings`; each process fills only its own shards."""
    return jax.tree.map(
        lambda x, s: jax.make_array_from_callback(np.shape(x), s, lambda idx, x=x: np.asarray(x)[idx]),
        tree, shardings)


def init_state(model_config: BertConfig, optimizer, seed: int, shardings, params=None) -> dict:
    """A fresh state, created directly on its shardings; `params` (host arrays, e.g. from load_hf)
    replace the random init."""

    def make(initial_params):
        init_rng, step_rng = jax.random.split(jax.random.key(seed))
        p = model.init_params(model_config, init_rng) if initial_params is None else initial_params
        return {"step": jnp.zeros((), jnp.int32), "params": p, "opt_state": optimizer.init(p), "rng": step_rng}

    out = {k: shardings[k] for k in ("step", "params", "opt_state", "rng")}  # masks are added later
    if params is None:
        return jax.jit(lambda: make(None), out_shardings=out)()
    params = host_to_global(params, shardings["params"])
    return jax.jit(make, in_shardings=(shardings["params"],), out_shardings=out)(params)


def mlm_sums(model_config: BertConfig, params, batch, dropout_rng=None) -> dict:
    """MLM loss sums of one batch, logits only at the masked positions (dropout iff a rng is given)."""
    logits = model.apply(model_config, params, batch["input_ids"], batch["attention_mask"],
                         batch["token_type_ids"], masked_positions=batch["masked_positions"],
                         dropout_rng=dropout_rng)
    return losses.mlm_loss(logits, batch["masked_labels"], batch["masked_weights"])


def _tree_add(a, b):
    return jax.tree.map(jnp.add, a, b)


def make_train_step(model_config: BertConfig, optimizer: optax.GradientTransformation, *,
                    loss_fn: Callable | None = None, post_update: Callable | None = None):
    """The pure train step `(state, batch) -> (state, metrics)`.

    batch: arrays [accum_steps, micro_batch, ...] (BATCH_KEYS). `loss_fn(params, micro, dropout_rng,
    step, *extra)` returns (loss_sum, sums dict with weight_sum and correct_sum); the default is plain
    MLM. `extra` are further step arguments that are not part of the state (the frozen teachers).
    `post_update(state, new_params, new_opt_state, grads)` may rewrite the params and optimizer state
    after the update (sparse masks and RigL hook in here) and returns (params, opt_state, metrics,
    other state entries such as the new masks).
    """

    def mlm_loss_fn(params, micro, dropout_rng, step):
        del step
        sums = mlm_sums(model_config, params, micro, dropout_rng)
        return sums["loss_sum"], sums

    loss_fn = loss_fn or mlm_loss_fn

    def train_step(state, batch, *extra):
        params = state["params"]
        step_rng = jax.random.fold_in(state["rng"], state["step"])  # dropout: a pure function of step
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def micro_step(carry, xs):
            grads_sum, sums_acc = carry
            micro, i = xs
            (_, sums), grads = grad_fn(params, micro, jax.random.fold_in(step_rng, i), state["step"], *extra)
            return (_tree_add(grads_sum, grads), _tree_add(sums_acc, sums)), None

        accum = batch["input_ids"].shape[0]
        zero_grads = jax.tree.map(jnp.zeros_like, params)
        first_micro = jax.tree.map(lambda x: x[0], batch)
        zero_sums = jax.tree.map(lambda x: jnp.zeros((), jnp.float32),
                                 jax.eval_shape(loss_fn, params, first_micro, step_rng, state["step"], *extra)[1])
        (grads, sums), _ = jax.lax.scan(micro_step, (zero_grads, zero_sums), (batch, jnp.arange(accum)))
        denominator = jnp.maximum(sums["weight_sum"], 1.0)
        grads = jax.tree.map(lambda g: g / denominator, grads)
        updates, opt_state = optimizer.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        extras, state_updates = {}, {}
        if post_update is not None:
            new_params, opt_state, extras, state_updates = post_update(state, new_params, opt_state, grads)
        hyper = optim.current_hyperparams(opt_state)
        metrics = {
            "loss": sums["loss_sum"] / denominator,
            "mlm_accuracy": sums["correct_sum"] / denominator,
            "masked_tokens": sums["weight_sum"],
            "grad_norm": optax.tree.norm(grads),
            "learning_rate": hyper["learning_rate"],
            "b1": hyper["b1"],
            # Further per-token sums of a loss_fn (e.g. the plain MLM loss under distillation), as means.
            **{k.removesuffix("_sum"): v / denominator for k, v in sums.items()
               if k not in ("loss_sum", "weight_sum", "correct_sum")},
            **extras,
        }
        new_state = {**state, **state_updates, "step": state["step"] + 1, "params": new_params,
                     "opt_state": opt_state}
        return new_state, metrics

    return train_step


def jit_train_step(train_step, shardings, mesh: Mesh, extra_shardings: tuple = ()):
    batch_sh = {k: sharding.batch_sharding(mesh, leading_axes=1) for k in BATCH_KEYS}
    return jax.jit(train_step, in_shardings=(shardings, batch_sh, *extra_shardings),
                   out_shardings=(shardings, sharding.replicated(mesh)), donate_argnums=(0,))


def make_eval_step(model_config: BertConfig, param_shardings, mesh: Mesh):
    """Jitted `(params, batch) -> {loss_sum, weight_sum, correct_sum}` for one eval batch [B, ...]."""

    def eval_step(params, batch):
        sums = mlm_sums(model_config, params, batch)
        # Real blocks start with [CLS]; the rows that pad the last batch are all [PAD].
        sums["blocks"] = jnp.sum(batch["attention_mask"][:, 0]).astype(jnp.float32)
        return sums

    batch_sh = {k: sharding.batch_sharding(mesh) for k in BATCH_KEYS}
    return jax.jit(eval_step, in_shardings=(param_shardings, batch_sh), out_shardings=sharding.replicated(mesh))


def count_params(params: Any) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))
