"""One training step for every recipe: dense, sparse (static or RigL), distilled, accumulated.

The state is one pytree {step, params, opt_state, rng}. Sparse masks live in the optimizer state
(`sparsity.sparse` wraps the optimizer, see sparsity/transform.py), so the step is the same for
dense and sparse training:

    loss sums of each micro-batch (MLM, or distillation from frozen teachers: a branch at trace time)
    -> gradients summed over the micro-batches, divided once by the global count of masked tokens
    -> tx.update (clip, AdamW; for sparse training also the masks, and RigL under lax.cond)
    -> optax.apply_updates

`build` returns the abstract state and its shardings, a function that creates the initial state,
and the jitted train and eval steps (explicit in/out shardings, the state donated). The pretraining
loop (train/loop.py) and the benchmarks (jax_bert/bench/) both use it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

import sparsity
from jax_bert import model
from jax_bert.model import BertConfig
from jax_bert.train import losses, optim, sharding
from jax_bert.train.teachers import Teacher

BATCH_KEYS = ("input_ids", "attention_mask", "token_type_ids", "masked_positions", "masked_labels",
              "masked_weights")
# Every loss function of the step returns exactly these sums (float32 scalars): the objective
# (`loss_sum`: MLM, or distillation), the plain MLM loss, the masked-token count and the correct count.
SUM_KEYS = ("loss_sum", "mlm_loss_sum", "weight_sum", "correct_sum")


@dataclasses.dataclass(frozen=True)
class Distillation:
    """How the teachers' distributions make the target (see losses.distillation_loss); factor and
    temperature may decay linearly to `*_end` (when >= 0) over `total_steps`."""

    factor: float = 1.0
    temperature: float = 1.0
    factor_end: float = -1.0
    temperature_end: float = -1.0
    scale_by_t2: bool = False
    student_temperature: bool = False
    total_steps: int = 1

    @classmethod
    def from_config(cls, cfg, total_steps: int) -> "Distillation":
        return cls(float(cfg.factor), float(cfg.temperature), float(cfg.factor_end), float(cfg.temperature_end),
                   bool(cfg.scale_by_t2), bool(cfg.student_temperature), int(total_steps))

    def _at(self, start, end, step):
        return start if end < 0 else losses.linear_decay(start, end, step, self.total_steps)

    def factor_at(self, step):
        return self._at(self.factor, self.factor_end, step)

    def temperature_at(self, step):
        return self._at(self.temperature, self.temperature_end, step)


class Program(NamedTuple):
    """What `build` returns; see the module docstring."""

    abstract_state: dict  # jax.ShapeDtypeStruct leaves
    shardings: dict  # NamedSharding per leaf of the state
    init_state: Callable[..., dict]  # (params=None) -> a fresh state on its shardings
    train_step: Callable  # jitted (state, batch, teacher_params) -> (state, metrics)
    eval_step: Callable  # jitted (params, batch) -> loss sums and the count of real blocks


def build(model_config: BertConfig, tx: optax.GradientTransformation, mesh: Mesh, *, seed: int = 0,
          teachers: Sequence[Teacher] = (), distill: Distillation | None = None) -> Program:
    """The state, its shardings and the jitted steps of one pretraining recipe.

    tx: the optimizer (optim.make_train_optimizer: wrapped by sparsity.sparse for sparse training).
    teachers: frozen teachers; when given, the objective is distillation with `distill`'s settings.
    The train step's batch arrays are [accum_steps, micro_batch, ...] (BATCH_KEYS); teacher_params
    is `[t.params for t in teachers]`.
    """
    if teachers and distill is None:
        distill = Distillation()
    abstract, shardings = _state_shardings(model_config, tx, mesh)

    def init_state(params=None) -> dict:
        """A fresh state created on its shardings; `params` (host arrays, e.g. from load_hf) replace
        the random init. Sparse training starts with its masked-off weights at exactly 0."""
        def make(initial):
            init_rng, step_rng = jax.random.split(jax.random.key(seed))
            p = model.init_params(model_config, init_rng) if initial is None else initial
            opt_state = tx.init(p)
            masks = sparsity.get_masks(opt_state)
            if masks is not None:
                p = sparsity.apply_masks(p, masks)
            return {"step": jnp.zeros((), jnp.int32), "params": p, "opt_state": opt_state, "rng": step_rng}

        if params is None:
            return jax.jit(lambda: make(None), out_shardings=shardings)()
        params = sharding.host_to_global(params, shardings["params"])
        return jax.jit(make, in_shardings=(shardings["params"],), out_shardings=shardings)(params)

    def student_mlm(params, micro, dropout_rng=None):
        """The student's logits at the masked positions and its MLM loss sums (dropout iff a rng)."""
        logits = model.apply(model_config, params, micro["input_ids"], micro["attention_mask"],
                             micro["token_type_ids"], masked_positions=micro["masked_positions"],
                             dropout_rng=dropout_rng)
        return logits, losses.mlm_loss(logits, micro["masked_labels"], micro["masked_weights"])

    def loss_sums(params, micro, dropout_rng, step, teacher_params):
        """(objective, sums with SUM_KEYS) of one micro-batch [B, ...]."""
        logits, mlm = student_mlm(params, micro, dropout_rng)
        if not teachers:  # plain MLM
            return mlm["loss_sum"], {**mlm, "mlm_loss_sum": mlm["loss_sum"]}
        # Distillation: the frozen teachers see the same masked input, in eval mode, at the masked
        # positions only; the objective is the soft cross-entropy against their (averaged) target.
        teacher_logits = [
            jax.lax.stop_gradient(model.apply(t.config, t_params, micro["input_ids"], micro["attention_mask"],
                                              micro["token_type_ids"], masked_positions=micro["masked_positions"]))
            for t, t_params in zip(teachers, teacher_params)]
        kd = losses.distillation_loss(
            logits, teacher_logits if len(teachers) > 1 else teacher_logits[0], micro["masked_labels"],
            micro["masked_weights"], factor=distill.factor_at(step), temperature=distill.temperature_at(step),
            scale_by_t2=distill.scale_by_t2, student_temperature=distill.student_temperature,
            teacher_weights=[t.weight for t in teachers] if len(teachers) > 1 else None)
        return kd["loss_sum"], {**kd, "mlm_loss_sum": mlm["loss_sum"]}

    def train_step(state, batch, teacher_params):
        params, step = state["params"], state["step"]
        step_rng = jax.random.fold_in(state["rng"], step)  # dropout: a pure function of the step
        grad_fn = jax.value_and_grad(loss_sums, has_aux=True)

        def micro_step(carry, xs):
            micro, i = xs
            (_, sums), grads = grad_fn(params, micro, jax.random.fold_in(step_rng, i), step, teacher_params)
            return jax.tree.map(jnp.add, carry, (grads, sums)), None

        zeros = (jax.tree.map(jnp.zeros_like, params), {k: jnp.zeros((), jnp.float32) for k in SUM_KEYS})
        accum = batch["input_ids"].shape[0]
        (grads, sums), _ = jax.lax.scan(micro_step, zeros, (batch, jnp.arange(accum)))
        # One division by every masked token of the global batch: accumulation changes only memory.
        denominator = jnp.maximum(sums["weight_sum"], 1.0)
        grads = jax.tree.map(lambda g: g / denominator, grads)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        hyper = optim.current_hyperparams(opt_state)
        metrics = {"loss": sums["loss_sum"] / denominator, "mlm_loss": sums["mlm_loss_sum"] / denominator,
                   "mlm_accuracy": sums["correct_sum"] / denominator, "masked_tokens": sums["weight_sum"],
                   "grad_norm": optax.tree.norm(grads), "learning_rate": hyper["learning_rate"], "b1": hyper["b1"]}
        masks = sparsity.get_masks(opt_state)
        if masks is not None:  # the sparse tensors' kept count: gradual pruning's progress in the logs
            metrics["kept_weights"] = sum(jnp.sum(m, dtype=jnp.int32) for m in jax.tree.leaves(masks))
        return {**state, "step": step + 1, "params": new_params, "opt_state": opt_state}, metrics

    def eval_step(params, batch):
        """MLM loss sums of one eval batch [B, ...] (evaluation is plain MLM, also when distilling)."""
        _, sums = student_mlm(params, batch)
        # Real blocks start with [CLS]; the rows that pad the last batch are all [PAD].
        sums["blocks"] = jnp.sum(batch["attention_mask"][:, 0]).astype(jnp.float32)
        return sums

    rep = sharding.replicated(mesh)
    micro_batches = {k: sharding.batch_sharding(mesh, leading_axes=1) for k in BATCH_KEYS}
    train_step, eval_step = (sharding.constrained_to_mesh(f, mesh) for f in (train_step, eval_step))
    jitted_train = jax.jit(train_step, in_shardings=(shardings, micro_batches, [t.shardings for t in teachers]),
                           out_shardings=(shardings, rep), donate_argnums=(0,))
    eval_batch = {k: sharding.batch_sharding(mesh) for k in BATCH_KEYS}
    jitted_eval = jax.jit(eval_step, in_shardings=(shardings["params"], eval_batch), out_shardings=rep)
    return Program(abstract, shardings, init_state, jitted_train, jitted_eval)


def _state_shardings(model_config: BertConfig, tx, mesh: Mesh):
    """(abstract state, shardings of the state), computed without allocating any array."""
    abstract_params = model.abstract_params(model_config)
    param_sh = sharding.param_shardings(model.logical_axes(model_config), abstract_params, mesh)
    abstract_opt = jax.eval_shape(tx.init, abstract_params)
    rep = sharding.replicated(mesh)
    abstract = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": abstract_params, "opt_state": abstract_opt,
                "rng": jax.eval_shape(lambda: jax.random.key(0))}
    shardings = {"step": rep, "params": param_sh,
                 "opt_state": sharding.shardings_like_params(abstract_opt, abstract_params, param_sh, mesh),
                 "rng": rep}
    return abstract, shardings


def count_params(params: Any) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
