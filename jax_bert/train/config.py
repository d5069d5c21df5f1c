"""Every pretraining config key with its default, and the checks that need no data or devices.

Config files in configs/ start from `base_config()` and change what their experiment needs; an
override of a key not listed here is an error (`ml_collections` locks the config). This file is
also a config file itself: `--config jax_bert/train/config.py` is the bare defaults.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os

import ml_collections

from jax_bert.model import BertConfig
from jax_bert.train import optim

# The BERT body (embeddings and encoder; our MLM model has no pooler): what the original counted GMP's
# target sparsity over.
BERT_BODY = r"^bert/"
# The original layout: every encoder Linear (query, key, value, attention output, intermediate,
# output) and the word embeddings; for the embedding each ROW (token) keeps a fixed count.
ENCODER_KERNELS = r"^bert/encoder/.*/kernel$"
WORD_EMBEDDINGS = r"^bert/embeddings/word_embeddings/embedding$"


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()

    # The architecture (BertConfig's fields). vocab_size 0: the tokenizer's size.
    c.model = ml_collections.ConfigDict({f.name: f.default for f in dataclasses.fields(BertConfig)})
    c.model.vocab_size = 0
    c.init_from_hf = ""  # start from a Hugging Face BERT directory (or hub name) instead of random init

    # The corpus: see jax_bert/data/documents.py for every field.
    c.data = ml_collections.ConfigDict({
        # Tuples, so that the command line can set them: --config.data.files=/data/*.parquet (repeat the
        # flag for several globs), --config.data.datasets=wikimedia/wikipedia:20231101.en
        "source": "offline", "datasets": (), "files": (), "text_column": "text",
        "txt_documents": "paragraph", "validation_fraction": 0.05, "max_documents": 0,
    })
    c.data_cache_dir = ""  # tokenised blocks; '' = ~/.cache/jax_sparse_bert
    c.tokenizer = ml_collections.ConfigDict({"name": "", "vocab_size": 30522, "lowercase": False})
    c.masking = ml_collections.ConfigDict({"mlm_probability": 0.15, "whole_word": True})

    c.train = ml_collections.ConfigDict({
        "steps": 100_000,
        "global_batch_size": 256,
        "grad_accum_steps": 1,  # micro-batches per step: the global batch is the same, memory is not
        "seq_len": 512,
        "seed": 0,
        "log_every": 50,
        "eval_every": 0,  # 0: only at the end
        "eval_batch_size": 64,
        "checkpoint_every": 1000,
        "keep_checkpoints": 3,
        "export_hf": True,  # write workdir/hf (transformers format, with the tokenizer) at the end
        "progress_bar": True,
    })
    c.optim = optim.default_config()
    c.optim.total_steps = -1  # the schedule length is train.steps

    # Sparse training: masks in the optimizer state (sparsity.sparse), static, RigL or gradual magnitude pruning.
    c.sparsity = ml_collections.ConfigDict({
        "enabled": False,
        "method": "fixed_fan_in",  # 'fixed_fan_in' (the original), 'uniform' or 'erk'
        # Either the sparsity of every selected tensor (`level`) or of ALL params, dense ones included
        # (`overall`): then the per-tensor level is solved so that 80% means 80.0% of every parameter.
        "level": 0.8,
        "overall": -1.0,  # >= 0 switches to the overall form
        "include": (ENCODER_KERNELS, WORD_EMBEDDINGS),  # regexes over "/"-joined param paths
        "seed": 0,
        "rigl": ml_collections.ConfigDict({
            "enabled": False,
            "update_freq": 100,
            "start": 100,  # first update after this many steps
            # > 0: the schedule relative to the run instead: this many updates, evenly spaced over
            # [0, end] (update_freq = start = end // num_updates); the original: 1000 over 100k steps.
            "num_updates": 0,
            "end_fraction": 1.0,  # T_end as a fraction of train.steps (the RigL paper: 0.75)
            "drop_fraction": 0.3,
            "schedule": "cosine",  # or 'constant'
            "mode": "global",  # or 'per_tensor' (the RigL paper)
            "reset_moments": False,  # zero Adam's moments of regrown weights (the RigL paper)
            # Restart from 0 also a weight that is pruned and regrown in the same update (the
            # original does; the RigL paper's code keeps its value by default).
            "reinit_when_same": False,
        }),
        # Gradual magnitude pruning (Zhu & Gupta; the original's GradualMagnitudePruningMixin): start dense
        # (level, overall and method are not used), then every prune_period steps from step warmup_steps to
        # step train.steps - cooldown_steps switch off the smallest |w| across all `include` tensors so that
        # the kept count follows a cubic decay to `target`; n = (steps - warmup - cooldown) / period + 1 prunes.
        "gmp": ml_collections.ConfigDict({
            "enabled": False,
            # Final fraction of zero parameters among those `counted_over` selects, dense ones included: the
            # original counted over the BERT body. '' counts over all parameters, as sparsity.overall does.
            "target": 0.8,
            "counted_over": BERT_BODY,
            "warmup_steps": 1000,  # the first prune after this many steps (>= 1)
            "cooldown_steps": 1000,  # no pruning in the last this many steps
            "prune_period": 100,
        }),
    })

    # Knowledge distillation from frozen teachers, inside the same step (see train/step.py).
    c.distill = ml_collections.ConfigDict({
        # Each teacher: {"path": our work directory, or a Hugging Face BERT directory / hub name,
        # "weight": 1.0}, or just the path. Empty: no distillation. A tuple, so that the command line can
        # set it: --config.distill.teachers=runs/bert_1mi (repeat the flag for several teachers).
        "teachers": (),
        "factor": 1.0,  # weight of the teacher's distribution in the target (1 - factor: the one-hot label)
        "factor_end": -1.0,  # >= 0: decay linearly from `factor` to this over training
        "temperature": 1.0,
        "temperature_end": -1.0,
        "scale_by_t2": False,
        "student_temperature": False,  # divide the student's logits by T too (Hinton); the original did not
        "teacher_dtype": "float32",  # or 'bfloat16'
    })

    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.distributed = ml_collections.ConfigDict({
        "initialize": "auto",  # 'auto' (SLURM / Open MPI / JAX_COORDINATOR_ADDRESS), 'yes', 'no'
        "coordinator_address": "", "num_processes": 0, "process_id": 0, "cpu_collectives": "gloo",
    })
    return c


def get_config() -> ml_collections.ConfigDict:
    return base_config()


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks that need no data or devices; each error names the key and what to do."""
    t = config.train
    if t.steps < 1:
        raise ValueError(f"train.steps must be >= 1, got {t.steps}.")
    if t.global_batch_size < 1 or t.grad_accum_steps < 1:
        raise ValueError("train.global_batch_size and train.grad_accum_steps must be >= 1.")
    if t.global_batch_size % t.grad_accum_steps:
        raise ValueError(f"train.global_batch_size {t.global_batch_size} is not divisible by "
                         f"train.grad_accum_steps {t.grad_accum_steps}.")
    if t.seq_len > config.model.max_position_embeddings:
        raise ValueError(f"train.seq_len {t.seq_len} exceeds model.max_position_embeddings "
                         f"{config.model.max_position_embeddings}; lower the length or raise the positions.")
    if not 0 < config.masking.mlm_probability < 1:
        raise ValueError(f"masking.mlm_probability must be in (0, 1), got {config.masking.mlm_probability}.")
    d = config.distill
    if d.teachers and (not 0.0 <= d.factor <= 1.0 or d.temperature <= 0):
        raise ValueError(f"distill.factor must be in [0, 1] and distill.temperature > 0, got "
                         f"{d.factor}, {d.temperature}.")
    if config.sparsity.enabled:
        optim.sparsity_spec(config.sparsity)
        optim.gmp_steps(config.sparsity, t.steps)  # first: it also refuses RigL and GMP together
        optim.rigl_schedule(config.sparsity, t.steps)


def load_config_file(path: str):
    """A config file (Python, with get_config()) as a module."""
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_sibling(config_file: str, name: str):
    """Another config file of the same folder as a module (config files build on each other)."""
    return load_config_file(os.path.join(os.path.dirname(os.path.abspath(config_file)), name + ".py"))
