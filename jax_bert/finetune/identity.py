"""Which checkpoint a fine-tuning results directory belongs to, for every task family (GLUE, ...).

A results directory (`--out`) holds the runs of one model: averages and tables over its tasks mean
nothing if two of them were fine-tuned from different weights. So the directory records the identity of
its checkpoint in `checkpoint.json`: the path it was given as and a fingerprint (SHA-256 over the bytes
of the model's config file and weight file). A run with another fingerprint is refused, naming both,
unless it asks to start afresh: then the old directory is moved aside (never deleted) and a new one
begins. The fingerprint, not the path, decides: the same files copied elsewhere are the same model, and
a path whose files were replaced by a new export is not.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from jax_bert import files

IDENTITY_FILE = "checkpoint.json"
LOCK_FILE = ".lock"  # OneRunAtATime's
MOVED_SUFFIX = ".replaced-"  # OUT.replaced-1, OUT.replaced-2, ...: what --fresh set aside
_CHUNK = 1 << 22


class ResultsOfAnotherModel(ValueError):
    """The results directory holds runs of another checkpoint than the one given."""


def fingerprint(paths: Iterable[str | os.PathLike]) -> str:
    """SHA-256 (hex) over each file's base name and bytes, in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.basename(os.fspath(path)).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def checkpoint_identity(path: str | os.PathLike, model_files: Iterable[str | os.PathLike],
                        **details) -> dict:
    """{"path", "fingerprint", **details} of the checkpoint given as `path` (a directory, made absolute, or a
    hub name) whose model is `model_files` (its config and weights). `details`: what else says which model
    it is (e.g. a training step)."""
    where = os.fspath(path)  # a hub name stays a name
    return {"path": os.path.abspath(where) if os.path.exists(where) else where,
            "fingerprint": fingerprint(model_files), **details}


def describe(identity: dict | None) -> str:
    """'PATH (weights 1a2b3c4d5e6f)' for messages."""
    if not identity:
        return "an unrecorded checkpoint"
    step = f", step {identity['step']}" if identity.get("step") is not None else ""
    return f"{identity['path']} (weights {identity['fingerprint'][:12]}{step})"


def recorded(out: str | os.PathLike) -> dict | None:
    """The identity recorded in `out`, or None."""
    path = Path(out) / IDENTITY_FILE
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is damaged ({e}); remove it, or start afresh with --fresh.") from None


def move_aside(out: str | os.PathLike) -> Path:
    """Renames `out` to the first free OUT.replaced-N and returns that path."""
    out = Path(out)
    n = 1
    while Path(f"{out}{MOVED_SUFFIX}{n}").exists():
        n += 1
    target = Path(f"{out}{MOVED_SUFFIX}{n}")
    os.replace(out, target)
    return target


def claim(out: str | os.PathLike, identity: dict, *, has_results: bool, fresh: bool = False,
          legacy_path: str | None = None, flag: str = "--fresh") -> Path | None:
    """Makes `out` the results directory of `identity`'s checkpoint; returns where earlier results were
    moved (with `fresh`, or None when nothing was moved).

    Refused (ResultsOfAnotherModel, one line naming both) when `out` records another fingerprint, or
    holds results (`has_results`) without a record, unless `legacy_path` (the checkpoint path that a
    run from before identities were recorded wrote down) is this checkpoint's path. `fresh`: existing
    results are moved aside to OUT.replaced-N whatever they are, and `out` starts empty."""
    out = Path(out)
    moved = None
    if fresh and out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
        moved = move_aside(out)
    else:
        have = recorded(out)
        ours = have is not None and have.get("fingerprint") == identity["fingerprint"]
        legacy = (have is None and legacy_path is not None
                  and os.path.abspath(legacy_path) == identity["path"])
        if not ours and not legacy and (have is not None or has_results):
            raise ResultsOfAnotherModel(
                f"{out} holds the results of {describe(have)}, not of {describe(identity)}; give another "
                f"--out, or add {flag} to move those results aside (to {out}{MOVED_SUFFIX}N) and start afresh.")
    out.mkdir(parents=True, exist_ok=True)
    files.atomic_write_json(out / IDENTITY_FILE, identity)
    return moved


def hf_identity(path: str | os.PathLike, hf_dir: str, **details) -> dict:
    """The identity of the Hugging Face directory `hf_dir` (given as `path`): its config.json and the
    weights file that jax_bert.model.hf_io.load_hf reads."""
    from jax_bert.model import hf_io

    weights = hf_io.find_weights_file(hf_dir)
    if weights is None:
        raise ValueError(f"{hf_dir}: no weights file (model.safetensors or pytorch_model.bin).")
    return checkpoint_identity(path, [os.path.join(hf_dir, "config.json"), weights], **details)


class OneRunAtATime:
    """An flock on OUT/.lock while a run writes into OUT: two runs into one directory would each read,
    change and write back its results files and lose the other's seeds. The lock goes with the process,
    also when it is killed; the second run is refused, naming the first."""

    def __init__(self, out: str | os.PathLike):
        self.out, self._file = Path(out), None

    def acquire(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self._file = files.lock_folder(self.out, lambda holder: (
            f"{self.out} is in use by a fine-tuning run that is still going ({holder}); wait for it to finish, "
            "stop it, or give another --out."))

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None
