"""sparse_80%_kd_onecycle_lr: static 80% sparse BERT-base, distilled from bert_1mi, one-cycle lr.

    python scripts/pretrain.py --config configs/sparse80_kd_onecycle.py --workdir runs/sparse80_kd_onecycle

Every encoder Linear and the word embeddings are sparse, each output unit keeping a fixed random
fan-in; the level is solved so that 80.0% of ALL parameters are zero (the original reached 79.58%).
Distillation from the bert_1mi work directory (factor 1, T 1); AdamW with one-cycle: max lr 1.2e-3,
pct_start 0.3, linear two-phase anneal, div 25, final div 1e4, b1 cycled 0.95 -> 0.85 -> 0.95;
100k steps, batch 256, length 512. Expected (the original): eval loss 2.28, perplexity 9.78.
Set --config.distill.teachers=DIR if the teacher is elsewhere than runs/bert_1mi.
"""
from jax_bert.train.config import load_sibling


def sparse_kd_onecycle(c, teacher_dir: str):
    c.optim.update(schedule="one_cycle", learning_rate=1.2e-3, pct_start=0.3, anneal_strategy="linear",
                   div_factor=25.0, final_div_factor=1e4, cycle_momentum=True, base_momentum=0.85,
                   max_momentum=0.95, three_phase=False, b2=0.999, eps=1e-8, weight_decay=0.01, clip=1.0)
    c.sparsity.update(enabled=True, method="fixed_fan_in", overall=0.8)
    c.distill.update(teachers=({"path": teacher_dir, "weight": 1.0},), factor=1.0, temperature=1.0,
                     teacher_dtype=c.model.dtype)
    return c


def get_config():
    c = load_sibling(__file__, "bert_100k").get_config()
    return sparse_kd_onecycle(c, "runs/bert_1mi")
