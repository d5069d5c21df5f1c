"""Sparsity statistics: per-tensor counts, a text table, a density bar chart for tensorboard."""
from __future__ import annotations

import io
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sparsity.masks import check_structure, is_none, named_leaves


class TensorStats(NamedTuple):
    nonzero: int
    size: int
    sparsity: float


class Stats(NamedTuple):
    per_tensor: dict[str, TensorStats]     # tree order
    overall: TensorStats
    masked: frozenset = frozenset()        # paths counted from a mask: sparse even while all weights are kept


def _shown(stats: Stats, path: str, only_sparse: bool) -> bool:
    # A masked tensor is listed even while it is fully dense (gradual pruning starts so).
    return not only_sparse or path in stats.masked or stats.per_tensor[path].sparsity > 0


def _ts(nonzero: int, size: int) -> TensorStats:
    return TensorStats(int(nonzero), int(size), 1.0 - nonzero / size if size else 0.0)


def sparsity_stats(params_or_masks, masks=None) -> Stats:
    """Per-tensor and overall (nonzero, size, sparsity).

    With ``masks``: a sparse tensor's nonzero count is its mask's kept count (the layout;
    a kept weight that happens to be 0, like a just-regrown one, still counts) and a dense
    param counts as fully nonzero, as the overall-sparsity solver does. ``params_or_masks``
    then only supplies shapes (params, or the masks themselves).
    Without ``masks``: the actual nonzero values of every leaf are counted (e.g. to check
    a checkpoint); a bool tree counts its True entries.
    """
    per: dict[str, TensorStats] = {}
    masked = set()
    if masks is None:
        for path, x in named_leaves(params_or_masks):
            per[path] = _ts(int(jnp.count_nonzero(x)), int(np.prod(jnp.shape(x))))
    else:
        check_structure(masks, params_or_masks, "params")
        treedef = jax.tree_util.tree_structure(masks, is_leaf=is_none)
        leaves = treedef.flatten_up_to(params_or_masks)
        for (path, m), x in zip(named_leaves(masks, keep_none=True), leaves):
            if m is None:
                # A dense param (or a dense subtree such as a whole module): all nonzero.
                for sub, y in named_leaves(x):
                    p = f"{path}/{sub}" if sub else path
                    n = int(np.prod(jnp.shape(y)))
                    per[p] = _ts(n, n)
            else:
                per[path] = _ts(int(jnp.sum(m, dtype=jnp.int32)), int(np.prod(m.shape)))
                masked.add(path)
    nz = sum(s.nonzero for s in per.values())
    size = sum(s.size for s in per.values())
    return Stats(per, _ts(nz, size), frozenset(masked))


def format_stats(stats: Stats, *, only_sparse: bool = False) -> str:
    """A fixed-width table: path, nonzero, size, sparsity %, then the overall row."""
    rows = [(p, s) for p, s in stats.per_tensor.items() if _shown(stats, p, only_sparse)]
    w = max([len("overall")] + [len(p) for p, _ in rows])
    line = f"{{:<{w}}}  {{:>12}}  {{:>12}}  {{:>9}}"
    out = [line.format("param", "nonzero", "size", "sparsity"), "-" * (w + 39)]
    for p, s in rows + [("overall", stats.overall)]:
        if p == "overall":
            out.append("-" * (w + 39))
        out.append(line.format(p, f"{s.nonzero:,}", f"{s.size:,}", f"{100 * s.sparsity:.2f}%"))
    return "\n".join(out)


def _figure(stats: Stats, only_sparse: bool):
    # Figure + Agg canvas directly, not pyplot: no global state, safe in threads and headless.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    items = [(p, s) for p, s in stats.per_tensor.items() if _shown(stats, p, only_sparse)]
    if not items:
        raise ValueError("no tensors to plot (only_sparse=True but nothing is sparse)")
    fig = Figure(figsize=(8, 1.5 + 0.22 * len(items)), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(items))
    ax.barh(y, [1.0 - s.sparsity for _, s in items], color="tab:blue")
    ax.set_yticks(y, [p for p, _ in items], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("density (fraction of weights kept)")
    ax.set_title(f"overall density {1 - stats.overall.sparsity:.4f}")
    fig.tight_layout()
    return fig


def density_chart_png(stats: Stats, *, only_sparse: bool = True) -> bytes:
    """Per-tensor density bar chart as PNG bytes."""
    buf = io.BytesIO()
    _figure(stats, only_sparse).savefig(buf, format="png")
    return buf.getvalue()


def density_chart(stats: Stats, *, only_sparse: bool = True) -> np.ndarray:
    """The chart as an [H, W, 3] uint8 image (rendered to PNG, decoded), for add_image(HWC)."""
    from matplotlib.image import imread

    img = imread(io.BytesIO(density_chart_png(stats, only_sparse=only_sparse)), format="png")
    return (np.asarray(img)[..., :3] * 255 + 0.5).astype(np.uint8)


def masked_nonzero(params, masks) -> int:
    """Number of masked-off weights that are not exactly 0 (the invariant says 0)."""
    check_structure(masks, params, "params")
    treedef = jax.tree_util.tree_structure(masks, is_leaf=is_none)
    total = 0
    for m, p in zip(treedef.flatten_up_to(masks), treedef.flatten_up_to(params)):
        if m is not None:
            total += int(jnp.count_nonzero(jnp.where(m, 0, p)))
    return total
