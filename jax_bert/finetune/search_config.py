"""Every key of a hyper-parameter search (`scripts/glue.py --search FILE`, `scripts/squad.py --search FILE`),
with its default, for every task family.

This file is itself a valid search file (`--search jax_bert/finetune/search_config.py`; glue/search_config.py
is the same), and every key can be changed on the command line (`--search.learning_rates="(1e-5,3e-5)"`). A
file of your own starts from these defaults:

    from jax_bert.finetune.search_config import get_config as search_defaults

    def get_config():
        s = search_defaults()
        s.learning_rates = (1e-5, 2e-5, 3e-5, 5e-5)
        return s

The grid is learning_rates x warmup_ratios x epochs x seeds: every member fine-tunes in one compiled
program (jax_bert/finetune/search.py; glue/search.py and squad/search.py score the members). The original
searched the learning rate log-uniformly, the number of steps and a warm-up ratio of 0 or 0.1 with Ray Tune
(docs/original.md); a grid covers the same ranges.
"""
from __future__ import annotations

import math

import ml_collections

SCORE_ON = ("heldout", "validation_fraction")


def get_config() -> ml_collections.ConfigDict:
    s = ml_collections.ConfigDict()
    s.learning_rates = (1e-5, 2e-5, 3e-5, 5e-5)
    s.warmup_ratios = (0.0, 0.1)  # warm-up steps = ceil(ratio x the member's steps), as HF's warmup_ratio
    s.epochs = (0,)  # training epochs per member; 0 = the task's own (its config's epochs)
    s.seeds = 1  # seeds 0..N-1 of every setting; a setting's score is the mean over its seeds
    # What the members are scored on: 'heldout' = a seeded fraction of the training set that the search
    # does not train on (the validation set stays untouched for the final number); 'validation_fraction'
    # = a seeded fraction of the validation set, the original's choice (its validation numbers are then
    # no longer independent of the choice; the outputs say so).
    s.score_on = "heldout"
    s.fraction = 0.1  # the share of train (heldout) or validation (validation_fraction) scored on
    s.split_seed = 0  # seeds the choice of those examples
    return s


_KINDS = {"learning_rates": float, "warmup_ratios": float, "epochs": int, "seeds": int, "score_on": str,
          "fraction": float, "split_seed": int}


def _is(value, kind) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


def validate(search) -> None:
    """Every key known, every value of its type and range; a ValueError naming the first problem."""
    if not isinstance(search, ml_collections.ConfigDict):
        raise ValueError(f"the search config must be an ml_collections.ConfigDict (start from "
                         f"jax_bert.finetune.search_config.get_config()), got {type(search).__name__}.")
    unknown = sorted(set(search.keys()) - set(_KINDS))
    if unknown:
        raise ValueError(f"unknown search keys {unknown}; the keys are {', '.join(_KINDS)} "
                         "(jax_bert/finetune/search_config.py).")
    missing = sorted(set(_KINDS) - set(search.keys()))
    if missing:
        raise ValueError(f"the search config lacks keys {missing}; start from "
                         "jax_bert.finetune.search_config.get_config().")
    for key in ("learning_rates", "warmup_ratios", "epochs"):
        values = search[key]
        if isinstance(values, (int, float)) and not isinstance(values, bool):
            values = (values,)
        if not isinstance(values, (tuple, list)) or not values:
            raise ValueError(f"search.{key} must be a non-empty tuple of numbers (an empty grid has "
                             f"nothing to search), got {values!r}.")
        for v in values:
            if not _is(v, _KINDS[key]) or not math.isfinite(v):
                raise ValueError(f"search.{key} must hold {_KINDS[key].__name__}s, got {v!r}.")
        if len(set(values)) != len(values):
            raise ValueError(f"search.{key} repeats a value: {tuple(values)}.")
    if min(search.learning_rates) <= 0:
        raise ValueError(f"search.learning_rates must all be > 0, got {tuple(search.learning_rates)}.")
    if not all(0 <= r < 1 for r in grid_values(search, "warmup_ratios")):
        raise ValueError(f"search.warmup_ratios must lie in [0, 1), got {tuple(search.warmup_ratios)}.")
    if min(grid_values(search, "epochs")) < 0:
        raise ValueError(f"search.epochs must be >= 1, or 0 for the task's own, got {tuple(search.epochs)}.")
    for key in ("seeds", "score_on", "fraction", "split_seed"):
        if not _is(search[key], _KINDS[key]):
            raise ValueError(f"search.{key} must be {_KINDS[key].__name__}, got {search[key]!r}.")
    if search.seeds < 1:
        raise ValueError(f"search.seeds must be >= 1, got {search.seeds}.")
    if search.score_on not in SCORE_ON:
        raise ValueError(f"search.score_on must be one of {SCORE_ON}, got {search.score_on!r}.")
    if not 0 < search.fraction < 1:
        raise ValueError(f"search.fraction must lie in (0, 1), got {search.fraction}.")


def grid_values(search, key: str) -> tuple:
    """search[key] as a tuple (a single number on the command line is a grid of one)."""
    values = search[key]
    return tuple(values) if isinstance(values, (tuple, list)) else (values,)


FILE = "jax_bert/finetune/search_config.py"  # as the messages name it


def define_flag(argv, flag_values, *, default_file: str = FILE):
    """--search FILE and its --search.KEY=VALUE overrides (config_flags reads them as it is defined), for a
    command line (jax_bert.cli); an unknown key, a missing file or overrides without a file are one line and
    exit status 2. `default_file`: the file the messages suggest."""
    import os
    import re

    from ml_collections import config_flags

    from jax_bert import cli

    given = [a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
             for i, a in enumerate(argv) if re.fullmatch(r"--?search(=.*)?", a)]
    for path in given:
        if not os.path.isfile(path):
            cli.fail(f"--search {path}: no such file; give a Python file with get_config(), e.g. "
                     f"{default_file}.", cli.USAGE)
    for arg in argv:
        m = re.match(r"--?search\.([^=]+)", arg)
        if m and not given:
            cli.fail(f"{arg}: give the search file too (--search {default_file}).", cli.USAGE)
        problem = m and cli.unknown_key(get_config(), m.group(1), default_file)
        if problem:
            cli.fail(f"--search: {problem}", cli.USAGE)
    config_flags.DEFINE_config_file("search", None, "Search the hyper-parameters first: a Python file "
                                    f"with get_config() ({default_file}).", lock_config=True, sys_argv=argv,
                                    flag_values=flag_values)


def check_flag(flag_values) -> None:
    """The parsed --search config checked (validate); a problem is one line and exit status 2."""
    from jax_bert import cli

    try:
        if flag_values.search is not None:
            validate(flag_values.search)
    except Exception as e:  # noqa: BLE001 - the search file's load error, or validate's message
        text = e.args[0] if isinstance(e, ValueError) and e.args else f"{type(e).__name__}: {e}"
        cli.fail(f"--search: {text}", cli.USAGE)
