"""The LR range test (Smith 2018, "A disciplined approach to neural network hyper-parameters", 4.1; the
original's LRRangeTestMixin): train a pretraining config for ~100 steps while the learning rate ramps
from min_lr to max_lr (linearly, the original's default, or exponentially), evaluate on a fixed 5% of
the validation blocks after every step, and suggest one-cycle's max_lr.

The rule (`suggest`): the learning rate at the minimum of the validation loss smoothed by a centred
moving average (9 steps by default): past that rate the validation loss rises. The original's users
read off the rate "where the validation loss starts to rise while the training loss still falls"; the
suggestion says whether the (smoothed) training MLM loss was still falling there.

Everything but the lr schedule is the config's own step (train/step.py) on the loop's data (the batches
of steps 0, 1, ... of a run of this config, distillation included), with two changes: the masks do not
change during the test (RigL is off; a gradual-pruning config runs dense, as it starts), so that the
curve shows the learning rate's effect alone, and Adam's b1 is the constant `optim.b1` (the one-cycle
b1 schedule belongs to the one-cycle lr the test replaces).

Outputs in the work directory: lr_range.csv (one row per step), lr_range.png (the curves) and
lr_range.json (the settings and the suggestion).
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from jax_bert import files
from jax_bert.train import loop, optim, schedules, sharding, sources
from jax_bert.train.config import validate

log = logging.getLogger(__name__)

COLUMNS = ("step", "learning_rate", "train_loss", "train_mlm_loss", "eval_loss", "eval_loss_smoothed",
           "train_mlm_loss_smoothed")


def range_test_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The config the test trains: the same, with masks that do not change (see the module docstring)."""
    c = ml_collections.ConfigDict(config.to_dict())
    c.sparsity.rigl.enabled = False
    if c.sparsity.gmp.enabled:  # gradual pruning starts dense
        c.sparsity.gmp.enabled = False
        c.sparsity.enabled = False
    c.optim.schedule = "constant"  # only to fix b1 at optim.b1; the lr is the range test's ramp
    return c


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the evaluation fraction must be in (0, 1], got {fraction}.")


def _check_window(window: int) -> None:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"the smoothing window must be an odd number >= 1, got {window}.")


def eval_subset(blocks: np.ndarray, fraction: float) -> np.ndarray:
    """Every round(1 / fraction)-th validation block, from the first: a fixed subset spread over the set."""
    _check_fraction(fraction)
    return blocks[::max(1, round(1.0 / fraction))]


def smooth(values, window: int) -> np.ndarray:
    """Centred moving average over `window` points (odd), the window shrinking at both ends."""
    _check_window(window)
    x = np.asarray(values, np.float64)
    sums = np.concatenate([[0.0], np.cumsum(x)])
    i, half = np.arange(len(x)), window // 2
    lo, hi = np.maximum(i - half, 0), np.minimum(i + half + 1, len(x))
    return (sums[hi] - sums[lo]) / (hi - lo)


def suggest(learning_rates, eval_losses, train_losses, window: int = 9) -> dict[str, Any]:
    """The suggested max_lr, the rule that chose it and what to watch out for (finite points only)."""
    lrs = np.asarray(learning_rates, np.float64)
    # A window wider than a third of the curve would flatten it: short tests smooth less.
    window = min(window, max(1, (len(lrs) // 3 - 1) // 2 * 2 + 1))
    ev, tr = smooth(eval_losses, window), smooth(train_losses, window)
    best = int(np.argmin(ev))
    rule = (f"the learning rate at the minimum of the validation loss smoothed by a centred moving average of "
            f"{window} steps: past it the validation loss rises")
    back = max(0, best - window)
    falling = bool(tr[best] < tr[back]) if best > back else False
    notes = [f"the smoothed training MLM loss was {'still falling' if falling else 'no longer falling'} there"]
    if best == len(lrs) - 1:
        notes.append("the validation loss was still falling at the top of the range: rerun with a larger --max_lr")
    if best == 0:
        notes.append("the validation loss rose from the first step: rerun with a smaller --min_lr")
    return {"suggested_max_lr": float(lrs[best]), "step": best, "rule": rule, "notes": notes, "window": window,
            "eval_loss_smoothed": ev, "train_mlm_loss_smoothed": tr}


def _csv_text(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] if isinstance(row[k], int) else f"{row[k]:.8g}" for k in COLUMNS})
    return out.getvalue()


def _plot(path: str, rows: list[dict], suggestion: dict, mode: str) -> None:
    # Figure + Agg canvas, not pyplot: no global state (as sparsity/stats.py).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lr = [r["learning_rate"] for r in rows]
    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(lr, [r["train_mlm_loss"] for r in rows], color="tab:blue", alpha=0.3, label="training MLM loss")
    ax.plot(lr, [r["train_mlm_loss_smoothed"] for r in rows], color="tab:blue", label="training, smoothed")
    ax.plot(lr, [r["eval_loss"] for r in rows], ".", color="tab:orange", label="validation loss (fixed subset)")
    ax.plot(lr, [r["eval_loss_smoothed"] for r in rows], color="tab:orange", label="validation, smoothed")
    ax.axvline(suggestion["suggested_max_lr"], color="tab:green", linestyle="--",
               label=f"suggested max_lr {suggestion['suggested_max_lr']:.3g}")
    if mode == "exponential":
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("MLM cross-entropy (nats)")
    ax.set_title("LR range test")
    ax.legend()
    fig.tight_layout()
    files.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def run(config: ml_collections.ConfigDict, workdir: str, *, min_lr: float = 1e-5, max_lr: float = 1e-2,
        steps: int = 100, mode: str = "linear", eval_fraction: float = 0.05, window: int = 9) -> dict[str, Any]:
    """Runs the test of `config` in `workdir`; returns the rows, the suggestion, the files written and the
    final train state (`state`)."""
    validate(config)
    lr_schedule = schedules.lr_range(min_lr, max_lr, steps, mode)  # bad settings fail before any work
    _check_window(window)
    _check_fraction(eval_fraction)
    sources.check_sources(config)
    sharding.maybe_initialize_distributed(config.distributed)
    os.makedirs(workdir, exist_ok=True)
    test_config = range_test_config(config)
    prepared = loop.setup(config, workdir, optimizer=lambda abstract_params: optim.make_train_optimizer(
        test_config, abstract_params, lr_schedule=lr_schedule))
    mesh, _, train_blocks, val_blocks, _, init_params, mask_kw, program, teacher_params = prepared
    if val_blocks is None or len(val_blocks) == 0:
        raise ValueError("the range test evaluates on validation blocks, and this config has none: set "
                         "data.validation_fraction > 0.")
    subset = eval_subset(val_blocks, eval_fraction)
    state = program.init_state(init_params)
    log.info("LR range test: %s lr %g -> %g over %d steps, evaluated on %d of %d validation blocks",
             mode, min_lr, max_lr, steps, len(subset), len(val_blocks))

    rows, diverged = [], None
    for s in range(steps):
        batch = sharding.place_batch(loop.local_batch(train_blocks, s, config, mask_kw), mesh, leading_axes=1)
        state, metrics = program.train_step(state, batch, teacher_params)
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        eval_loss = loop.evaluate(program.eval_step, state["params"], subset, config, mask_kw, mesh)["eval_loss"]
        row = {"step": s, "learning_rate": metrics["learning_rate"], "train_loss": metrics["loss"],
               "train_mlm_loss": metrics["mlm_loss"], "eval_loss": eval_loss}
        if not all(math.isfinite(row[k]) for k in ("train_loss", "eval_loss")):
            diverged = row
            break
        rows.append(row)
        if (s + 1) % 10 == 0 or s == 0:
            log.info("step %d  lr %.4g  train %.4f  eval %.4f", s, row["learning_rate"], row["train_mlm_loss"],
                     eval_loss)
    if len(rows) < 2:
        raise ValueError(f"training diverged at step {len(rows)} (lr {lr_schedule(len(rows)):.3g}): lower --min_lr.")
    suggestion = suggest([r["learning_rate"] for r in rows], [r["eval_loss"] for r in rows],
                         [r["train_mlm_loss"] for r in rows], window)
    for i, row in enumerate(rows):
        row["eval_loss_smoothed"] = float(suggestion["eval_loss_smoothed"][i])
        row["train_mlm_loss_smoothed"] = float(suggestion["train_mlm_loss_smoothed"][i])
    if diverged is not None:
        suggestion["notes"].append(f"training diverged at step {diverged['step']} "
                                   f"(lr {diverged['learning_rate']:.3g}); the curve stops before it")
    paths = {k: os.path.join(workdir, f"lr_range.{k}") for k in ("csv", "png", "json")}
    summary = {"min_lr": min_lr, "max_lr": max_lr, "steps": steps, "mode": mode, "eval_fraction": eval_fraction,
               "eval_blocks": len(subset), "smoothing_window": suggestion["window"],
               "suggested_max_lr": suggestion["suggested_max_lr"], "at_step": suggestion["step"],
               "rule": suggestion["rule"], "notes": suggestion["notes"], "steps_run": len(rows)}
    if jax.process_index() == 0:
        files.atomic_write_text(paths["csv"], _csv_text(rows))
        _plot(paths["png"], rows, suggestion, mode)
        files.atomic_write_json(paths["json"], summary)
    return {**summary, "rows": rows, "files": paths, "state": state}
