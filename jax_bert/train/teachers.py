"""Distillation teachers: frozen BERTs with an MLM head, loaded from our work directories or from
Hugging Face checkpoints and placed on the mesh. The step (train/step.py) runs them."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax

from jax_bert import model
from jax_bert.model import BertConfig, hf_io
from jax_bert.train import checkpoint, sharding

HOW_TO_GET_A_TEACHER = ("train one with `python scripts/pretrain.py --config configs/bert_1mi.py` (or "
                        "configs/tiny.py for the tiny recipe) and point distill.teachers at its work "
                        "directory, or give a Hugging Face BERT checkpoint directory")


@dataclasses.dataclass(frozen=True)
class Teacher:
    """One frozen teacher in the step: its architecture, params (global arrays on `shardings`) and
    the weight of its distribution in the averaged target."""

    config: BertConfig
    params: Any
    shardings: Any
    weight: float = 1.0
    source: str = ""


def load_teacher(path: str, **compute) -> tuple[BertConfig, dict]:
    """A teacher's (config, params with an MLM head) from our work directory or a Hugging Face one."""
    if os.path.isdir(os.path.join(path, "hf")):  # a finished run of ours: its transformers export
        config, params = hf_io.load_hf(os.path.join(path, "hf"), **compute)
    elif os.path.isdir(os.path.join(path, "checkpoints")) and os.path.exists(os.path.join(path, "bert_config.json")):
        with open(os.path.join(path, "bert_config.json")) as f:
            config = BertConfig(**{**json.load(f), **compute})
        params = checkpoint.restore_params_only(os.path.join(path, "checkpoints"))
    elif os.path.isdir(path) or not path.startswith((".", "/", "~")):
        try:
            config, params = hf_io.load_hf(path, **compute)
        except hf_io.CheckpointError as e:
            raise ValueError(f"teacher {path!r}: {e}. To get a teacher, {HOW_TO_GET_A_TEACHER}.") from e
    else:
        raise ValueError(f"teacher {path!r} does not exist. To get one, {HOW_TO_GET_A_TEACHER}.")
    params = model.mlm_params(params, f"teacher {path!r}")
    return config, model.match_layout(params, config.scan_layers, config.num_hidden_layers)


def load_teachers(cfg, student: BertConfig, mesh) -> list[Teacher]:
    """The config's `distill.teachers`, loaded and placed on `mesh` (sharded like the student)."""
    teachers = []
    for entry in cfg.teachers:
        entry = {"path": entry, "weight": 1.0} if isinstance(entry, str) else dict(entry)
        t_cfg, t_params = load_teacher(entry["path"], dtype=cfg.teacher_dtype, scan_layers=student.scan_layers)
        if t_cfg.vocab_size != student.vocab_size:
            raise ValueError(f"teacher {entry['path']!r} has a vocabulary of {t_cfg.vocab_size} tokens but "
                             f"the student has {student.vocab_size}: distillation needs the same tokenizer. "
                             f"To get a matching teacher, {HOW_TO_GET_A_TEACHER}.")
        shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), t_params)
        shardings = sharding.param_shardings(model.logical_axes(t_cfg), shapes, mesh)
        teachers.append(Teacher(t_cfg, sharding.host_to_global(t_params, shardings), shardings,
                                float(entry.get("weight", 1.0)), entry["path"]))
    return teachers
