"""sparse_80%_kd_onecycle_lr_rigl: the headline run — 80%-sparse BERT-base with RigL, distilled
from bert_1mi, on a one-cycle schedule.

    python scripts/pretrain.py --config configs/rigl80.py --workdir runs/rigl80
    python scripts/pretrain.py --config configs/rigl80.py:overall80 --workdir runs/rigl80_overall   # 80.0% overall

configs/sparse80_kd_onecycle.py (the original's layout, 80% per tensor = 79.58% of the BERT body;
`:overall80` for exactly 80.0% of all parameters) plus the original's RigL: every 100 steps from
step 100 to the end of training, drop fraction 0.3 with cosine decay, one ranking across all sparse
tensors (global), regrown weights at zero, also a weight pruned and regrown in the same update
(reinit_when_same), Adam moments kept (--config.sparsity.rigl.reset_moments=True for the RigL paper's
choice). One difference remains: the original regrew by the gradient of a fresh batch after pruning;
here the step's own gradient is used (no extra forward and backward pass).
Expected (the original): eval loss 2.138, perplexity 8.482 — better than static sparsity (2.28); on
another Wikipedia dump than ours (see configs/bert_100k.py), so compare the order, not the values.
"""
from jax_bert.train.config import load_sibling


def add_rigl(c):
    c.sparsity.rigl.update(enabled=True, update_freq=100, start=100, end_fraction=1.0, drop_fraction=0.3,
                           schedule="cosine", mode="global", reset_moments=False, reinit_when_same=True)
    return c


def get_config(layout: str = "original"):
    return add_rigl(load_sibling(__file__, "sparse80_kd_onecycle").get_config(layout))


def variant(level: float, max_lr: float, width: int = 1):
    """This recipe at another per-tensor sparsity `level` and one-cycle `max_lr`, on a BERT-base
    `width` times as wide (hidden and intermediate sizes; 12 heads and 12 layers, as the original
    widened it): the original's trifecta family (configs/rigl85.py, rigl90.py, rigl_2x_wide.py,
    rigl_4x_wide.py)."""
    c = get_config()
    c.sparsity.level = level
    c.optim.learning_rate = max_lr
    c.model.update(hidden_size=768 * width, intermediate_size=3072 * width)
    return c
