"""sparse_80%_kd_onecycle_lr_rigl: the headline run — 80%-sparse BERT-base with RigL, distilled
from bert_1mi, on a one-cycle schedule.

    python scripts/pretrain.py --config configs/rigl80.py --workdir runs/rigl80

configs/sparse80_kd_onecycle.py plus RigL every 100 steps from step 100 to the end of training,
drop fraction 0.3 with cosine decay, global allocation across all sparse tensors, regrown weights at
zero (Adam moments kept, as the original; --config.sparsity.rigl.reset_moments=True for the paper's).
Expected (the original): eval loss 2.138, perplexity 8.482 — better than static sparsity (2.28).
"""
from jax_bert.train.config import load_sibling


def add_rigl(c):
    c.sparsity.rigl.update(enabled=True, update_freq=100, start=100, end_fraction=1.0, drop_fraction=0.3,
                           schedule="cosine", mode="global", reset_moments=False)
    return c


def get_config():
    return add_rigl(load_sibling(__file__, "sparse80_kd_onecycle").get_config())
