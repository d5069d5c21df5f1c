"""The config's `sparsity` group as the sparsity library's objects: the SparsitySpec of the static or
initial masks, RigL's schedule (relative to the run when `num_updates` is set), gradual magnitude
pruning's steps and schedule (the final kept count solved from the target over `counted_over`), and
`wrap_optimizer`, which wraps an optimizer in `sparsity.sparse` accordingly. Every error names the
config key to change; config.py runs these checks before any data is read.
"""
from __future__ import annotations

import math
import re

import jax
import optax

import sparsity


def _fan_in_axis(pattern: str) -> int:
    """An embedding [vocab, hidden] keeps a fixed count per row (its last axis), a kernel [in, out] per
    output unit (its inputs lie along the second to last axis)."""
    return -1 if "embedding" in pattern else -2


def sparsity_spec(cfg) -> sparsity.SparsitySpec:
    """The config's `sparsity` group as a SparsitySpec (levels checked; rules are matched later)."""
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


def rigl_schedule(cfg, total_steps: int) -> sparsity.RiglSchedule | None:
    """The config's `sparsity.rigl` group as a RiglSchedule (None when RigL is off), checked."""
    r = cfg.rigl
    if not r.enabled:
        return None
    end = int(math.floor(r.end_fraction * total_steps))
    update_freq, start = int(r.update_freq), int(r.start)
    if r.num_updates < 0:
        raise ValueError(f"sparsity.rigl.num_updates must be >= 0 (0: use update_freq and start), got {r.num_updates}.")
    if r.num_updates > 0:  # relative to the run: evenly spaced updates, the first after one interval
        update_freq = start = end // int(r.num_updates)
        if update_freq < 1:
            raise ValueError(f"sparsity.rigl.num_updates {r.num_updates} is more than the {end} steps RigL runs for "
                             f"(end_fraction {r.end_fraction} of {total_steps}).")
    schedule = sparsity.RiglSchedule(
        update_freq=update_freq, start=start, end=end, drop_fraction=float(r.drop_fraction), schedule=r.schedule,
        mode=r.mode, reset_moments=bool(r.reset_moments), reinit_when_same=bool(r.reinit_when_same),
        accumulation=int(r.accumulation_steps))
    try:
        schedule.check()
    except ValueError as e:
        raise ValueError(f"sparsity.rigl (end_fraction {r.end_fraction} of {total_steps} steps): {e}") from None
    return schedule


AROUND_UPDATE = 10  # steps logged after each RigL update (and the one before it)


def rigl_update_steps(cfg, total_steps: int) -> list[int]:
    """The steps after which RigL changes the masks (empty when RigL is off)."""
    s = rigl_schedule(cfg, total_steps)
    if s is None:
        return []
    first = s.start if s.start > 0 else s.update_freq  # counts start at 1 (sparsity/schedule.py)
    return list(range(first, min(s.end, total_steps) + 1, s.update_freq))


def rigl_logged_steps(cfg, total_steps: int) -> frozenset[int]:
    """The steps whose training loss a RigL run logs whatever train.log_every says: for each update u, the
    step before it, u itself (its loss is computed before the masks change) and the AROUND_UPDATE after, so
    the cost of an update is seen in metrics.jsonl, not inferred."""
    steps = set()
    for u in rigl_update_steps(cfg, total_steps):
        steps.update(n for n in range(u - 1, u + AROUND_UPDATE + 1) if 1 <= n <= total_steps)
    return frozenset(steps)


def gmp_steps(cfg, total_steps: int) -> tuple[int, int] | None:
    """(first, last) prune step of the config's `sparsity.gmp` group (None when GMP is off), checked."""
    g = cfg.gmp
    if not g.enabled:
        return None
    if cfg.rigl.enabled:
        raise ValueError("sparsity.rigl and sparsity.gmp are both enabled; choose one way to change the masks.")
    first, last = int(g.warmup_steps), int(total_steps) - int(g.cooldown_steps)
    if first < 1 or g.cooldown_steps < 0 or g.prune_period < 1:
        raise ValueError(f"sparsity.gmp needs warmup_steps >= 1 (the first prune follows that many steps), "
                         f"cooldown_steps >= 0 and prune_period >= 1; got {g.warmup_steps}, {g.cooldown_steps} "
                         f"and {g.prune_period}.")
    if last <= first or (last - first) % g.prune_period:
        raise ValueError(f"sparsity.gmp prunes between steps {first} and {last} (train.steps {total_steps} - "
                         f"cooldown_steps {g.cooldown_steps}); that span must be a positive multiple of "
                         f"prune_period {g.prune_period}: change warmup_steps, cooldown_steps or the period.")
    if not 0.0 < g.target < 1.0:
        raise ValueError(f"sparsity.gmp.target must be in (0, 1), got {g.target}.")
    try:
        re.compile(g.counted_over)
    except re.error as e:
        raise ValueError(f"sparsity.gmp.counted_over {g.counted_over!r} is not a valid regex: {e}") from None
    return first, last


def gmp_schedule(cfg, total_steps: int, abstract_params) -> sparsity.GmpSchedule | None:
    """The config's `sparsity.gmp` group as a GmpSchedule (None when GMP is off).

    The final kept count of the sparse tensors is solved from the target the way `sparsity.allocate`
    solves an overall level (round half up): over the params `counted_over` selects, dense ones
    counted as nonzero, (1 - target) of them stay nonzero. Every sparse tensor must lie in that set.
    """
    steps = gmp_steps(cfg, total_steps)
    if steps is None:
        return None
    g = cfg.gmp
    named = sparsity.named_leaves(abstract_params)
    counted = {path: leaf for path, leaf in named if re.search(g.counted_over, path)}
    rules = [sparsity.Rule(p, None, _fan_in_axis(p)) for p in cfg.include]
    outside = sorted(set(sparsity.match_rules(abstract_params, rules)) - set(counted))
    if outside:
        raise ValueError(f"sparsity.include selects {outside[0]}, outside sparsity.gmp.counted_over "
                         f"{g.counted_over!r}, which the target is counted over; widen counted_over ('' = all "
                         f"params) or narrow include.")
    try:
        alloc = sparsity.allocate(counted, sparsity.SparsitySpec(rules, target=float(g.target), method="uniform"))
    except ValueError as e:
        raise ValueError(f"sparsity.gmp.target {g.target} over {g.counted_over!r}: {e}") from None
    return sparsity.GmpSchedule(start=steps[0], end=steps[1], period=int(g.prune_period),
                                final_kept=sum(a.n_keep for a in alloc.values()))


def wrap_optimizer(tx: optax.GradientTransformation, cfg, total_steps: int,
                   abstract_params) -> optax.GradientTransformation:
    """`tx` wrapped by sparsity.sparse as the config's `sparsity` group says (`tx` itself when it is off):
    static masks, RigL, or gradual magnitude pruning from all-True masks. Every sparsity error (a rule
    that matches nothing, an unreachable level) is raised here, from the params' shapes."""
    if not cfg.enabled:
        return tx
    spec = sparsity_spec(cfg)
    gmp = gmp_schedule(cfg, total_steps, abstract_params)
    if gmp is not None:
        return sparsity.sparse(tx, lambda params: sparsity.full_masks(params, spec.rules), gmp)
    sparsity.allocate(abstract_params, spec)  # its errors now, not when the masks are made
    key = jax.random.key(int(cfg.seed))
    return sparsity.sparse(tx, lambda params: sparsity.init_masks(key, params, spec), rigl_schedule(cfg, total_steps))
