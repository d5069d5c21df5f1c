"""The three-stage lr of gradual magnitude pruning and the LR range test's ramp, at every step, against
the original's formulas run through torch's LambdaLR (the lr torch's optimizer uses at each step)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jax_bert.train import optim, schedules


def original_three_stage(max_lr, warmup_steps, cooldown_steps, total_steps, cooldown_gamma):
    """nupic.research's ThreeStageGMPLR.composed_lr (min_lr 0), with cooldown_gamma honoured."""
    pruning_steps = total_steps - warmup_steps - cooldown_steps

    def composed_lr(step):
        train_step = step + 1
        if train_step < warmup_steps:
            slope = (max_lr - 0) / (warmup_steps - 1)
            return slope * step + 0
        if train_step > total_steps - cooldown_steps:
            step_size = int(cooldown_steps / 3)
            step_into_cooldown = (step + 1) - warmup_steps - pruning_steps
            if step_into_cooldown > 2 * step_size:
                return max_lr * cooldown_gamma ** 2
            if step_into_cooldown > step_size:
                return max_lr * cooldown_gamma
            return max_lr
        return max_lr

    return composed_lr


def torch_lrs(lr_lambda, steps):
    """The lr torch's optimizer uses at each of `steps` steps under LambdaLR(base lr 1, lr_lambda)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


@pytest.mark.parametrize("max_lr,warmup,cooldown,total,gamma", [
    (3e-4, 20, 200, 520, 0.1),  # the original's BERT-base GMP (2000 + 30000 + 20000), scaled down 100x
    (2e-3, 7, 10, 40, 0.3),
    (1e-2, 0, 6, 6, 0.5),  # no warm-up, cool-down only
    (1e-3, 1, 9, 30, 0.1),
])
def test_three_stage_matches_the_original_at_every_step(max_lr, warmup, cooldown, total, gamma):
    want = torch_lrs(original_three_stage(max_lr, warmup, cooldown, total, gamma), total)
    ours = schedules.three_stage(total, max_lr, warmup, cooldown, gamma)
    np.testing.assert_allclose([ours(i) for i in range(total)], want, rtol=1e-15, atol=0)  # float64
    np.testing.assert_allclose(np.asarray(jax.jit(ours)(jnp.arange(total)), np.float64), want, rtol=1e-6, atol=0)
    assert ours(total + 10) == ours(total - 1)  # the final value is held
    # Built from an optimizer config (learning_rate is max_lr), b1 is the constant config.b1.
    c = optim.default_config()
    c.update(schedule="three_stage", learning_rate=max_lr, warmup_steps=warmup, cooldown_steps=cooldown,
             cooldown_gamma=gamma, total_steps=total)
    lr, b1 = schedules.make_schedules(c)
    assert b1 is None
    np.testing.assert_allclose(lr(np.arange(total)), want, rtol=1e-15, atol=0)


def test_three_stage_phases_in_words():
    lr = schedules.three_stage(100, 1.0, warmup_steps=11, cooldown_steps=30)
    assert lr(0) == 0.0 and lr(5) == 0.5 and lr(10) == 1.0  # linear warm-up over steps 0..10
    assert lr(10) == lr(69) == lr(79) == 1.0  # constant while pruning and for the first third of the cool-down
    assert lr(80) == pytest.approx(0.1) and lr(89) == pytest.approx(0.1)
    assert lr(90) == pytest.approx(0.01) and lr(99) == pytest.approx(0.01)


@pytest.mark.parametrize("kwargs,message", [
    (dict(cooldown_steps=5), "cooldown_steps >= 6"),
    (dict(warmup_steps=60, cooldown_steps=60), "exceed total_steps"),
    (dict(cooldown_gamma=0.0), "cooldown_gamma must be in"),
])
def test_three_stage_bad_settings(kwargs, message):
    args = dict(warmup_steps=10, cooldown_steps=30, cooldown_gamma=0.1) | kwargs
    with pytest.raises(ValueError, match=message):
        schedules.three_stage(100, 1e-3, **args)


@pytest.mark.parametrize("mode", ["linear", "exponential"])
@pytest.mark.parametrize("steps", [100, 7])
def test_lr_range_matches_the_original_ramp(mode, steps):
    min_lr, max_lr = 1e-6, 1e-2

    def original(step):  # nupic.research's linear_lr / exponential_lr
        if mode == "linear":
            return (max_lr - min_lr) / (steps - 1) * step + min_lr
        return (max_lr / min_lr) ** (step / (steps - 1)) * min_lr

    want = torch_lrs(original, steps)
    ours = schedules.lr_range(min_lr, max_lr, steps, mode)
    np.testing.assert_allclose([ours(i) for i in range(steps)], want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.asarray(jax.jit(ours)(jnp.arange(steps)), np.float64), want, rtol=2e-6, atol=0)
    assert ours(0) == pytest.approx(min_lr, rel=1e-15) and ours(steps - 1) == pytest.approx(max_lr, rel=1e-15)


def test_lr_range_bad_settings():
    with pytest.raises(ValueError, match="0 < min_lr < max_lr"):
        schedules.lr_range(1e-2, 1e-3, 100)
    with pytest.raises(ValueError, match="mode must be one of"):
        schedules.lr_range(1e-5, 1e-3, 100, "cubic")
    with pytest.raises(ValueError, match="at least 2 steps"):
        schedules.lr_range(1e-5, 1e-3, 1)
