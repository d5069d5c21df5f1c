"""Gradual magnitude pruning at tiny scale, offline: the tiny headline recipe with GMP instead of RigL,
or the tiny dense model pruned after pretraining.

    python scripts/pretrain.py --config configs/tiny.py --workdir runs/tiny                   # the dense model first
    python scripts/pretrain.py --config configs/tiny_gmp.py --workdir runs/tiny_gmp
    python scripts/pretrain.py --config configs/tiny_gmp.py:pretrained --workdir runs/tiny_gmp_pretrained

Default (configs/gmp80_onecycle.py's use): configs/tiny_rigl.py with RigL replaced by GMP: from random
init, distilled from runs/tiny (whose tokenizer it reads), one-cycle lr 3e-3, 400 steps; dense for 40
steps, then a prune every 20 steps (14 prunes) until step 300, none in the last 100, ending at exactly
80.0% of all parameters zero (counted_over '' here, so that it compares with tiny_rigl's 80.0% overall).
`pretrained` (configs/gmp80_pretrained.py's use): runs/tiny's export pruned to the same 80.0% in 200 steps
(20 warm-up, 120 pruning with a prune every 20, 60 cool-down) on the three-stage lr (max 1e-3), distilled
from runs/tiny. Each takes a few minutes on a 2-core CPU; the log's sparsity table starts at 0.00% and
the final evaluation prints a perplexity above the dense teacher's (docs/benchmarks.md: about 265 and
259 against 249). `python scripts/gmp_check.py --workdir runs/tiny_gmp` checks the kept counts (log every
prune step with --config.train.log_every=20).
"""
import os

from jax_bert.train.config import load_sibling

USES = ("onecycle", "pretrained")


def get_config(use: str = "onecycle", teacher_dir: str = "runs/tiny"):
    if use not in USES:
        raise ValueError(f"unknown GMP use {use!r}; use one of {USES}.")
    if use == "onecycle":
        c = load_sibling(__file__, "tiny_rigl").get_config(teacher_dir)
        return load_sibling(__file__, "gmp80_onecycle").add_gmp(
            c, warmup_steps=40, cooldown_steps=100, prune_period=20, target=0.8, counted_over="")
    c = load_sibling(__file__, "tiny").get_config()
    c.tokenizer.name = os.path.join(teacher_dir, "tokenizer")
    c.train.update(eval_every=100, checkpoint_every=100)
    return load_sibling(__file__, "gmp80_pretrained").prune_pretrained(
        c, os.path.join(teacher_dir, "hf"), teacher_dir, max_lr=1e-3, warmup_steps=20, pruning_steps=120,
        cooldown_steps=60, prune_period=20, target=0.8, counted_over="")
