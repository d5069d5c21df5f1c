"""GLUE hyper-parameter search: every (learning rate, warm-up ratio, epochs, seed) of a grid in one program.

    python scripts/glue.py --checkpoint DIR --search glue/search_config.py [--tasks rte] [--out DIR]

The grid (glue/search_config.py) becomes the member axis of one fine-tuning run (glue/finetune.py:
`finetune(..., member_hps=...)`): each member has its own seed, peak learning rate, warm-up steps and
step count, all of them trained by one compiled step; a member whose steps are done stops updating. The
grid, the split, the choice and the hparams files are every task family's (jax_bert/finetune/search.py);
this module tokenizes a GLUE task and scores its members.

Protocol, per task:
  1. Scoring set. score_on='heldout' (default): a seeded fraction of the training set is held out and
     the members train on the rest, so the validation set stays untouched for the final number.
     score_on='validation_fraction': the members train on the whole training set and are scored on a
     seeded fraction of validation, the original's choice; every output labels it so.
  2. Choice: a setting's score is the mean over its seeds of the task's score (the mean of its
     metrics, as in the tables); the best setting wins, ties go to the first in grid order.
  3. Final: the chosen setting is fine-tuned on the full training set with the usual seeds and scored
     on validation, exactly as a normal run (glue/run.py) with `--hparams` would.

Outputs in --out, besides a normal run's:
    hparams/TASK.json   the chosen learning_rate, warmup_ratio, epochs, their score, what it was scored
                        on, and every member's score; `--hparams DIR_OR_FILE` makes a normal run use it
Resume: per finished task. A task whose hparams/TASK.json was written by the same search (same grid,
scoring set, checkpoint and settings) is not searched again; its final run is skipped as well when
results.json holds it with the chosen values. Files are written atomically (jax_bert.files), so a
crash leaves a task's file whole or absent.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np

from glue import data as glue_data
from glue import finetune, metrics
from glue.tasks import get_task
from jax_bert import files
from jax_bert.finetune import HParams, engine
from jax_bert.finetune.search import (
    CHOSEN_KEYS,
    FORMAT_VERSION,
    Setting,
    apply,
    check_chosen,
    choose,
    fingerprint,
    finished,
    finite_or_none,
    grid,
    hparams_path,
    members,
    scoring_label,
    split_off,
    subset,
    summary_table,
    warmup_steps,
)
from jax_bert.finetune.search import read_hparams as _read_hparams

# The shared parts (jax_bert/finetune/search.py) are GLUE's search's names too.
__all__ = ["CHOSEN_KEYS", "FORMAT_VERSION", "Setting", "apply", "check_chosen", "choose", "fingerprint", "finished",
           "grid", "hparams_path", "members", "read_hparams", "score", "scoring_label", "search_task", "split_off",
           "subset", "summary_table", "warmup_steps"]


def score(task, logits: np.ndarray, labels: np.ndarray) -> float:
    """The task's score on one split: the mean of its metrics (percent), nan when undefined."""
    m = metrics.compute_split_metrics(task, engine.predictions(logits, task.num_labels), labels)
    return float(np.mean(list(m.values())))


def read_hparams(path, tasks: Sequence[str]) -> dict[str, dict]:
    """{task: chosen values} of GLUE tasks from one hparams file or a directory of TASK.json files."""
    return _read_hparams(path, tasks, get_task)


# ------------------------------------------------------------------ one task's search

def search_task(task_name: str, search, *, hp: HParams, max_length: int, bert_config, params,
                tokenizer, dataset, out: os.PathLike, model: str, checkpoint: str, config,
                progress: bool = True) -> dict:
    """Searches one task (or reads its finished search) and returns its hparams document."""
    task = get_task(task_name)
    train = glue_data.tokenize_task(dataset["train"], task, tokenizer, max_length)
    n_train = len(train["input_ids"])
    fp = fingerprint(search, hp, max_length, checkpoint, n_train)
    done = finished(out, task.name, fp)
    if done is not None:
        return done
    if search.score_on == "heldout":
        fit_rows, score_rows = split_off(n_train, search.fraction, search.split_seed)
        fit, scoring = subset(train, fit_rows), subset(train, score_rows)
    else:
        val = glue_data.tokenize_task(dataset[task.validation_splits[0]], task, tokenizer, max_length)
        fit, (_, score_rows) = train, split_off(len(val["input_ids"]), search.fraction, search.split_seed)
        scoring = subset(val, score_rows)
    settings = grid(search, hp.epochs)
    seeds, member_hps = members(settings, int(search.seeds), hp, len(fit["input_ids"]))
    base = dataclasses.replace(hp, epochs=max(m.epochs for m in member_hps))

    runs = finetune.finetune_as_configured(config, bert_config, params, fit, {"score": scoring}, seeds, base,
                                           num_labels=task.num_labels, member_hps=member_hps,
                                           desc=f"{task.name} search ({len(seeds)} members)", show_progress=progress)
    member_scores = np.array([np.nan if runs.failed[i] else score(task, runs.logits["score"][i], scoring["labels"])
                              for i in range(len(seeds))])
    best, means = choose(settings, member_scores, int(search.seeds))
    chosen = settings[best]
    doc = {"format_version": FORMAT_VERSION, "model": model, "task": task.name,
           "learning_rate": chosen.learning_rate, "warmup_ratio": chosen.warmup_ratio, "epochs": chosen.epochs,
           "batch_size": hp.batch_size, "score": float(means[best]),
           "metric": "mean of " + "/".join(task.metrics_per_split), "scored_on": scoring_label(search),
           "score_examples": int(len(score_rows)), "train_examples": int(len(fit["input_ids"])),
           "search_seconds": runs.train_seconds + runs.eval_seconds,
           "settings": [dataclasses.asdict(s) | {"score": finite_or_none(m)} for s, m in zip(settings, means)],
           "members": [{"seed": s, **dataclasses.asdict(settings[i // int(search.seeds)]), "score": finite_or_none(x)}
                       for i, (s, x) in enumerate(zip(seeds, member_scores))],
           "fingerprint": fp}
    files.atomic_write_json(hparams_path(out, task.name), doc)
    return doc
