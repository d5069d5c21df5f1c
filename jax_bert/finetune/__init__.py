"""The task-agnostic fine-tuning engine: every seed (or search member) of a task in one compiled step.

    engine.py    finetune(...) -> SeedRuns: the compiled steps, evaluation of every example, sparse masks kept
    seeds.py     the seed axis: vmapped or looped per device, each seed's own head and dropout
    batching.py  the host side: data order, length buckets, packed tokens, the plan of step shapes
    hparams.py   HParams and the learning rate of every step, per search member
    search.py    a hyper-parameter search's grid, split, choice and hparams files (search_config.py: its keys)

A task family (glue/) tokenizes its data into {input_ids, attention_mask, token_type_ids, labels}, fills
an HParams from its config, calls `finetune` and scores the logits with its own metrics.
"""
from jax_bert.finetune.engine import SeedRuns, base_params, finetune, predict, predictions
from jax_bert.finetune.hparams import HParams, learning_rates, member_learning_rates, steps_per_epoch, total_steps

__all__ = ["HParams", "SeedRuns", "base_params", "finetune", "learning_rates", "member_learning_rates", "predict",
           "predictions", "steps_per_epoch", "total_steps"]
