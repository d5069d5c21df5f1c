"""The offline default: a tiny BERT on the standard library's docstrings, on a laptop CPU.

    python scripts/pretrain.py --config configs/tiny.py --workdir runs/tiny

Needs no network: the corpus is the Python standard library's docstrings and pydoc topics, the
WordPiece vocabulary (8k) is trained on it and cached in the work directory. On a 2-core CPU it takes
about 2 to 4 minutes; the MLM loss falls from about 9 to below 6 and the final evaluation prints a
perplexity of about 220 (210-240; eval loss about 5.39) on the held-out 5% (docs/benchmarks.md records runs).
"""
from jax_bert.train.config import base_config


def get_config():
    c = base_config()
    c.model.update(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                   max_position_embeddings=128)
    c.tokenizer.vocab_size = 8000
    c.train.update(steps=400, global_batch_size=32, seq_len=128, log_every=25, eval_every=200,
                   eval_batch_size=64, checkpoint_every=200, keep_checkpoints=2)
    c.optim.update(schedule="warmup_linear", learning_rate=2e-3, warmup_steps=40, weight_decay=0.01)
    return c
