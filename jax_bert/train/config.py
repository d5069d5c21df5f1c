"""Every pretraining config key with its default, and the checks that need no data or devices.

Config files in configs/ start from `base_config()` and change what their experiment needs; an
override of a key not listed here is an error (`ml_collections` locks the config). This file is
also a config file itself: `--config jax_bert/train/config.py` is the bare defaults.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os

import ml_collections

from jax_bert.data.documents import BOOKCORPUS, WIKIPEDIA  # noqa: F401 - the configs' corpora, named here
from jax_bert.model import BertConfig
from jax_bert.train import optim, sparse_config

# The BERT body, embeddings and encoder, the parameters jax_bert.model.body counts the reported sparsity
# over: what the original counted GMP's target over.
BERT_BODY = r"^bert/(embeddings|encoder)/"
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
        # Not part of the corpus (jax_bert/data/prepare.py): on several processes with missing caches, > 0 lets
        # process 0 build them while the others wait up to this many seconds for them; 0: they stop at once.
        "build_on_process0_wait_s": 0,
    })
    c.data_cache_dir = ""  # tokenised blocks; '' = ~/.cache/jax_sparse_bert
    # train_documents > 0: the vocabulary is trained on the first that many train documents only.
    c.tokenizer = ml_collections.ConfigDict({"name": "", "vocab_size": 30522, "lowercase": False,
                                             "train_documents": 0})
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
            # The original's gradient-accumulation steps: its drop-fraction cosine counted micro-batches
            # (T = steps x this). A property of the recipe reproduced, not train.grad_accum_steps (memory).
            "accumulation_steps": 1,
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
        # A process whose heartbeats stop this long is declared dead and the others stop (JAX's default
        # is 100 s). A process that dies outright is noticed at once by the next collective.
        "heartbeat_timeout_seconds": 30,
    })
    return c


def get_config() -> ml_collections.ConfigDict:
    return base_config()


def _check(ok: bool, key: str, rule: str, value) -> None:
    if not ok:
        raise ValueError(f"{key} must be {rule}, got {value!r}.")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numbers(node, prefix: str = ""):
    """(dotted key, value) of every number in a config, inside tuples and teacher dicts too."""
    if isinstance(node, (dict, ml_collections.ConfigDict)):
        for key in node.keys():
            yield from _numbers(node[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, (tuple, list)):
        for i, item in enumerate(node):
            yield from _numbers(item, f"{prefix}[{i}]")
    elif _is_number(node):
        yield prefix, node


def _check_finite(config: ml_collections.ConfigDict) -> None:
    """NaN or inf anywhere is refused: every range check below compares, and NaN passes none of them
    and fails none of them (a NaN learning rate would train until the loss is NaN)."""
    bad = [f"{key}={value}" for key, value in _numbers(config) if not math.isfinite(value)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: every numeric value must be a finite number.")


def _check_sparsity_ranges(s: ml_collections.ConfigDict) -> None:
    """The levels are checked whether sparsity is on or not: a wrong one is wrong in any config."""
    _check(_is_number(s.level) and 0 <= s.level < 1, "sparsity.level", "in [0, 1)", s.level)
    _check(_is_number(s.overall) and s.overall < 1, "sparsity.overall", "in [0, 1) (or < 0: use level)",
           s.overall)
    _check(_is_number(s.gmp.target) and 0 < s.gmp.target < 1, "sparsity.gmp.target", "in (0, 1)", s.gmp.target)
    _check(_is_number(s.rigl.drop_fraction) and 0 < s.rigl.drop_fraction < 1, "sparsity.rigl.drop_fraction",
           "in (0, 1)", s.rigl.drop_fraction)
    _check(_is_number(s.rigl.end_fraction) and 0 < s.rigl.end_fraction <= 1, "sparsity.rigl.end_fraction",
           "in (0, 1]", s.rigl.end_fraction)
    _check(_is_int(s.rigl.accumulation_steps) and s.rigl.accumulation_steps >= 1, "sparsity.rigl.accumulation_steps",
           "an integer >= 1", s.rigl.accumulation_steps)


# Keys a dense config (sparsity.enabled False) may set without effect: the mask seed, which the study sets
# with train.seed for every row, dense ones included.
_SPARSITY_KEYS_ANY_CONFIG = ("seed",)


def _check_no_ignored_sparsity(s: ml_collections.ConfigDict) -> None:
    """A dense config that sets a sparsity key would silently train dense: refused, naming the keys."""
    if s.enabled:
        return
    defaults = base_config().sparsity.to_dict()
    given = s.to_dict()
    ignored = [f"sparsity.{key}={value!r}" for key, value in _flat(given).items()
               if key != "enabled" and key not in _SPARSITY_KEYS_ANY_CONFIG and value != _flat(defaults).get(key)]
    if ignored:
        raise ValueError(f"{', '.join(ignored)} would be ignored: sparsity.enabled is False. Add "
                         f"--config.sparsity.enabled=True for a sparse run, or leave these keys at their defaults.")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks every key: each error names the key, the rule and what it got. Needs no data, devices or
    compilation, so a bad value fails before any work (scripts/pretrain.py runs it on the command line;
    run() again). Sparsity rules are checked on the shapes of the configured model when
    model.vocab_size is set (else when the tokenizer has given the vocabulary size)."""
    known = base_config()
    unknown = sorted(set(config.keys()) - set(known.keys()))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; every key is in jax_bert/train/config.py.")
    missing = sorted(set(known.keys()) - set(config.keys()))
    if missing:
        raise ValueError(f"the config lacks {missing}; start a config file from jax_bert.train.config.base_config().")
    _check_finite(config)

    t = config.train
    for key in ("steps", "global_batch_size", "grad_accum_steps", "log_every", "eval_batch_size",
                "checkpoint_every", "keep_checkpoints"):
        _check(_is_int(t[key]) and t[key] >= 1, f"train.{key}", "an integer >= 1", t[key])
    _check(_is_int(t.eval_every) and t.eval_every >= 0, "train.eval_every", "an integer >= 0 (0: only at the end)",
           t.eval_every)
    _check(_is_int(t.seed), "train.seed", "an integer", t.seed)
    _check(_is_int(t.seq_len) and t.seq_len >= 8, "train.seq_len", "an integer >= 8", t.seq_len)
    if t.global_batch_size % t.grad_accum_steps:
        raise ValueError(f"train.global_batch_size {t.global_batch_size} is not divisible by "
                         f"train.grad_accum_steps {t.grad_accum_steps}.")
    if t.seq_len > config.model.max_position_embeddings:
        raise ValueError(f"train.seq_len {t.seq_len} exceeds model.max_position_embeddings "
                         f"{config.model.max_position_embeddings}; lower the length or raise the positions.")

    fields = config.model.to_dict()
    _check(_is_int(fields["vocab_size"]) and fields["vocab_size"] >= 0, "model.vocab_size",
           "an integer >= 0 (0: the tokenizer's size)", fields["vocab_size"])
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        _check(_is_number(fields[key]) and 0 <= fields[key] < 1, f"model.{key}", "in [0, 1)", fields[key])
    BertConfig(**{**fields, "vocab_size": fields["vocab_size"] or 1})  # its own checks (heads, activation, dtype)

    _check(isinstance(config.init_from_hf, str), "init_from_hf", "a path or hub name ('' for none)",
           config.init_from_hf)
    _check(isinstance(config.data_cache_dir, str), "data_cache_dir", "a directory ('' for the default)",
           config.data_cache_dir)
    from jax_bert.data.documents import normalize_spec

    normalize_spec(config.data.to_dict())
    wait = config.data.build_on_process0_wait_s
    _check(_is_number(wait) and wait >= 0, "data.build_on_process0_wait_s", "a number of seconds >= 0", wait)
    tok = config.tokenizer
    _check(_is_int(tok.vocab_size) and tok.vocab_size > 5, "tokenizer.vocab_size",
           "an integer > 5 (the special tokens and more)", tok.vocab_size)
    _check(_is_int(tok.train_documents) and tok.train_documents >= 0, "tokenizer.train_documents",
           "an integer >= 0 (0: every train document)", tok.train_documents)
    m = config.masking
    _check(_is_number(m.mlm_probability) and 0 < m.mlm_probability < 1, "masking.mlm_probability", "in (0, 1)",
           m.mlm_probability)

    o = config.optim.to_dict()
    o["total_steps"] = t.steps  # what make_train_optimizer uses
    optim.make_optimizer(o)  # every optimizer and schedule field, with their own messages

    d = config.distill
    _check(isinstance(d.teachers, (tuple, list)), "distill.teachers", "a tuple of paths", d.teachers)
    for entry in d.teachers:
        ok = isinstance(entry, str) and entry or (isinstance(entry, (dict, ml_collections.ConfigDict))
                                                  and set(entry) <= {"path", "weight"} and entry.get("path"))
        _check(bool(ok), "each distill.teachers entry", 'a path or {"path": ..., "weight": ...}', entry)
        if not isinstance(entry, str):
            _check(_is_number(entry.get("weight", 1.0)) and entry.get("weight", 1.0) > 0,
                   "a teacher's weight", "> 0", entry.get("weight"))
    _check(_is_number(d.factor) and 0 <= d.factor <= 1, "distill.factor", "in [0, 1]", d.factor)
    _check(_is_number(d.factor_end) and (d.factor_end < 0 or d.factor_end <= 1), "distill.factor_end",
           "in [0, 1] (or < 0: constant)", d.factor_end)
    _check(_is_number(d.temperature) and d.temperature > 0, "distill.temperature", "> 0", d.temperature)
    _check(_is_number(d.temperature_end) and d.temperature_end != 0, "distill.temperature_end",
           "> 0 (or < 0: constant)", d.temperature_end)
    _check(d.teacher_dtype in ("float32", "bfloat16"), "distill.teacher_dtype", "'float32' or 'bfloat16'",
           d.teacher_dtype)

    sizes = config.mesh.to_dict()
    for axis, size in sizes.items():
        _check(_is_int(size) and (size >= 1 or size == -1), f"mesh.{axis}", "an integer >= 1, or -1 (fill)", size)
    if list(sizes.values()).count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {sizes}.")
    dist = config.distributed
    _check(dist.initialize in ("auto", "yes", "no"), "distributed.initialize", "'auto', 'yes' or 'no'",
           dist.initialize)
    _check(_is_int(dist.heartbeat_timeout_seconds) and dist.heartbeat_timeout_seconds >= 5,
           "distributed.heartbeat_timeout_seconds", "an integer >= 5", dist.heartbeat_timeout_seconds)
    if dist.coordinator_address:
        _check(_is_int(dist.num_processes) and dist.num_processes >= 1, "distributed.num_processes",
               "an integer >= 1 with a coordinator_address", dist.num_processes)
        _check(_is_int(dist.process_id) and 0 <= dist.process_id < dist.num_processes, "distributed.process_id",
               f"in [0, {dist.num_processes})", dist.process_id)

    _check_sparsity_ranges(config.sparsity)
    _check_no_ignored_sparsity(config.sparsity)
    if config.sparsity.enabled:
        sparse_config.sparsity_spec(config.sparsity)
        sparse_config.gmp_steps(config.sparsity, t.steps)  # first: it also refuses RigL and GMP together
        sparse_config.rigl_schedule(config.sparsity, t.steps)
        if fields["vocab_size"] and not config.init_from_hf:  # the rules against the model's shapes, now

            from jax_bert import model

            abstract = model.abstract_params(BertConfig(**fields))
            optim.make_train_optimizer(config, abstract)


def parse_command_line(argv, flag_values=None) -> list[str]:
    """The absl `flags_parser` of the commands that take a pretraining config (pretrain.py, prepare_data.py,
    lr_range_test.py): --config is required, its --config.KEY=VALUE overrides are checked against
    base_config's keys, and any error is one line and exit status 2 (jax_bert.cli.parse_flags)."""
    from absl import flags

    from jax_bert import cli  # (the command line sits above the config it reads)

    return cli.parse_flags(argv, default_file=None, defaults=base_config, keys_file="jax_bert/train/config.py",
                           validate=validate, flag_values=flags.FLAGS if flag_values is None else flag_values)


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
