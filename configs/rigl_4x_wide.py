"""bert_sparse_trifecta_4x_100k: the trifecta on a BERT-base four times as wide (hidden 3072,
intermediate 12288, 12 heads of 256, 12 layers) at 99.365% per sparse tensor; one-cycle max lr 5e-3.

    python scripts/pretrain.py --config configs/rigl_4x_wide.py --workdir runs/rigl_4x_wide
    python scripts/plan.py --config configs/rigl_4x_wide.py --devices 64 --accelerator a100-40gb --search

The original's values (its experiments/trifecta.py): sparsity 0.99365 (each unit keeps 20 of 3072
inputs, 78 of 12288), max_lr 5e-3, 8 sequences per device (global batch 256 of 512 tokens; its LR
range test had to drop to 2 per device with 4 accumulation steps), RigL, distillation from bert_1mi
and the schedule of configs/rigl80.py. Nonzero weights of the BERT body (embeddings and encoder,
dense params included): 11,417,936 of 1,450,094,592 (99.21% zeros); the original wrote "11.41 M
on-params" (11.42 M rounded: its figure is cut, not rounded, after two decimals). The masked weights
are stored dense: 1.45 B of them in the body, so Adam's moments and the masks make a state of about
19 GB before any activation; `scripts/plan.py` says where it fits (docs/scaling.md). Expected: the
original never finished this run ("memory needs were not worked out").
"""
from jax_bert.train.config import load_sibling


def get_config():
    return load_sibling(__file__, "rigl80").variant(level=0.99365, max_lr=5e-3, width=4)
