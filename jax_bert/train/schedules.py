"""Learning-rate and Adam-b1 schedules: pure functions of the optimizer step count.

Each schedule matches its PyTorch / Hugging Face counterpart at every step: the value a schedule
returns for step `i` (0-based) is what torch's optimizer uses at its i-th `optimizer.step()`, i.e.
after `i` calls of `scheduler.step()`. Steps past the end hold the final value (torch would raise
or extrapolate to a negative learning rate there).

Two number paths, one formula: a Python / numpy step is evaluated in float64 with numpy (exact,
for logging, plots and the parity tests); a jax array (what `optax.inject_hyperparams` passes,
usually traced under jit) is evaluated with jax.numpy in float32. The formulas are written as
sums of non-negative terms so that float32 keeps a few-ulp *relative* accuracy even when the
learning rate has decayed by 1e5 (torch's `(end - start) * pct + start` would cancel there).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

Schedule = Callable[[Any], Any]

SCHEDULES = ("warmup_linear", "one_cycle", "constant", "three_stage")
ANNEAL_STRATEGIES = ("linear", "cos")
RANGE_MODES = ("linear", "exponential")


def _numeric(step):
    """(xp, step as float): numpy float64 for host values, jax.numpy for jax arrays and tracers."""
    if isinstance(step, jax.Array):  # includes tracers
        return jnp, jnp.asarray(step).astype(jnp.result_type(float))
    return np, np.asarray(step, dtype=np.float64)


def _finish(xp, value):
    # A scalar host step gives a numpy float64 scalar, not a 0-d array.
    return value[()] if xp is np else value


def constant(value: float) -> Schedule:
    """The same value at every step."""
    value = float(value)

    def schedule(step):
        xp, s = _numeric(step)
        return _finish(xp, xp.full_like(s, value))

    return schedule


def warmup_linear(peak_lr: float, warmup_steps: int, total_steps: int) -> Schedule:
    """0 -> peak_lr linearly over `warmup_steps`, then linearly to 0 at `total_steps`.

    Same as transformers' `get_linear_schedule_with_warmup` (including its max(1, .) guards).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
    peak_lr, warmup, total = float(peak_lr), int(warmup_steps), int(total_steps)

    def schedule(step):
        xp, s = _numeric(step)
        up = s / max(1, warmup)
        down = xp.maximum(0.0, (total - s) / max(1, total - warmup))
        return _finish(xp, peak_lr * xp.where(s < warmup, up, down))

    return schedule


def _anneal(xp, strategy: str, start: float, end: float, p, q):
    """start -> end as p goes 0 -> 1 (q = 1 - p, computed separately so it keeps its precision).

    linear: torch's `(end - start) * p + start` == start * q + end * p.
    cos:    torch's `end + (start - end) / 2 * (cos(pi p) + 1)` == start * sin²(pi q/2) + end * sin²(pi p/2).
    """
    if strategy == "linear":
        return start * q + end * p
    return start * xp.sin(0.5 * math.pi * q) ** 2 + end * xp.sin(0.5 * math.pi * p) ** 2


def _one_cycle_phases(total_steps: int, pct_start: float, three_phase: bool):
    """torch's OneCycleLR phases: (end_step, lr start/end key, momentum start/end key)."""
    if three_phase:
        return [
            (float(pct_start * total_steps) - 1, "initial", "max", "max_m", "base_m"),
            (float(2 * pct_start * total_steps) - 2, "max", "initial", "base_m", "max_m"),
            (total_steps - 1, "initial", "min", "max_m", "max_m"),
        ]
    return [
        (float(pct_start * total_steps) - 1, "initial", "max", "max_m", "base_m"),
        (total_steps - 1, "max", "min", "base_m", "max_m"),
    ]


def one_cycle(
    total_steps: int,
    max_lr: float,
    *,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> tuple[Schedule, Schedule]:
    """(lr_schedule, b1_schedule) equal to torch's `OneCycleLR(..., cycle_momentum=True)` at every step.

    The lr rises from max_lr / div_factor to max_lr while b1 falls from max_momentum to
    base_momentum, then both return (lr down to max_lr / div_factor / final_div_factor).
    """
    if not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
        raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}.")
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start}.")
    if anneal_strategy not in ANNEAL_STRATEGIES:
        raise ValueError(f"anneal_strategy must be one of {ANNEAL_STRATEGIES}, got {anneal_strategy!r}.")
    if div_factor <= 0 or final_div_factor <= 0:
        raise ValueError(
            f"div_factor and final_div_factor must be > 0, got {div_factor} and {final_div_factor}."
        )
    if max_lr <= 0:
        raise ValueError(f"max_lr (learning_rate) must be > 0, got {max_lr}.")
    values = {
        "max": float(max_lr),
        "initial": float(max_lr) / div_factor,
        "max_m": float(max_momentum),
        "base_m": float(base_momentum),
    }
    values["min"] = values["initial"] / final_div_factor
    phases = _one_cycle_phases(int(total_steps), float(pct_start), three_phase)
    start_step = 0.0
    bounds = []
    for end_step, *_ in phases:
        if end_step == start_step:
            # torch divides by zero here (e.g. pct_start * total_steps == 1).
            raise ValueError(
                f"one_cycle with total_steps={total_steps}, pct_start={pct_start}, "
                f"three_phase={three_phase} has a phase of zero steps; change pct_start or total_steps."
            )
        bounds.append((start_step, end_step))
        start_step = end_step
    last = int(total_steps) - 1

    def make(lr: bool) -> Schedule:
        def schedule(step):
            xp, s = _numeric(step)
            s = xp.clip(s, 0, last)
            out = None
            # torch takes the first phase with step <= end_step, else the last one: build the
            # choice from the last phase backwards.
            for (lo, hi), (_, lr0, lr1, m0, m1) in reversed(list(zip(bounds, phases))):
                p = (s - lo) / (hi - lo)
                q = (hi - s) / (hi - lo)
                a, b = (lr0, lr1) if lr else (m0, m1)
                v = _anneal(xp, anneal_strategy, values[a], values[b], p, q)
                out = v if out is None else xp.where(s <= hi, v, out)
            return _finish(xp, out)

        return schedule

    return make(True), make(False)


def three_stage(total_steps: int, max_lr: float, warmup_steps: int, cooldown_steps: int,
                cooldown_gamma: float = 0.1) -> Schedule:
    """The original's ThreeStageGMPLR (the lr of gradual magnitude pruning on a pretrained model), with
    t = step + 1:

        t < warmup_steps:                max_lr * step / (warmup_steps - 1)     (linear warm-up from 0)
        t > total_steps - cooldown_steps: max_lr * cooldown_gamma**k, k = 1 once t - (total - cooldown)
                                         exceeds cooldown_steps // 3, 2 once it exceeds twice that
        otherwise (while pruning):       max_lr

    (The original's class ignored its cooldown_gamma argument and always used 0.1, the default here.)
    """
    if not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
        raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}.")
    if max_lr <= 0:
        raise ValueError(f"max_lr (learning_rate) must be > 0, got {max_lr}.")
    if warmup_steps < 0 or cooldown_steps // 3 < 2:
        raise ValueError(f"three_stage needs warmup_steps >= 0 and cooldown_steps >= 6 (the lr falls twice, "
                         f"every cooldown_steps // 3 steps), got {warmup_steps} and {cooldown_steps}.")
    if warmup_steps + cooldown_steps > total_steps:
        raise ValueError(f"three_stage: warmup_steps {warmup_steps} + cooldown_steps {cooldown_steps} exceed "
                         f"total_steps {total_steps}.")
    if not 0.0 < cooldown_gamma <= 1.0:
        raise ValueError(f"cooldown_gamma must be in (0, 1], got {cooldown_gamma}.")
    max_lr, warmup = float(max_lr), int(warmup_steps)
    slope = max_lr / max(1, warmup - 1)  # the original's slope, so host values are its float64 values
    cooldown_start, step_size = int(total_steps) - int(cooldown_steps), int(cooldown_steps) // 3
    once, twice = max_lr * cooldown_gamma, max_lr * cooldown_gamma ** 2

    def schedule(step):
        xp, s = _numeric(step)
        t = s + 1
        into_cooldown = t - cooldown_start
        cooldown = xp.where(into_cooldown > 2 * step_size, twice, xp.where(into_cooldown > step_size, once, max_lr))
        value = xp.where(t < warmup, slope * s, xp.where(t > cooldown_start, cooldown, max_lr))
        return _finish(xp, value)

    return schedule


def lr_range(min_lr: float, max_lr: float, steps: int, mode: str = "linear") -> Schedule:
    """The LR range test's ramp: min_lr at step 0 to max_lr at step `steps - 1`, linearly or
    exponentially (the original's `linear_lr` / `exponential_lr`); held at max_lr afterwards."""
    if mode not in RANGE_MODES:
        raise ValueError(f"the range test's mode must be one of {RANGE_MODES}, got {mode!r}.")
    if not 0 < min_lr < max_lr:
        raise ValueError(f"the range test needs 0 < min_lr < max_lr, got {min_lr} and {max_lr}.")
    if steps < 2:
        raise ValueError(f"the range test needs at least 2 steps, got {steps}.")
    lo, hi, last = float(min_lr), float(max_lr), int(steps) - 1

    def schedule(step):
        xp, s = _numeric(step)
        p = xp.clip(s, 0, last) / last
        if mode == "linear":
            value = lo * (1.0 - p) + hi * p  # non-negative terms: no cancellation near min_lr
        else:
            value = lo * xp.exp(p * math.log(hi / lo))
        return _finish(xp, value)

    return schedule


def _get(config, name: str, default):
    return config.get(name, default) if hasattr(config, "get") else getattr(config, name, default)


def make_schedules(config) -> tuple[Schedule, Optional[Schedule]]:
    """(lr_schedule, b1_schedule or None) from a config with the fields of `optim.default_config()`.

    b1_schedule is only built for `schedule='one_cycle'` with `cycle_momentum=True`; otherwise
    Adam's b1 is the constant `config.b1`. 'three_stage' reads warmup_steps, cooldown_steps and
    cooldown_gamma, with learning_rate as its max_lr.
    """
    name = _get(config, "schedule", None)
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}.")
    lr = _get(config, "learning_rate", None)
    if lr is None or lr <= 0:
        raise ValueError(f"learning_rate must be > 0, got {lr!r}.")
    if name == "constant":
        return constant(lr), None
    total = _get(config, "total_steps", None)
    if not isinstance(total, (int, np.integer)) or total < 1:
        raise ValueError(f"total_steps must be an integer >= 1, got {total!r}.")
    if name == "three_stage":
        return three_stage(total, lr, _get(config, "warmup_steps", 0), _get(config, "cooldown_steps", 0),
                           _get(config, "cooldown_gamma", 0.1)), None
    if name == "warmup_linear":
        warmup = _get(config, "warmup_steps", 0)
        if not isinstance(warmup, (int, np.integer)) or warmup < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup!r}.")
        return warmup_linear(lr, warmup, total), None
    pct_start = _get(config, "pct_start", 0.3)
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start}.")
    lr_schedule, b1_schedule = one_cycle(
        total,
        lr,
        pct_start=pct_start,
        anneal_strategy=_get(config, "anneal_strategy", "linear"),
        div_factor=_get(config, "div_factor", 25.0),
        final_div_factor=_get(config, "final_div_factor", 1e4),
        three_phase=_get(config, "three_phase", False),
        base_momentum=_get(config, "base_momentum", 0.85),
        max_momentum=_get(config, "max_momentum", 0.95),
    )
    return lr_schedule, (b1_schedule if _get(config, "cycle_momentum", True) else None)
