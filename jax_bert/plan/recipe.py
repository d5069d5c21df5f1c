"""What a pretraining config asks of the step, read without data, network or devices: the student's
architecture (its vocabulary from the config, a known hub tokenizer, the teacher or the WordPiece
size), the teachers' architectures, the optimizer and the batch.

A teacher's architecture comes from its work directory (bert_config.json, or hf/config.json) when it
is there; when it is not (it has not been trained yet), from the config file its work directory is
named after (runs/bert_1mi -> configs/bert_1mi.py, the projects's convention), next to the student's.
"""
from __future__ import annotations

import dataclasses
import json
import os

import ml_collections

from jax_bert.data import mlm_batches
from jax_bert.model import BertConfig
from jax_bert.train import config as train_config
from jax_bert.train import teachers as train_teachers

# Hub tokenizers planned at their size without the network.
KNOWN_VOCABULARIES = {"bert-base-cased": 28996, "bert-base-uncased": 30522, "bert-large-cased": 28996,
                      "bert-large-uncased": 30522}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The model, teachers and batch of one config, as the step sees them."""

    config: ml_collections.ConfigDict  # the pretraining config (with any changes the plan made)
    model: BertConfig
    teachers: tuple[BertConfig, ...]
    global_rows: int  # sequences per step
    seq_len: int
    slots: int  # prediction slots per sequence
    accum_steps: int
    steps: int
    notes: tuple[str, ...]  # how the vocabulary and the teachers were found

    @property
    def micro_rows(self) -> int:
        return self.global_rows // self.accum_steps


def recipe_of(config: ml_collections.ConfigDict, config_dir: str = "configs") -> Recipe:
    """The recipe of a validated pretraining config; `config_dir`: where the teachers' config files
    are looked for when their work directories are absent."""
    notes = []
    vocab = vocabulary_size(config, config_dir, notes)
    fields = {**config.model.to_dict(), "vocab_size": vocab}
    if config.init_from_hf:
        hf = _hf_config(config.init_from_hf)
        if hf is None:
            raise ValueError(f"init_from_hf {config.init_from_hf!r}: no config.json there to read the architecture "
                             f"from offline; give a local Hugging Face directory.")
        fields = {**dataclasses.asdict(hf), **{k: config.model[k] for k in ("dtype", "remat", "scan_layers")}}
        notes.append(f"architecture from {config.init_from_hf}")
    student = BertConfig(**fields)
    teachers = []
    for entry in config.distill.teachers:
        path = train_teachers.teacher_path(entry)
        t_cfg, how = teacher_architecture(path, config_dir)
        teachers.append(t_cfg.replace(dtype=config.distill.teacher_dtype, scan_layers=student.scan_layers,
                                      remat=False))
        notes.append(f"teacher {path}: {how}")
    t = config.train
    return Recipe(config, student, tuple(teachers), int(t.global_batch_size), int(t.seq_len),
                  mlm_batches.max_predictions(int(t.seq_len), float(config.masking.mlm_probability)),
                  int(t.grad_accum_steps), int(t.steps), tuple(notes))


def with_changes(config: ml_collections.ConfigDict, *, accum_steps: int | None = None, remat: bool | None = None,
                 mesh: tuple[int, int, int] | None = None) -> ml_collections.ConfigDict:
    """A copy of the config with another accumulation, remat or mesh."""
    c = ml_collections.ConfigDict(config.to_dict())
    if accum_steps is not None:
        c.train.grad_accum_steps = int(accum_steps)
    if remat is not None:
        c.model.remat = bool(remat)
    if mesh is not None:
        c.mesh.update(data=int(mesh[0]), fsdp=int(mesh[1]), tensor=int(mesh[2]))
    return c


def vocabulary_size(config, config_dir: str, notes: list) -> int:
    if config.model.vocab_size:
        return int(config.model.vocab_size)
    name = config.tokenizer.name
    if name:
        size = _tokenizer_size(name)
        if size is None:
            raise ValueError(f"tokenizer.name {name!r}: its size is unknown offline; set --config.model.vocab_size.")
        notes.append(f"vocabulary {size:,} ({name})")
        return size
    if config.distill.teachers:  # the student takes its first teacher's tokenizer
        path = train_teachers.teacher_path(config.distill.teachers[0])
        t_cfg, _ = teacher_architecture(path, config_dir)
        notes.append(f"vocabulary {t_cfg.vocab_size:,} (the teacher's, {path})")
        return t_cfg.vocab_size
    notes.append(f"vocabulary {config.tokenizer.vocab_size:,} (the WordPiece size asked for; a trained "
                 f"vocabulary may be a little smaller)")
    return int(config.tokenizer.vocab_size)


def teacher_architecture(path: str, config_dir: str) -> tuple[BertConfig, str]:
    """(the teacher's BertConfig, where it was read)."""
    ours = os.path.join(path, "bert_config.json")
    if os.path.isfile(ours):
        with open(ours) as f:
            return BertConfig(**json.load(f)), ours
    hf = _hf_config(os.path.join(path, "hf")) or _hf_config(path)
    if hf is not None:
        return hf, f"{path} (Hugging Face config.json)"
    name = os.path.basename(os.path.normpath(path))
    config_file = os.path.join(config_dir, name + ".py")
    if os.path.isfile(config_file):
        teacher_config = train_config.load_config_file(config_file).get_config()
        vocab = vocabulary_size(teacher_config, config_dir, [])
        return (BertConfig(**{**teacher_config.model.to_dict(), "vocab_size": vocab}),
                f"not trained yet; planned as {config_file}'s model")
    raise ValueError(f"teacher {path!r}: its architecture cannot be read offline (no bert_config.json or "
                     f"hf/config.json there, and no {config_file}); point distill.teachers at a trained teacher.")


def _tokenizer_size(name: str) -> int | None:
    if name in KNOWN_VOCABULARIES:
        return KNOWN_VOCABULARIES[name]
    vocab = os.path.join(name, "vocab.txt")
    if os.path.isfile(vocab):
        with open(vocab, encoding="utf-8") as f:
            return sum(1 for _ in f)
    return None


def _hf_config(directory: str) -> BertConfig | None:
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return BertConfig.from_hf_dict(json.load(f))
