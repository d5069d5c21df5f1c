"""GMP 80% of a pretrained dense BERT-base: bert_1mi pruned gradually to 80% sparse on the three-stage lr.

    python scripts/pretrain.py --config configs/bert_1mi.py --workdir runs/bert_1mi    # the dense model first
    python scripts/pretrain.py --config configs/gmp80_pretrained.py --workdir runs/gmp80_pretrained

The original's bert_1mi_pretrained_gmp_52k (GradualMagnitudePruningMixin with ThreeStageLRMixin and
distillation): starts from the bert_1mi export (runs/bert_1mi/hf, its `hf/` directory), 52,000 steps =
2,000 of warm-up (the lr rises linearly from 0 to 3e-4, no pruning), 30,000 of pruning (every 1,000
steps, 31 prunes, the kept count of every encoder Linear and the word embeddings together following the
cubic to 80% of the BERT body, dense parameters included) at constant lr, and 20,000 of cool-down (the lr
x0.1 after a third and again after two thirds), distilled from bert_1mi itself. max_lr 3e-4 was the
original's choice, a little below what its LR range test suggested (scripts/lr_range_test.py runs one).
Expected: the original published no number for this run; compare its eval loss with configs/rigl80.py.
Set --config.init_from_hf=DIR and --config.distill.teachers=DIR if bert_1mi is elsewhere.
"""
from jax_bert.train.config import BERT_BODY, load_sibling

WARMUP, PRUNING, COOLDOWN = 2_000, 30_000, 20_000


def prune_pretrained(c, model_dir: str, teacher_dir: str, *, max_lr: float, warmup_steps: int, pruning_steps: int,
                     cooldown_steps: int, prune_period: int, target: float = 0.8, counted_over: str = BERT_BODY):
    """Gradual magnitude pruning of the pretrained model in model_dir (a Hugging Face directory), with the
    three-stage lr whose phases are the pruning's, and distillation from teacher_dir."""
    c.init_from_hf = model_dir
    c.train.steps = warmup_steps + pruning_steps + cooldown_steps
    c.optim.update(schedule="three_stage", learning_rate=max_lr, warmup_steps=warmup_steps,
                   cooldown_steps=cooldown_steps, cooldown_gamma=0.1, b1=0.9, b2=0.999, eps=1e-8,
                   weight_decay=0.01, clip=1.0)
    c.distill.update(teachers=({"path": teacher_dir, "weight": 1.0},), factor=1.0, temperature=1.0,
                     teacher_dtype=c.model.dtype)
    return load_sibling(__file__, "gmp80_onecycle").add_gmp(
        c, warmup_steps=warmup_steps, cooldown_steps=cooldown_steps, prune_period=prune_period, target=target,
        counted_over=counted_over)


def get_config():
    c = load_sibling(__file__, "bert_100k").get_config()
    c.train.update(eval_every=10_000, checkpoint_every=2_000)
    return prune_pretrained(c, "runs/bert_1mi/hf", "runs/bert_1mi", max_lr=3e-4, warmup_steps=WARMUP,
                            pruning_steps=PRUNING, cooldown_steps=COOLDOWN, prune_period=1_000)
