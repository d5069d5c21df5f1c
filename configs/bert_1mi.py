"""bert_1mi: the dense teacher, BERT-base trained for 1M steps (the original's; docs/original.md).

    python scripts/pretrain.py --config configs/bert_1mi.py --workdir runs/bert_1mi

Same model, data and optimizer as configs/bert_100k.py, with the linear decay spread over 1M steps.
Expected result (the original): eval loss 1.612, perplexity 5.013. Its work directory is the teacher
of configs/sparse80_kd_onecycle.py and configs/rigl80.py.
"""
from jax_bert.train.config import load_sibling


def get_config():
    c = load_sibling(__file__, "bert_100k").get_config()
    c.train.steps = 1_000_000
    c.train.checkpoint_every = 10_000
    c.train.eval_every = 50_000
    return c
