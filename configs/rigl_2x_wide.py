"""bert_sparse_trifecta_2x_100k: the trifecta on a BERT-base twice as wide (hidden 1536, intermediate
6144, 12 heads of 128, 12 layers) at 95.95% per sparse tensor, so that it holds about as many nonzero
weights as the 80%-sparse BERT-base's encoder; one-cycle max lr 1.5e-3.

    python scripts/pretrain.py --config configs/rigl_2x_wide.py --workdir runs/rigl_2x_wide
    python scripts/plan.py --config configs/rigl_2x_wide.py --devices 32 --accelerator a100-40gb

The original's values (its experiments/trifecta.py): sparsity 0.9595 (each unit keeps 62 of 1536
inputs, 249 of 6144), max_lr 1.5e-3 (its LR range test suggested 2.3e-3, which trained unstably), 8
sequences per device on 32 A100s (global batch 256 of 512 tokens), RigL, distillation from bert_1mi
and the schedule of configs/rigl80.py. Nonzero weights of the BERT body (embeddings and encoder,
dense params included): 16,561,784 of 385,308,672 (95.70% zeros); the original's "16.56 M
on-params". Its state is not small: the masked weights are stored dense, 0.39 B of them in the body.
Expected: the original reported about 35 hours on four 8-GPU A100 hosts (about 26 GB per GPU) and
no eval loss.
"""
from jax_bert.train.config import load_sibling


def get_config():
    return load_sibling(__file__, "rigl80").variant(level=0.9595, max_lr=1.5e-3, width=2)
