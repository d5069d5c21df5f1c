"""The training step itself, on a toy BERT: dense, accumulated, static sparse, RigL and distilled
steps against references computed here from the model, the losses and the optimizer."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparsity
from jax_bert import model
from jax_bert.model import BertConfig
from jax_bert.train import losses, optim, sharding, sparse_config
from jax_bert.train import step as train_step
from jax_bert.train.config import base_config
from jax_bert.train.teachers import Teacher

CFG = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
METRICS = {"loss", "mlm_loss", "mlm_accuracy", "masked_tokens", "grad_norm", "learning_rate", "b1"}


def batch(accum=1, rows=8, length=12, slots=3, seed=0):
    r = np.random.default_rng(seed)
    ids = r.integers(5, CFG.vocab_size, (rows, length)).astype(np.int32)
    positions = np.sort(np.stack([r.choice(np.arange(1, length), slots, replace=False) for _ in range(rows)]), 1)
    labels = np.take_along_axis(ids, positions, 1)
    weights = np.ones((rows, slots), np.float32)
    weights[0, -1] = 0.0  # a padding slot
    ids[np.arange(rows)[:, None], positions] = 4
    flat = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids),
            "masked_positions": positions.astype(np.int32), "masked_labels": labels.astype(np.int32),
            "masked_weights": weights}
    return {k: v.reshape(accum, rows // accum, *v.shape[1:]) for k, v in flat.items()}


def run_config(**sparse):
    c = base_config()
    c.train.steps = 10
    c.optim.update(learning_rate=1e-2, warmup_steps=0)
    if sparse:
        c.sparsity.update(enabled=True, level=0.5)
        c.sparsity.rigl.update(**sparse)
    return c


def build(config, teachers=(), distill=None):
    mesh = sharding.make_mesh({"data": -1})
    abstract = model.abstract_params(CFG)
    tx = optim.make_train_optimizer(config, abstract)
    program = train_step.build(CFG, tx, mesh, seed=0, teachers=teachers, distill=distill)
    return program, tx


# The references run jitted: op by op, a BERT's gradient compiles hundreds of small programs (tens of
# seconds); jitted, one. Either way it is the model's, the losses' and the optimizer's own arithmetic.
apply = jax.jit(model.apply, static_argnums=0)


@jax.jit
def mean_mlm_loss(params, b):
    """The reference objective: MLM cross-entropy over every real masked slot of the whole batch."""
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in b.items()}
    logits = model.apply(CFG, params, flat["input_ids"], flat["attention_mask"], flat["token_type_ids"],
                         masked_positions=flat["masked_positions"])
    sums = losses.mlm_loss(logits, flat["masked_labels"], flat["masked_weights"])
    return sums["loss_sum"] / sums["weight_sum"]


def test_dense_step_is_loss_gradient_and_the_optimizer_update():
    program, tx = build(run_config())
    state = program.init_state()
    params0 = jax.device_get(state["params"])
    b = batch()
    state, metrics = program.train_step(state, b, [])
    assert set(metrics) == METRICS
    loss, grads = jax.jit(jax.value_and_grad(mean_mlm_loss))(params0, b)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
    np.testing.assert_allclose(metrics["mlm_loss"], loss, rtol=1e-6)
    assert metrics["masked_tokens"] == b["masked_weights"].sum()
    np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-5)
    updates, _ = jax.jit(tx.update)(grads, jax.jit(tx.init)(params0), params0)
    want = optax.apply_updates(params0, updates)
    for (path, x), (_, y) in zip(sparsity.named_leaves(state["params"]), sparsity.named_leaves(want)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=path)
    assert int(state["step"]) == 1 and sparsity.get_masks(state["opt_state"]) is None


def test_accumulated_micro_batches_equal_the_whole_batch():
    runs = {}
    for accum in (1, 4):
        program, _ = build(run_config())
        state = program.init_state()
        for i in range(3):
            state, metrics = program.train_step(state, batch(accum, seed=i), [])
        runs[accum] = (jax.device_get(state["params"]), float(metrics["loss"]))
    assert runs[4][1] == pytest.approx(runs[1][1], rel=1e-5)
    for x, y in zip(jax.tree.leaves(runs[4][0]), jax.tree.leaves(runs[1][0])):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_static_sparse_step_keeps_masks_zeros_and_counts():
    config = run_config(enabled=False)
    program, _ = build(config)
    state = program.init_state()
    masks = jax.device_get(sparsity.get_masks(state["opt_state"]))
    alloc = sparsity.allocate(program.abstract_state["params"], sparse_config.sparsity_spec(config.sparsity))
    assert sparsity.masked_nonzero(state["params"], masks) == 0  # sparse from the start
    for i in range(3):
        state, metrics = program.train_step(state, batch(seed=i), [])
    assert set(metrics) == METRICS | {"kept_weights"}
    assert int(metrics["kept_weights"]) == sum(a.n_keep for a in alloc.values())
    after = jax.device_get(sparsity.get_masks(state["opt_state"]))
    for (path, m0), (_, m1) in zip(sparsity.named_leaves(masks), sparsity.named_leaves(after)):
        np.testing.assert_array_equal(m0, m1)
        assert int(m1.sum()) == alloc[path].n_keep, path
    assert sparsity.masked_nonzero(state["params"], after) == 0
    assert {p for p, _ in sparsity.named_leaves(after)} == set(alloc)


def test_rigl_step_moves_masks_and_keeps_the_density():
    program, _ = build(run_config(enabled=True, update_freq=2, start=2, drop_fraction=0.3, mode="per_tensor"))
    state = program.init_state()
    counts = [int(np.asarray(m).sum()) for m in jax.tree.leaves(sparsity.get_masks(state["opt_state"]))]
    changed = []
    for i in range(4):
        before = jax.device_get(sparsity.get_masks(state["opt_state"]))
        state, _ = program.train_step(state, batch(seed=i), [])
        masks = jax.device_get(sparsity.get_masks(state["opt_state"]))
        changed.append(any(bool(np.any(a != b)) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(masks))))
        assert [int(m.sum()) for m in jax.tree.leaves(masks)] == counts
        assert sparsity.masked_nonzero(state["params"], masks) == 0
    assert changed == [False, True, False, True]


@pytest.mark.parametrize("factor", [1.0, 0.3, 0.0])
def test_distillation_step_is_the_kd_loss_against_the_teacher(factor):
    mesh = sharding.make_mesh({"data": -1})
    t_cfg = CFG.replace(hidden_size=8, intermediate_size=16)  # a different (smaller) architecture
    t_params = model.init_params(t_cfg, jax.random.key(7))
    t_sh = sharding.param_shardings(model.logical_axes(t_cfg), jax.eval_shape(lambda: t_params), mesh)
    teacher = Teacher(t_cfg, t_params, t_sh)
    program, _ = build(run_config(), teachers=[teacher],
                       distill=train_step.Distillation(factor=factor, temperature=2.0, total_steps=10))
    state = program.init_state()
    params0 = jax.device_get(state["params"])
    b = {k: v[0] for k, v in batch().items()}
    state, metrics = program.train_step(state, {k: v[None] for k, v in b.items()}, [t_params])
    assert set(metrics) == METRICS
    inputs = (b["input_ids"], b["attention_mask"], b["token_type_ids"])
    student = apply(CFG, params0, *inputs, masked_positions=b["masked_positions"])
    teacher_logits = apply(t_cfg, t_params, *inputs, masked_positions=b["masked_positions"])
    want = losses.distillation_loss(student, teacher_logits, b["masked_labels"], b["masked_weights"],
                                    factor=factor, temperature=2.0)
    np.testing.assert_allclose(metrics["loss"], want["loss_sum"] / want["weight_sum"], rtol=1e-5)
    np.testing.assert_allclose(metrics["mlm_loss"], mean_mlm_loss(params0, batch()), rtol=1e-5)
    if factor == 0.0:
        np.testing.assert_allclose(metrics["loss"], metrics["mlm_loss"], rtol=1e-6)
    # Evaluation stays plain MLM whatever the objective.
    sums = program.eval_step(state["params"], b)
    assert set(sums) == {"loss_sum", "weight_sum", "correct_sum", "blocks"} and int(sums["blocks"]) == 8


def test_distillation_factor_and_temperature_decay_linearly():
    d = train_step.Distillation(factor=1.0, factor_end=0.0, temperature=4.0, temperature_end=1.0, total_steps=100)
    assert float(d.factor_at(jnp.int32(25))) == pytest.approx(0.75)
    assert float(d.temperature_at(jnp.int32(100))) == pytest.approx(1.0)
    assert train_step.Distillation(factor=0.5).factor_at(jnp.int32(50)) == 0.5  # no decay: a constant
