"""PNG curves of a work directory's metrics.jsonl, for looking at a run without any service
(scripts/plot.py). Tensorboard shows the same from workdir/tensorboard (the `tensorboard` extra)."""
from __future__ import annotations

import os

from jax_bert import files
from jax_bert.train.logs import read_jsonl

# One figure per group: (file name, title, y label, the metrics drawn in it).
FIGURES = (
    ("loss.png", "training and evaluation loss", "nats per masked token",
     ("train/loss", "train/mlm_loss", "eval/eval_loss")),
    ("accuracy.png", "MLM accuracy", "fraction of masked tokens", ("train/mlm_accuracy", "eval/eval_mlm_accuracy")),
    ("learning_rate.png", "learning rate and Adam's b1", "value", ("train/learning_rate", "train/b1")),
    ("grad_norm.png", "gradient norm (before clipping)", "global norm", ("train/grad_norm",)),
    ("throughput.png", "throughput", "tokens per second", ("train/tokens_per_second",)),
)


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [float(p[1]) for p in points]


def plot_curves(workdir: str, out_dir: str | None = None) -> list[str]:
    """Writes one PNG per figure that has data (into `out_dir`, default workdir/plots); returns the paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise ValueError(f"{workdir} has no metrics.jsonl: give the work directory of a pretraining run.")
    rows = read_jsonl(path)
    out_dir = out_dir or os.path.join(workdir, "plots")
    written = []
    for name, title, ylabel, keys in FIGURES:
        drawn = [(k, *_series(rows, k)) for k in keys]
        drawn = [(k, x, y) for k, x, y in drawn if x]
        if not drawn:
            continue
        # Figure + Agg canvas directly, not pyplot: no global state, headless.
        fig = Figure(figsize=(7, 4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for key, x, y in drawn:
            ax.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3, label=key)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {os.path.basename(os.path.abspath(workdir))}")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        target = os.path.join(out_dir, name)
        files.atomic_write(target, lambda p, fig=fig: fig.savefig(p, format="png"))
        written.append(target)
    if not written:
        raise ValueError(f"{path} holds no metrics yet; plot again once the run has logged a step.")
    return written
