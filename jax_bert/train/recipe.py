"""A work directory holds one run: a resume may not change its recipe, and every start is recorded.

The recipe is every setting that defines the run's data order and optimisation (the model, the data
and tokenizer, masking, the global batch, length, steps and seed, the optimizer and its schedule,
sparsity, distillation). `MAY_CHANGE` lists the settings that may differ on resume: how the run is
watched, saved and placed. Anything not listed there is recipe, so a key added later is protected
until someone decides otherwise (docs/config_keys.md has the table).

`config.json` is the config of the latest start; `config_history.jsonl` gets one line per start (the
step it started at and its config), so the settings of the first steps are never lost.
"""
from __future__ import annotations

import datetime
import json
import os
import re

from jax_bert import files

CONFIG = "config.json"
HISTORY = "config_history.jsonl"

# Dotted keys (or groups, ending in ".") that a resume may change.
MAY_CHANGE = (
    "train.log_every", "train.eval_every", "train.eval_batch_size", "train.checkpoint_every",
    "train.keep_checkpoints", "train.export_hf", "train.progress_bar", "train.grad_accum_steps",
    "model.remat", "data_cache_dir", "data.build_on_process0_wait_s", "mesh.", "distributed.",
)


def _may_change(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in MAY_CHANGE)


def _flat(node, prefix: str = "") -> dict:
    """{dotted key: value} of a config as JSON gives it back (tuples become lists)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _as_json(config: dict) -> dict:
    return json.loads(json.dumps(config, default=str))


def _same_place(path):
    """A path that exists, as the directory it is (runs/tiny and /abs/runs/tiny name one teacher)."""
    return os.path.realpath(path) if isinstance(path, str) and path and os.path.exists(path) else path


def _comparable(config: dict) -> dict:
    flat = _flat(_as_json(config))
    for key in ("tokenizer.name", "init_from_hf"):
        if key in flat:
            flat[key] = _same_place(flat[key])
    if isinstance(flat.get("distill.teachers"), list):
        flat["distill.teachers"] = [{**t, "path": _same_place(t.get("path"))} if isinstance(t, dict)
                                    else _same_place(t) for t in flat["distill.teachers"]]
    return flat


def changed_recipe(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """(key, old value, new value) of every recipe key that differs; a key the old config lacks (written
    by an older version) is not compared."""
    before, after = _comparable(old), _comparable(new)
    return [(key, before[key], after[key]) for key in sorted(before)
            if key in after and not _may_change(key) and before[key] != after[key]]


def _has_checkpoint(workdir: str) -> bool:
    """A committed checkpoint step (orbax names them by number; set-aside ones end in .damaged)."""
    folder = os.path.join(workdir, "checkpoints")
    return os.path.isdir(folder) and any(re.fullmatch(r"\d+", name) for name in os.listdir(folder))


def check_resume(workdir: str, config: dict) -> None:
    """Raises ValueError when `workdir` holds a checkpoint of a run whose recipe differs from `config`'s
    (as its config.json records it): one line naming each changed key with its old and new value."""
    path = os.path.join(workdir, CONFIG)
    if not (_has_checkpoint(workdir) and os.path.isfile(path)):
        return
    try:
        with open(path) as f:
            written = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} cannot be read ({' '.join(str(e).split())}); it records the run this work "
                         "directory holds: restore it from config_history.jsonl, or use another --workdir.") from None
    changes = changed_recipe(written, config)
    if changes:
        shown = "; ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes[:8])
        more = f" and {len(changes) - 8} more" if len(changes) > 8 else ""
        raise ValueError(f"{workdir} holds a run with another recipe ({shown}{more}); a resume must keep the "
                         f"settings of its data order and optimisation (as in {path}). Resume with them, or start "
                         "a new run with another --workdir (what may change on resume: docs/config_keys.md).")


def record_start(workdir: str, config: dict, step: int) -> None:
    """Writes config.json (atomically) and appends this start to config_history.jsonl."""
    files.atomic_write_json(os.path.join(workdir, CONFIG), config)
    entry = {"started_at_step": int(step),
             "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "config": _as_json(config)}
    with open(os.path.join(workdir, HISTORY), "a") as f:
        f.write(json.dumps(entry) + "\n")


def history(workdir: str) -> list[dict]:
    """The recorded starts, oldest first (a line cut short by a crash is skipped)."""
    path = os.path.join(workdir, HISTORY)
    if not os.path.isfile(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
