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

HOW_TO_GET_A_TEACHER = ("train it first: `python scripts/pretrain.py --config configs/tiny.py --workdir runs/tiny` "
                        "for the tiny recipe (configs/tiny_rigl.py), configs/bert_1mi.py for the base ones; "
                        "then point distill.teachers at its work directory, or give a Hugging Face BERT "
                        "checkpoint directory")


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


def teacher_path(entry) -> str:
    """The path of one `distill.teachers` entry (a path, or {"path": ..., "weight": ...})."""
    return entry if isinstance(entry, str) else str(dict(entry)["path"])


def tokenizer_source(path: str) -> str:
    """Where a teacher's tokenizer is: our work directory's tokenizer/ (or its hf/ export), a Hugging
    Face directory itself, or the hub name."""
    for candidate in (os.path.join(path, "tokenizer"), os.path.join(path, "hf"), path):
        if any(os.path.exists(os.path.join(candidate, f)) for f in ("tokenizer.json", "vocab.txt")):
            return candidate
    if os.path.isdir(path):
        raise ValueError(f"teacher {path!r} has no tokenizer (tokenizer/, hf/, tokenizer.json or vocab.txt), so its "
                         f"vocabulary cannot be checked against the student's; give a teacher directory with "
                         f"its tokenizer.")
    return path  # a hub name


def _vocabulary_difference(teacher: dict[str, int], student: dict[str, int]) -> str | None:
    only_t = sorted(set(teacher) - set(student))
    only_s = sorted(set(student) - set(teacher))
    moved = sorted(t for t in set(teacher) & set(student) if teacher[t] != student[t])
    if not (only_t or only_s or moved):
        return None
    show = lambda tokens: ", ".join(repr(t) for t in tokens[:5]) + (" ..." if len(tokens) > 5 else "")  # noqa: E731
    parts = []
    if only_t:
        parts.append(f"{len(only_t)} tokens only in the teacher's ({show(only_t)})")
    if only_s:
        parts.append(f"{len(only_s)} only in the student's ({show(only_s)})")
    if moved:
        parts.append(f"{len(moved)} shared tokens with other ids ("
                     + ", ".join(f"{t!r}: {teacher[t]} vs {student[t]}" for t in moved[:3])
                     + (" ..." if len(moved) > 3 else "") + ")")
    return "; ".join(parts)


def check_vocabularies(cfg, student_tokenizer) -> None:
    """Each teacher's tokenizer gives the student's token ids: the same vocabulary (each token with the
    same id) and the same normalisation. Else one error naming the tokens that differ."""
    from jax_bert import data

    student_vocab = student_tokenizer.get_vocab()
    for entry in cfg.teachers:
        path = teacher_path(entry)
        source = tokenizer_source(path)
        teacher_tokenizer = data.get_tokenizer(source)
        difference = _vocabulary_difference(teacher_tokenizer.get_vocab(), student_vocab)
        if difference is None and (data.tokenizer_fingerprint(teacher_tokenizer)
                                   != data.tokenizer_fingerprint(student_tokenizer)):
            difference = "the same tokens, but another normalisation (lowercasing, accents) or pre-tokenizer"
        if difference:
            raise ValueError(f"teacher {path!r} and the student tokenize differently: {difference}. Distillation "
                             f"needs the teacher's vocabulary: leave tokenizer.name empty (the student then uses "
                             f"the teacher's tokenizer, {source}) or set it to {source}.")


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
