"""GMP 80% during pretraining: BERT-base from random init pruned gradually to 80% sparse (Zhu & Gupta's
gradual magnitude pruning), distilled from bert_1mi, on the one-cycle schedule of the sparse runs.

    python scripts/pretrain.py --config configs/gmp80_onecycle.py --workdir runs/gmp80_onecycle

The original's GradualMagnitudePruningMixin with OneCycleLRMixin (its GMPTrainer, used for its
tiny_bert_gmp_100k): dense for the first 5,000 steps, then every 500 steps the smallest |w| across every
encoder Linear and the word embeddings are switched off so that the kept count follows
end + (start - end) (1 - i/n)^3 over n = 151 prunes, none in the last 20,000 steps; the target, 80%, is
counted over the BERT body (embeddings and encoder), dense parameters included, as the original counted
it (`sparsity.gmp.counted_over`; '' counts over all parameters as `sparsity.overall` does). Everything else
is configs/sparse80_kd_onecycle.py's: 100k steps, batch 256, length 512, AdamW with one-cycle (max lr
1.2e-3, b1 cycled), distillation from runs/bert_1mi. Expected: the original published no GMP number for
BERT-base; compare its eval loss with configs/rigl80.py (2.138 in the original) and
configs/sparse80_kd_onecycle.py (2.28). `add_gmp` makes any pretraining config a GMP run (the study's rows
use it).
"""
from jax_bert.train.config import BERT_BODY, load_sibling


def add_gmp(c, *, warmup_steps: int, cooldown_steps: int, prune_period: int, target: float = 0.8,
            counted_over: str = BERT_BODY):
    """Gradual magnitude pruning over the config's sparse tensors (sparsity.include): dense until
    warmup_steps, a prune every prune_period steps, none in the last cooldown_steps."""
    c.sparsity.update(enabled=True)
    c.sparsity.rigl.enabled = False
    c.sparsity.gmp.update(enabled=True, target=target, counted_over=counted_over, warmup_steps=warmup_steps,
                          cooldown_steps=cooldown_steps, prune_period=prune_period)
    return c


def get_config():
    c = load_sibling(__file__, "sparse80_kd_onecycle").get_config()
    return add_gmp(c, warmup_steps=5_000, cooldown_steps=20_000, prune_period=500)
