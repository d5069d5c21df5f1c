"""The study's table of rows: a preset's structure (`base_study_config`, `add_row`), which rows a part
runs, their seeds, where each run lives and its config with the seed and the teacher wired in.

A preset (configs/study_*.py) adds each row with `add_row`: a key, the table's label, a pretraining config,
whether it distils from the teacher row, how many seeds it runs and which parts ('study', 'ablation') it
belongs to. Seed s of row KEY lives in OUT/KEY/seedS with train.seed = sparsity.seed = s.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import ml_collections

from glue.tasks import TASK_NAMES
from study import stats

PARTS = ("study", "ablation", "horizon")


def base_study_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = ""
    c.title = "Sparse BERT study"
    c.share_teacher_tokenizer = True  # the other rows use the teacher's vocabulary (needed for KD)
    c.seeds = 3  # pretraining seeds per row (a row's own `seeds` > 0 wins: the teacher's is 1)
    c.teacher = "teacher"  # the key of the row the distilling rows learn from
    c.order = []  # row keys in table order (ConfigDict sorts its keys)
    c.rows = ml_collections.ConfigDict()
    c.ablation_references = ("static_kd",)  # the ablation table compares every row with these rows
    # The horizon part: (steps, static row, RigL row) pairs compared at each length (add_row them first).
    c.horizon_pairs = []
    c.glue = ml_collections.ConfigDict({
        "tasks": list(TASK_NAMES),
        "synthetic": True,  # without --glue_data_dir: generated tasks (tiny/small) or the hub (base)
        "synthetic_sizes": {"train": 256, "validation": 64, "test": 16},
        # Changes to glue/config.py's settings, e.g. {"learning_rate": 1e-3, "tasks": {"cola": {"epochs": 3}}}
        "overrides": {},
        "pretrain_seeds": 1,  # GLUE on the models of pretraining seeds 0 .. n-1
        # The keep_masks settings GLUE runs, each in its own directory and labelled in the table: True keeps
        # a sparse model's zeros while fine-tuning, False lets them regrow (as the original's table was made).
        "keep_masks": (True,),
    })
    return c


def add_row(study, key: str, label: str, config: ml_collections.ConfigDict, *, distill: bool = False,
            seeds: int = 0, parts=("study",), glue: bool = True) -> None:
    """Appends a row: `config` is its pretraining config (the study sets its seeds, teachers and
    vocabulary); `distill`: learn from the teacher row, else from none; `seeds` > 0: this many seeds
    instead of the study's; `parts`: 'study' and/or 'ablation'; `glue`: fine-tune it in the study."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown or key in study.rows:
        raise ValueError(f"row {key!r}: " + (f"unknown parts {unknown}; use {PARTS}." if unknown else "added twice."))
    study.rows[key] = ml_collections.ConfigDict({"label": label, "config": config, "distill": distill,
                                                 "seeds": seeds, "parts": tuple(parts), "glue": glue})
    study.order = list(study.order) + [key]


def rows_of(study, part: str) -> list[str]:
    """The keys of a part's rows in table order, the teacher first when any of them distils."""
    keys = [k for k in study.order if part in study.rows[k].parts]
    if any(study.rows[k].distill for k in keys) and study.teacher not in keys:
        keys.insert(0, study.teacher)
    return keys


def seeds_of(study, key: str) -> list[int]:
    return list(range(study.rows[key].seeds or study.seeds))


def workdir(out: Path, key: str, seed: int) -> Path:
    return Path(out) / key / f"seed{seed}"


def row_config(study, key: str, seed: int, out: Path) -> ml_collections.ConfigDict:
    """The pretraining config of one row and seed, wired to the teacher's work directory and vocabulary."""
    row = study.rows[key]
    config = ml_collections.ConfigDict(row.config.to_dict())
    config.train.seed = seed
    config.sparsity.seed = seed
    teacher_dir = str(workdir(out, study.teacher, 0))
    if key != study.teacher and study.share_teacher_tokenizer:
        config.tokenizer.name = os.path.join(teacher_dir, "tokenizer")
    # The row's `distill` decides: the teacher row, or no teacher (a sparse-KD base config without it).
    config.distill.teachers = ({"path": teacher_dir, "weight": 1.0},) if row.distill else ()
    return config


def eval_losses(study, out: Path, key: str) -> list[float]:
    """The final eval loss of each seed of a row."""
    return [json.loads((workdir(out, key, s) / "eval_results.json").read_text())["eval_loss"]
            for s in seeds_of(study, key)]


def finished(study, out: Path, key: str) -> bool:
    """Every seed of the row has its final evaluation (a row of another part may not have run yet)."""
    for s in seeds_of(study, key):
        path = workdir(out, key, s) / "eval_results.json"
        if not path.is_file() or json.loads(path.read_text()).get("step") != study.rows[key].config.train.steps:
            return False
    return True


def summaries(study, out: Path, keys: list[str]) -> dict[str, stats.Summary]:
    return {k: stats.summarize(eval_losses(study, out, k)) for k in keys}


def glue_models(study) -> list[tuple[str, int]]:
    """(row key, pretraining seed) of every model the study fine-tunes."""
    return [(k, s) for k in rows_of(study, "study") if study.rows[k].glue
            for s in seeds_of(study, k)[:study.glue.pretrain_seeds]]


def glue_dir(out: Path, key: str, seed: int, keep_masks: bool) -> Path:
    """Where one model's GLUE results with one keep_masks setting live: OUT/glue (masks kept) or OUT/glue_regrow."""
    return Path(out) / ("glue" if keep_masks else "glue_regrow") / key / f"seed{seed}"


def glue_stage(key: str, seed: int, keep_masks: bool) -> str:
    """The name under which the study directory's state records one GLUE stage's seconds."""
    return f"glue {key} seed{seed}" + ("" if keep_masks else " (masks may regrow)")


def glue_stages(study) -> list[tuple[str, int, bool]]:
    """(row key, pretraining seed, keep_masks) of every GLUE stage, in the order the study runs them."""
    return [(k, s, bool(m)) for m in study.glue.keep_masks for k, s in glue_models(study)]


def pretraining_stages(study, keys: list[str]) -> list[str]:
    """The names under which the study directory's state records the seconds of these rows' runs."""
    return [f"{k} seed{s}" for k in keys for s in seeds_of(study, k)]
