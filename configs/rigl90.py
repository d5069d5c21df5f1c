"""bert_sparse_90_trifecta_100k: configs/rigl80.py at 90% per sparse tensor, one-cycle max lr 1.2e-3.

    python scripts/pretrain.py --config configs/rigl90.py --workdir runs/rigl90

The original's values (its experiments/trifecta.py): sparsity 0.90 of every encoder Linear and of the
word embeddings (each unit keeps 77 of 768 inputs, 307 of 3072), max_lr 1.2e-3; everything else as
configs/rigl80.py (RigL every 100 steps, distillation from bert_1mi, batch 256 of 512 tokens, 100k steps).
Nonzero weights of the BERT body (embeddings and encoder, dense params included): 11,255,156 of
107,719,680 (89.55% zeros). Expected: the original published no eval loss for this run; it should be
above rigl80's 2.138 (fewer weights, same schedule).
"""
from jax_bert.train.config import load_sibling


def get_config():
    return load_sibling(__file__, "rigl80").variant(level=0.90, max_lr=1.2e-3)
