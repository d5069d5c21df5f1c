"""Every SQuAD fine-tuning setting with its default, written once: the default `--config` of scripts/squad.py,
so each key can be changed on the command line (`--config.learning_rate=5e-5`).

The defaults are the original's SQuAD recipe (its experiments/squad.py, `bert_squad_replication`, which ran
Hugging Face's run_qa): 384 tokens, doc stride 128, batch 12, 2 epochs, learning rate 3e-5 with linear decay
and no warm-up; n-best 20 and answers of at most 30 tokens, and for v2.0 the null answer when its score
beats the best span's by more than null_threshold (0).
"""
from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.learning_rate = 3e-5
    c.batch_size = 12
    c.epochs = 2
    c.max_length = 384
    c.doc_stride = 128  # tokens each window of a long context shares with the previous one
    c.weight_decay = 0.0
    c.warmup_steps = 0
    c.clip = 1.0
    c.b1 = 0.9
    c.b2 = 0.999
    c.eps = 1e-8
    c.eval_batch_size = 64
    c.sparse_threshold = 0.1  # a kernel / embedding with more exact zeros than this keeps its zeros
    c.keep_masks = True  # sparse checkpoints: masked weights stay exactly 0 (False lets them regrow)
    # Post-processing (run_qa's defaults).
    c.n_best = 20
    c.max_answer_length = 30
    c.null_threshold = 0.0
    # Compute options (as glue/config.py): results do not depend on seed_loop, length_buckets or pack_tokens.
    c.dtype = "float32"
    c.scan_layers = False
    c.remat = False
    c.seed_loop = "auto"
    c.length_buckets = 4
    c.pack_tokens = True  # the body computes only the real tokens of a batch (packed); the same numbers
    c.log_every = 10
    # 0: every question; N: the first N (a quick run on part of the data).
    c.max_train_questions = 0
    c.max_eval_questions = 0
    return c


RANGES = {  # key: (check, what it must be)
    "learning_rate": (lambda v: v > 0, "> 0"), "batch_size": (lambda v: v >= 1, ">= 1"),
    "epochs": (lambda v: v >= 1, ">= 1"), "max_length": (lambda v: 32 <= v <= 4096, "in [32, 4096]"),
    "doc_stride": (lambda v: v >= 0, ">= 0"), "weight_decay": (lambda v: v >= 0, ">= 0"),
    "warmup_steps": (lambda v: v >= 0, ">= 0"), "clip": (lambda v: v > 0, "> 0"),
    "eval_batch_size": (lambda v: v >= 1, ">= 1"), "n_best": (lambda v: v >= 1, ">= 1"),
    "max_answer_length": (lambda v: v >= 1, ">= 1"), "length_buckets": (lambda v: v >= 1, ">= 1"),
    "log_every": (lambda v: v >= 1, ">= 1"), "max_train_questions": (lambda v: v >= 0, ">= 0"),
    "max_eval_questions": (lambda v: v >= 0, ">= 0"),
}
CHOICES = {"dtype": ("float32", "bfloat16"), "seed_loop": ("auto", "vmap", "map")}


def validate(config) -> None:
    """Exactly get_config()'s keys, each of its type and in its range; one ValueError naming the key."""
    import math

    if not isinstance(config, ml_collections.ConfigDict):
        raise ValueError(f"the SQuAD config must be an ml_collections.ConfigDict (start from "
                         f"squad.config.get_config()), got {type(config).__name__}.")
    defaults = get_config()
    unknown, missing = sorted(set(config) - set(defaults)), sorted(set(defaults) - set(config))
    if unknown:
        raise ValueError(f"unknown SQuAD config keys {unknown}; every key is in squad/config.py.")
    if missing:
        raise ValueError(f"the SQuAD config lacks keys {missing}; start from squad.config.get_config().")
    for key in defaults:
        value, kind = config[key], type(defaults[key])
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not ok:
            raise ValueError(f"SQuAD config {key} must be a finite {kind.__name__}, got {value!r}.")
        if key in RANGES and not RANGES[key][0](value):
            raise ValueError(f"SQuAD config {key} must be {RANGES[key][1]}, got {value!r}.")
        if key in CHOICES and value not in CHOICES[key]:
            raise ValueError(f"SQuAD config {key} must be one of {CHOICES[key]}, got {value!r}.")
    if config.doc_stride >= config.max_length // 2:
        raise ValueError(f"SQuAD config doc_stride ({config.doc_stride}) must be below half of max_length "
                         f"({config.max_length}).")
