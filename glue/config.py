"""Every GLUE fine-tuning setting with its default (the original protocol, docs/original.md), written once.

This file is the default `--config` of scripts/glue.py, so every key here can be changed on
the command line (`--config.learning_rate=3e-5`, `--config.tasks.rte.epochs=2`). A config file of
your own starts from these defaults and changes what it needs, as the pretraining configs do:

    from glue.config import get_config as glue_defaults

    def get_config():
        c = glue_defaults()
        c.learning_rate = 3e-5
        c.tasks.rte.update(epochs=2, batch_size=8)
        return c

Per task, `epochs` and `runs` (seeds) are the protocol's; `learning_rate`, `batch_size`,
`max_length` and `weight_decay` are unset and then take the global value.
"""
from __future__ import annotations

from typing import Mapping

import ml_collections
from ml_collections import config_dict

# The protocol's (epochs, runs) per task: 5 epochs for the small CoLA / MRPC / WNLI, 3 elsewhere;
# 10 runs for CoLA / RTE / WNLI, 3 for MRPC / STS-B, 1 for the large tasks.
PROTOCOL = {"cola": (5, 10), "sst2": (3, 1), "mrpc": (5, 3), "stsb": (3, 3), "qqp": (3, 1),
            "mnli": (3, 1), "qnli": (3, 1), "rte": (3, 10), "wnli": (5, 10)}
# Per-task fields that default to the global value, with their types.
INHERITED = {"learning_rate": float, "batch_size": int, "max_length": int, "weight_decay": float}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.learning_rate = 2e-5
    c.batch_size = 32
    c.max_length = 128
    c.weight_decay = 0.0  # HF run_glue's default; the original names none
    c.warmup_steps = 0
    c.clip = 1.0  # HF Trainer's max_grad_norm
    c.b1 = 0.9
    c.b2 = 0.999
    c.eps = 1e-8
    c.eval_batch_size = 128
    c.sparse_threshold = 0.1  # a kernel / embedding with more exact zeros than this keeps its zeros
    # Drop each epoch's last partial training batch, as the original (Hugging Face's dataloader_drop_last=True;
    # the examples left out change with each epoch's shuffle). False also trains on it.
    c.drop_last = True
    # Compute options of the model (jax_bert.model.BertConfig).
    c.dtype = "float32"
    c.scan_layers = False
    c.remat = False
    c.log_every = 10  # steps between progress-bar loss updates (each is one host sync)
    # How one step runs the seeds: 'vmap', 'map' (lax.map loop) or 'auto' (map on one CPU device,
    # where batching the seeds is slower; vmap elsewhere). Results are the same either way.
    c.seed_loop = "auto"
    # Each batch is padded to the shortest of this many lengths up to max_length that holds its longest
    # row (over all seeds of the step): 4 at length 128 gives 32, 64, 96 and 128. 1 pads every batch to
    # max_length. The results do not depend on it, only the speed (one compiled step per length).
    c.length_buckets = 4
    # Training steps run the dense layers on the real tokens only (packed), attention at the bucket's
    # length; False computes every padded position. Again the same results, only the speed differs.
    c.pack_tokens = True
    # Sparse checkpoints: keep every masked weight exactly 0 while fine-tuning (True), or let pruned
    # weights regrow (False: how the original's sparse GLUE rows were fine-tuned, docs/original.md).
    c.keep_masks = True
    c.tasks = ml_collections.ConfigDict()
    for name, (epochs, runs) in PROTOCOL.items():
        c.tasks[name] = ml_collections.ConfigDict(
            {"epochs": epochs, "runs": runs,
             **{field: config_dict.placeholder(kind) for field, kind in INHERITED.items()}})
    return c


def _leaves(config, prefix: str = "") -> dict:
    out = {}
    for key in config.keys():
        value = config[key]
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _kind(defaults: ml_collections.ConfigDict, dotted: str) -> type:
    *parents, leaf = dotted.split(".")
    node = defaults
    for p in parents:
        node = node[p]
    return node.get_type(leaf)


def validate(config) -> None:
    """The config has exactly the keys of get_config(), each holding a value of its type (per-task
    fields may be unset); ranges are checked where the values are used (run.task_settings)."""
    if not isinstance(config, ml_collections.ConfigDict):
        raise ValueError(f"the GLUE config must be an ml_collections.ConfigDict (start from "
                         f"glue.config.get_config()), got {type(config).__name__}.")
    defaults = get_config()
    want, have = _leaves(defaults), _leaves(config)
    unknown, missing = sorted(set(have) - set(want)), sorted(set(want) - set(have))
    if unknown:
        raise ValueError(f"unknown GLUE config keys {unknown}; every key is in glue/config.py.")
    if missing:
        raise ValueError(f"the GLUE config lacks keys {missing}; start a config file from "
                         "glue.config.get_config().")
    for key, value in have.items():
        kind = _kind(defaults, key)
        if value is None and key.startswith("tasks.") and key.rsplit(".", 1)[1] in INHERITED:
            continue
        if kind is float:  # an int is a float too, a bool is not a number here
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not ok:
            raise ValueError(f"GLUE config {key} must be {kind.__name__}, got {value!r}.")


def task_values(config, task: str) -> dict:
    """The settings of one task: every global field, with the task's own values where it has them
    (epochs, runs, and any of INHERITED that it sets)."""
    values = {k: config[k] for k in config.keys() if k != "tasks"}
    for k, v in config.tasks[task].items():
        if v is not None:
            values[k] = v
    return values


def with_overrides(overrides: Mapping, config: ml_collections.ConfigDict | None = None
                   ) -> ml_collections.ConfigDict:
    """get_config() (or `config`) with a nested dict of changes, e.g. {"learning_rate": 1e-3,
    "tasks": {"cola": {"epochs": 3}}}; an unknown key or a value of the wrong type is a ValueError."""
    config = get_config() if config is None else config

    def merge(node, changes, prefix):
        for key, value in dict(changes).items():
            dotted = f"{prefix}{key}"
            if key not in node:
                raise ValueError(f"unknown GLUE config key {dotted!r}; every key is in glue/config.py.")
            if isinstance(node[key], ml_collections.ConfigDict):
                if not isinstance(value, (Mapping, ml_collections.ConfigDict)):
                    raise ValueError(f"GLUE config key {dotted!r} is a group; give its fields.")
                merge(node[key], value, dotted + ".")
                continue
            try:
                node[key] = value
            except TypeError as e:
                raise ValueError(f"GLUE config key {dotted!r}: {e}") from e

    merge(config, overrides, "")
    return config


def command_line_error(error: Exception, argv) -> str:
    """One line for an error of scripts/glue.py's command line (jax_bert.cli's, with this
    file's keys)."""
    from jax_bert import cli

    return cli.command_line_error(error, argv, get_config, "glue/config.py", __file__)
