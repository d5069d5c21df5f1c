"""small_bert_trifecta_100k and its family: the trifecta (static fixed-fan-in sparsity, RigL,
distillation from bert_1mi, one-cycle) on the original's small BERT (4 layers, hidden 512, 8 heads,
intermediate 2048, 128 positions), blocks of 128 tokens, global batch 128 (16 per GPU on 8), 100k steps.

    python scripts/pretrain.py --config configs/small_trifecta.py --workdir runs/small_trifecta       # 80%
    python scripts/pretrain.py --config configs/small_trifecta.py:85 --workdir runs/small_trifecta_85
    (variants 80, 85, 90, 2x, 4x)

The original's values per variant (its experiments/trifecta.py), with the nonzero weights of the BERT
body they give here and what the original wrote beside each config:

| variant | hidden / intermediate | sparsity per tensor | max_lr | nonzero at init | zeros | the original's comment |
|---|---|---|---|---|---|---|
| 80 | 512 / 2048 | 0.8027 | 5e-3 | 5,481,940 | 80.08% | 5,481,940, 80.08% |
| 85 | 512 / 2048 | 0.8529 | 6e-3 | 4,091,116 | 85.14% | 4,128,460, 85.13% |
| 90 | 512 / 2048 | 0.90309 | 7e-3 | 2,745,672 | 90.02% | 2,745,672, 90.02% |
| 2x | 1024 / 4096 | 0.9507 | 6e-3 | 4,057,928 | 94.94% | 4,057,928, 94.94% |
| 4x | 2048 / 8192 | 0.9909 | 8e-3 | 2,695,180 | 98.97% | 2,686,988, 98.97% |

These counts follow the small configs' own convention: nonzero parameters of the body at
initialisation, when biases and LayerNorm shifts are still 0 (the BERT-base configs count the
weights the masks keep, dense params included, instead). Two of the original's counts disagree with
its own sparsity figure beside them, which these configs match. The one-cycle schedule starts its
anneal at 10% of training (pct_start 0.1; the BERT-base configs use 0.3); RigL and distillation as in
configs/rigl80.py. Expected: the original published no eval loss for these runs.
"""
from jax_bert.train.config import load_sibling

# variant -> (width, sparsity of every sparse tensor, one-cycle max lr)
VARIANTS = {"80": (1, 0.8027, 5e-3), "85": (1, 0.8529, 6e-3), "90": (1, 0.90309, 7e-3),
            "2x": (2, 0.9507, 6e-3), "4x": (4, 0.9909, 8e-3)}


def get_config(variant: str = "80"):
    if variant not in VARIANTS:
        raise ValueError(f"unknown small trifecta variant {variant!r}; use one of {sorted(VARIANTS)}.")
    width, level, max_lr = VARIANTS[variant]
    c = load_sibling(__file__, "rigl80").get_config()
    c.model.update(num_hidden_layers=4, num_attention_heads=8, hidden_size=512 * width,
                   intermediate_size=2048 * width, max_position_embeddings=128)
    c.train.update(global_batch_size=128, seq_len=128, eval_batch_size=128)
    c.sparsity.level = level
    c.optim.update(learning_rate=max_lr, pct_start=0.1)
    return c
