"""The offline tiny version of the headline recipe: 80% sparse + RigL + distillation + one-cycle.

    python scripts/pretrain.py --config configs/tiny.py --workdir runs/tiny            # the teacher first
    python scripts/pretrain.py --config configs/tiny_rigl.py --workdir runs/tiny_rigl

Distils from the tiny dense run in runs/tiny (same tokenizer: it is read from the teacher's work
directory), 80.0% of all parameters zero (configs/sparse80_kd_onecycle.py's overall80 layout: at this
size the dense params are a large share, so 80% per tensor would be far below 80% overall), RigL
every 25 steps. On a 2-core CPU about 5 minutes; the
loss falls and the final evaluation prints a perplexity a little above the dense teacher's.
"""
import os

from jax_bert.train.config import load_sibling


def get_config(teacher_dir: str = "runs/tiny"):
    c = load_sibling(__file__, "tiny").get_config()
    c.tokenizer.name = os.path.join(teacher_dir, "tokenizer")  # the teacher's vocabulary
    c = load_sibling(__file__, "sparse80_kd_onecycle").sparse_kd_onecycle(c, teacher_dir, layout="overall80")
    c.optim.learning_rate = 3e-3
    c.sparsity.rigl.update(enabled=True, update_freq=25, start=25, end_fraction=1.0, drop_fraction=0.3,
                           schedule="cosine", mode="global")
    return c
