"""bert_sparse_85_trifecta_100k: configs/rigl80.py at 85% per sparse tensor, one-cycle max lr 1e-3.

    python scripts/pretrain.py --config configs/rigl85.py --workdir runs/rigl85

The original's values (its experiments/trifecta.py): sparsity 0.85 of every encoder Linear and of the
word embeddings (each unit keeps 115 of 768 inputs, 461 of 3072), max_lr 1e-3; everything else as
configs/rigl80.py (RigL every 100 steps, distillation from bert_1mi, batch 256 of 512 tokens, 100k steps).
Nonzero weights of the BERT body (embeddings and encoder, dense params included): 16,577,932 of
107,719,680 (84.61% zeros). Expected: the original published no eval loss for this run; it should sit
between rigl80 (2.138) and rigl90.
"""
from jax_bert.train.config import load_sibling


def get_config():
    return load_sibling(__file__, "rigl80").variant(level=0.85, max_lr=1e-3)
