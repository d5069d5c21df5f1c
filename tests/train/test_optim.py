"""Schedules and the optimizer against PyTorch (OneCycleLR, AdamW, clip_grad_norm_) and transformers."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from transformers import get_linear_schedule_with_warmup

from jax_bert.train import optim, schedules


def _torch_one_cycle(total, **kwargs):
    """lr and beta1 that torch's AdamW uses at each of its `total` steps."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, total_steps=total, cycle_momentum=True, **kwargs)
    lrs, b1s = [], []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        b1s.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    return np.array(lrs), np.array(b1s)


@pytest.mark.parametrize("total", [50, 97])
@pytest.mark.parametrize("anneal", ["linear", "cos"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_matches_torch(total, anneal, three_phase):
    kwargs = dict(pct_start=0.3, anneal_strategy=anneal, div_factor=25.0, final_div_factor=1e4,
                  three_phase=three_phase, base_momentum=0.85, max_momentum=0.95)
    want_lr, want_b1 = _torch_one_cycle(total, max_lr=1.2e-3, **kwargs)
    lr, b1 = schedules.one_cycle(total, 1.2e-3, **kwargs)
    # Host path (float64): torch's values at every step, one at a time and vectorised.
    np.testing.assert_allclose([lr(i) for i in range(total)], want_lr, rtol=1e-7, atol=0)
    np.testing.assert_allclose(lr(np.arange(total)), want_lr, rtol=1e-7, atol=0)
    np.testing.assert_allclose([b1(i) for i in range(total)], want_b1, rtol=1e-7, atol=0)
    # Traced path (float32, what inject_hyperparams evaluates under jit): a few ulp, relative,
    # also at the end where the lr has fallen by 2.5e5.
    steps = jnp.arange(total, dtype=jnp.int32)
    np.testing.assert_allclose(np.asarray(jax.jit(lr)(steps), np.float64), want_lr, rtol=1e-6, atol=0)
    np.testing.assert_allclose(np.asarray(jax.jit(b1)(steps), np.float64), want_b1, rtol=1e-6, atol=0)
    # Past the end the final value is held (torch would extrapolate below zero).
    assert lr(total + 5) == lr(total - 1)


@pytest.mark.parametrize("warmup,total", [(10, 50), (0, 20), (30, 30), (7, 97)])
def test_warmup_linear_matches_transformers(warmup, total):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-4)
    sched = get_linear_schedule_with_warmup(opt, warmup, total)
    want = []
    for _ in range(total + 3):  # a few steps past the end: transformers clamps at 0 too
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = schedules.warmup_linear(1e-4, warmup, total)
    np.testing.assert_allclose([ours(i) for i in range(total + 3)], want, rtol=1e-7, atol=1e-20)
    np.testing.assert_allclose(jax.jit(ours)(jnp.arange(total + 3)), want, rtol=1e-6, atol=1e-12)


def _config(**overrides):
    c = optim.default_config()
    with c.unlocked():  # lets the bad-field test add a misspelt key
        c.update(overrides)
    return c


def test_make_schedules_builds_each_kind():
    lr, b1 = schedules.make_schedules(_config(schedule="constant", learning_rate=3e-4))
    assert b1 is None and lr(0) == lr(12345) == pytest.approx(3e-4)
    lr, b1 = schedules.make_schedules(_config(schedule="warmup_linear", warmup_steps=4, total_steps=8))
    assert b1 is None and lr(2) == pytest.approx(0.5e-4) and lr(8) == 0.0
    c = _config(schedule="one_cycle", learning_rate=1.2e-3, total_steps=50, anneal_strategy="cos")
    lr, b1 = schedules.make_schedules(c)
    want_lr, want_b1 = _torch_one_cycle(50, max_lr=1.2e-3, anneal_strategy="cos")
    np.testing.assert_allclose(lr(np.arange(50)), want_lr, rtol=1e-7)
    np.testing.assert_allclose(b1(np.arange(50)), want_b1, rtol=1e-7)
    c.cycle_momentum = False
    assert schedules.make_schedules(c)[1] is None


@pytest.mark.parametrize("overrides,field", [
    (dict(schedule="one_cycle", pct_start=0.0), "pct_start"),
    (dict(schedule="one_cycle", pct_start=1.0), "pct_start"),
    (dict(schedule="one_cycle", total_steps=0), "total_steps"),
    (dict(schedule="warmup_linear", total_steps=0), "total_steps"),
    (dict(schedule="cosine"), "schedule"),
    (dict(schedule="one_cycle", anneal_strategy="exp"), "anneal_strategy"),
    (dict(schedule="warmup_linear", warmup_steps=-1), "warmup_steps"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(b2=1.0), "b2"),
    (dict(weight_deacy=0.1), "weight_deacy"),
])
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        optim.make_optimizer(_config(**overrides))


def test_zero_length_phase_is_an_error():
    with pytest.raises(ValueError, match="zero steps"):  # torch divides by zero here
        schedules.one_cycle(10, 1e-3, pct_start=0.1)


def test_decay_mask_follows_the_trainer_rule():
    leaf = jnp.zeros(2)
    params = {"params": {
        "bert": {
            "embeddings": {"word_embeddings": {"embedding": leaf}, "LayerNorm": {"scale": leaf, "bias": leaf}},
            "encoder": {"layer_0": {"attention": {"output": {
                "LayerNorm": {"scale": leaf, "bias": leaf}, "dense": {"kernel": leaf, "bias": leaf}}}}},
        },
        "mlm": {"bias": leaf, "transform": {"dense": {"kernel": leaf, "bias": leaf}}},
    }}
    mask = {"/".join(str(k.key) for k in path): v
            for path, v in jax.tree_util.tree_leaves_with_path(optim.decay_mask(params))}
    decayed = sorted(k for k, v in mask.items() if v)
    assert decayed == ["params/bert/embeddings/word_embeddings/embedding",
                       "params/bert/encoder/layer_0/attention/output/dense/kernel",
                       "params/mlm/transform/dense/kernel"]
    assert len(mask) == 10
    with pytest.raises(ValueError, match="weight decay"):
        optim.make_optimizer(_config(), {"mlm": {"bias": leaf}})


def _torch_run(w0, b0, s0, x, y, steps, config, decay_all=False):
    """torch AdamW + OneCycleLR(cycle_momentum) + clip_grad_norm_, as the HF Trainer runs them.

    Returns the final params, each step's raw grads, the lr and b1 each step used, and grad norms.
    """
    w, b, s = (torch.nn.Parameter(torch.tensor(a, dtype=torch.float64)) for a in (w0, b0, s0))
    groups = [{"params": [w], "weight_decay": config.weight_decay},
              {"params": [b, s], "weight_decay": config.weight_decay if decay_all else 0.0}]
    opt = torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.b1, config.b2), eps=config.eps)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.learning_rate, total_steps=config.total_steps, pct_start=config.pct_start,
        anneal_strategy=config.anneal_strategy, div_factor=config.div_factor,
        final_div_factor=config.final_div_factor, three_phase=config.three_phase,
        cycle_momentum=True, base_momentum=config.base_momentum, max_momentum=config.max_momentum)
    xt, yt = torch.tensor(x), torch.tensor(y)
    grads, lrs, b1s, norms = [], [], [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = (((xt @ w + b) * s - yt) ** 2).mean()
        loss.backward()
        grads.append({"kernel": w.grad.numpy().copy(), "bias": b.grad.numpy().copy(),
                      "LayerNorm": {"scale": s.grad.numpy().copy()}})
        norms.append(float(torch.nn.utils.clip_grad_norm_([w, b, s], config.clip)))
        lrs.append(opt.param_groups[0]["lr"])
        b1s.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    final = {"kernel": w.detach().numpy(), "bias": b.detach().numpy(), "LayerNorm": {"scale": s.detach().numpy()}}
    return final, grads, np.array(lrs), np.array(b1s), np.array(norms)


@pytest.mark.parametrize("anneal,three_phase", [("linear", False), ("cos", True)])
def test_optimizer_matches_torch_adamw_one_cycle(anneal, three_phase):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4))
    y = rng.normal(size=(16, 3)) * 3.0
    w0, b0, s0 = rng.normal(size=(4, 3)), rng.normal(size=3), 1.0 + 0.1 * rng.normal(size=3)
    steps = 30
    config = _config(schedule="one_cycle", learning_rate=0.05, total_steps=steps, pct_start=0.3,
                     anneal_strategy=anneal, three_phase=three_phase, weight_decay=0.1, clip=1.0)
    want, grads, want_lr, want_b1, norms = _torch_run(w0, b0, s0, x, y, steps, config)
    # The run exercises clipping both ways, and the decay mask is visible in the result.
    assert (norms > 1.0).any() and (norms < 1.0).any()
    decayed_all, *_ = _torch_run(w0, b0, s0, x, y, steps, config, decay_all=True)
    assert np.abs(decayed_all["bias"] - want["bias"]).max() > 1e-4

    params = {"kernel": jnp.asarray(w0, jnp.float32), "bias": jnp.asarray(b0, jnp.float32),
              "LayerNorm": {"scale": jnp.asarray(s0, jnp.float32)}}
    tx = optim.make_optimizer(config, params)
    state = tx.init(params)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, optim.current_hyperparams(state)

    lrs, b1s = [], []
    for g in grads:
        params, state, hp = step(params, state, jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), g))
        lrs.append(float(hp["learning_rate"]))
        b1s.append(float(hp["b1"]))
    np.testing.assert_allclose(lrs, want_lr, rtol=1e-6)
    np.testing.assert_allclose(b1s, want_b1, rtol=1e-6)
    for got, ref in zip(jax.tree.leaves(params), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(got), ref, atol=1e-5, rtol=0)


def test_constant_b1_and_no_clip_match_torch_adamw():
    """warmup_linear, fixed b1 and clip disabled against AdamW + get_linear_schedule_with_warmup."""
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(5,))
    grads = rng.normal(size=(12, 5)) * 10.0  # large: clipping would change the result
    config = _config(schedule="warmup_linear", learning_rate=0.01, warmup_steps=3, total_steps=12,
                     clip=0.0, weight_decay=0.05, b1=0.8)
    w = torch.nn.Parameter(torch.tensor(w0))
    opt = torch.optim.AdamW([w], lr=0.01, betas=(0.8, 0.999), eps=1e-8, weight_decay=0.05)
    sched = get_linear_schedule_with_warmup(opt, 3, 12)
    for g in grads:
        w.grad = torch.tensor(g)
        opt.step()
        sched.step()
    params = {"kernel": jnp.asarray(w0, jnp.float32)}
    tx = optim.make_optimizer(config, params)
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update({"kernel": jnp.asarray(g, jnp.float32)}, state, params)
        params = optax.apply_updates(params, updates)
    assert float(optim.current_hyperparams(state)["b1"]) == pytest.approx(0.8)
    np.testing.assert_allclose(np.asarray(params["kernel"]), w.detach().numpy(), atol=1e-5, rtol=0)


def test_current_hyperparams_through_multisteps():
    config = _config(schedule="one_cycle", learning_rate=1e-3, total_steps=10)
    params = {"kernel": jnp.zeros(3)}
    tx = optax.MultiSteps(optim.make_optimizer(config, params), every_k_schedule=2)
    hp = optim.current_hyperparams(tx.init(params))
    lr, b1 = schedules.make_schedules(config)
    assert float(hp["learning_rate"]) == pytest.approx(lr(0), rel=1e-6)
    assert float(hp["b1"]) == pytest.approx(b1(0), rel=1e-6)
