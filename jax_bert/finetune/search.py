"""A hyper-parameter search as one fine-tuning program, for every task family (glue/search.py, squad/search.py).

The grid (jax_bert/finetune/search_config.py) becomes the member axis of one fine-tuning run
(`finetune(..., member_hps=...)`): each member has its own seed, peak learning rate, warm-up steps and step
count, all of them trained by one compiled step; a member whose steps are done stops updating. What is the
same for every family lives here: the grid and its members, the seeded split of a scoring set, the choice
(the best mean over seeds, ties to the first in grid order), and the hparams files (OUT/hparams/TASK.json,
written atomically, with a fingerprint of what decided them so that a finished search is not run again). A
family tokenizes its data, trains the members and scores them with its own metric.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from jax_bert.finetune import hparams, search_config
from jax_bert.finetune.hparams import HParams

FORMAT_VERSION = 1
CHOSEN_KEYS = ("learning_rate", "warmup_ratio", "epochs")
_SPLIT_TAG = 7919  # a stream of its own for the held-out choice (not a seed's data order)


# ------------------------------------------------------------------ the grid and the scoring set

@dataclasses.dataclass(frozen=True)
class Setting:
    learning_rate: float
    warmup_ratio: float
    epochs: int


def warmup_steps(ratio: float, steps: int) -> int:
    """Hugging Face's warmup_ratio: ceil(ratio x steps)."""
    return int(math.ceil(float(ratio) * steps))


def grid(search, task_epochs: int) -> list[Setting]:
    """Every setting of the search, in grid order (learning rate slowest, epochs fastest)."""
    epochs = [int(e) or int(task_epochs) for e in search_config.grid_values(search, "epochs")]
    return [Setting(float(lr), float(w), e) for lr, w, e in itertools.product(
        search_config.grid_values(search, "learning_rates"), search_config.grid_values(search, "warmup_ratios"),
        dict.fromkeys(epochs))]


def members(settings: Sequence[Setting], seeds: int, hp: HParams, n_train: int):
    """(seeds, HParams) per member: every setting x seeds 0..seeds-1, each setting's own schedule."""
    spe = hparams.steps_per_epoch(n_train, hp.batch_size, hp.drop_last)
    seed_list, hps = [], []
    for s in settings:
        for seed in range(seeds):
            seed_list.append(seed)
            hps.append(dataclasses.replace(hp, learning_rate=s.learning_rate, epochs=s.epochs,
                                           warmup_steps=warmup_steps(s.warmup_ratio, s.epochs * spe)))
    return seed_list, hps


def split_off(n: int, fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out): sorted, disjoint example indices covering range(n); round(fraction x n) held
    out (at least 1, and at least 1 kept), chosen by a seeded permutation."""
    if n < 2:
        raise ValueError(f"a split of {n} example(s) cannot be divided into a part to train on and one to score.")
    k = min(n - 1, max(1, int(round(fraction * n))))
    order = np.random.default_rng([int(split_seed), _SPLIT_TAG]).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


def subset(data: Mapping[str, np.ndarray], rows: np.ndarray) -> dict:
    return {k: np.asarray(v)[rows] for k, v in data.items()}


def scoring_label(search) -> str:
    pct = f"{100 * search.fraction:g}%"
    if search.score_on == "heldout":
        return (f"heldout: {pct} of train held out (split seed {search.split_seed}), trained on the rest; "
                "validation untouched")
    return (f"validation_fraction: {pct} of validation (split seed {search.split_seed}), as the original; "
            "the validation numbers are not independent of this choice")


def choose(settings: Sequence[Setting], member_scores: np.ndarray, seeds: int) -> tuple[int, np.ndarray]:
    """(index of the best setting, mean score per setting over its finite-scored seeds; nan if none).
    Ties go to the first setting in grid order."""
    per = np.asarray(member_scores, np.float64).reshape(len(settings), seeds)
    ok = np.isfinite(per)
    means = np.where(ok.any(axis=1), np.where(ok, per, 0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1), np.nan)
    if not np.isfinite(means).any():
        raise ValueError("every member of the search diverged or scored nan; try smaller learning rates.")
    return int(np.nanargmax(means)), means


# ------------------------------------------------------------------ the hparams files

def hparams_path(out: os.PathLike, task: str) -> Path:
    return Path(out) / "hparams" / f"{task}.json"


def read_hparams(path: os.PathLike, tasks: Sequence[str], check_task: Callable[[str], object]) -> dict[str, dict]:
    """{task: chosen values} from one hparams file or a directory of TASK.json files (tasks without a
    file are left out). `check_task(name)` raises ValueError for a task name the family does not know. A
    damaged or foreign file is a ValueError naming it."""
    path = Path(path)
    if path.is_dir():
        found = [path / f"{t}.json" for t in tasks if (path / f"{t}.json").is_file()]
        if not found:
            raise ValueError(f"--hparams {path}: no file for any of the tasks {', '.join(tasks)} "
                             "(expected TASK.json, as a search writes into OUT/hparams).")
    elif path.is_file():
        found = [path]
    else:
        raise ValueError(f"--hparams {path}: no such file or directory.")
    out = {}
    for f in found:
        try:
            with open(f) as fh:
                doc = json.load(fh)
            task, chosen = doc["task"], {k: doc[k] for k in CHOSEN_KEYS}
            check_task(task)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"--hparams {f}: not a search's hparams file ({type(e).__name__}: {e}); it needs "
                             f"task, {', '.join(CHOSEN_KEYS)}.") from None
        check_chosen(chosen, f)
        if task in tasks:
            out[task] = chosen | {"scored_on": doc.get("scored_on"), "score": doc.get("score"), "file": str(f)}
    return out


def check_chosen(chosen: Mapping, where) -> None:
    lr, ratio, epochs = (chosen[k] for k in CHOSEN_KEYS)
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"--hparams {where}: learning_rate must be > 0, got {lr!r}.")
    if not (isinstance(ratio, (int, float)) and 0 <= ratio < 1):
        raise ValueError(f"--hparams {where}: warmup_ratio must lie in [0, 1), got {ratio!r}.")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"--hparams {where}: epochs must be an integer >= 1, got {epochs!r}.")


def apply(hp: HParams, chosen: Mapping, n_train: int) -> HParams:
    """hp with the chosen learning rate, epochs and warm-up (ratio of this training set's steps)."""
    steps = int(chosen["epochs"]) * hparams.steps_per_epoch(n_train, hp.batch_size, hp.drop_last)
    return dataclasses.replace(hp, learning_rate=float(chosen["learning_rate"]), epochs=int(chosen["epochs"]),
                               warmup_steps=warmup_steps(chosen["warmup_ratio"], steps))


# ------------------------------------------------------------------ resume

def fingerprint(search, hp: HParams, max_length: int, checkpoint: str, n_train: int) -> dict:
    """What decides a search's outcome: a finished search with the same fingerprint is not rerun."""
    return {"search": search.to_dict(), "hparams": vars(hp) | {"max_length": max_length},
            "checkpoint": str(checkpoint), "train_examples": int(n_train)}


def finished(out: os.PathLike, task: str, fp: dict) -> dict | None:
    """The hparams file of a finished search of `task` with this fingerprint, else None."""
    path = hparams_path(out, task)
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if doc.get("fingerprint") == json.loads(json.dumps(fp)) else None


def finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def summary_table(chosen: Mapping[str, Mapping]) -> str:
    """Markdown: the chosen values per task, beside the results table."""
    if not chosen:
        return ""
    lines = ["", "Hyper-parameters (chosen by search):", "",
             "| task | learning rate | warm-up ratio | epochs | search score | scored on |",
             "|---|---|---|---|---|---|"]
    for task, c in chosen.items():
        s = c.get("score")
        lines.append(f"| {task} | {c['learning_rate']:g} | {c['warmup_ratio']:g} | {c['epochs']} | "
                     f"{'' if s is None else f'{s:.2f}'} | {c.get('scored_on') or ''} |")
    return "\n".join(lines) + "\n"
