"""Checkpoints under faults: a damaged newest checkpoint, every checkpoint damaged, a checkpoint of another
model, a damaged teacher checkpoint, an error after the last step, a NaN before the first save, and a
resumed run's metrics.

Each test injects one fault into a pretraining run in this process (most on a copy of the session's
uninterrupted 8-step reference run, checkpoints at 4 and 8) and asserts the promise: the message, which
checkpoint survives and what is set aside, and a resumed run bitwise equal to the uninterrupted one with
each metrics row written once. The checkpoint benchmark script (checksummed saves, verified restores)
runs on tiny shapes in a child process.
"""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import (
    ROOT,
    checkpoints_dir,
    losses,
    sigterm_after_step,
    subprocess_env,
    tiny_config,
    tmp_checkpoint_folders,
)
from jax_bert.train import checkpoint
from jax_bert.train import loop as pretrain
from jax_bert.train.logs import read_jsonl


@pytest.fixture
def straight(reference_run):
    """The session's uninterrupted 8-step run (checkpoints at 4 and 8): the reference."""
    return reference_run[0]


def _damage(step_dir: str, kind: str) -> None:
    if kind == "truncated file":
        biggest = max(glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True),
                      key=os.path.getsize)
        with open(biggest, "r+b") as f:
            f.truncate(os.path.getsize(biggest) // 2)
    elif kind == "flipped bytes":
        biggest = max(glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True),
                      key=os.path.getsize)
        with open(biggest, "r+b") as f:
            f.seek(os.path.getsize(biggest) // 2)
            chunk = f.read(8)
            f.seek(os.path.getsize(biggest) // 2)
            f.write(bytes(b ^ 0x5A for b in chunk))
    elif kind == "flipped bytes in every data file":
        # Which file holds which array depends on the timing of orbax's concurrent writers, so a reader of
        # one subtree (a teacher reads only the params) is sure to meet damage only if every file has some.
        for path in glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True):
            with open(path, "r+b") as f:
                data = bytearray(f.read())
                for i in range(0, len(data), 512):
                    data[i] ^= 0x5A
                f.seek(0)
                f.write(data)
    elif kind == "broken data_position":
        with open(os.path.join(step_dir, "data_position", "metadata"), "w") as f:
            f.write('{"step": 8, "state_che')
    elif kind == "removed state folder":
        shutil.rmtree(os.path.join(step_dir, "state"))
    else:
        raise AssertionError(kind)


# ------------------------------------------------------------------ an error after the last step


def test_an_error_after_the_last_step_keeps_the_final_checkpoint(cache_dir, tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")

    def broken_eval(*args, **kwargs):
        raise RuntimeError("injected: the final evaluation fails")

    with monkeypatch.context() as m:
        m.setattr(pretrain, "evaluate", broken_eval)
        with pytest.raises(RuntimeError, match="injected"):
            pretrain.run(tiny_config(cache_dir), workdir)
    assert checkpoint.latest_step(checkpoints_dir(workdir)) == 8  # committed although the eval raised
    assert not tmp_checkpoint_folders(workdir)
    again = pretrain.run(tiny_config(cache_dir), workdir)  # resumes at 8: nothing left to train
    assert again["status"] == "finished" and again["step"] == 8 and "last_train" not in again


# ------------------------------------------------------------------ damaged checkpoints


@pytest.mark.parametrize("kind", ["truncated file", "flipped bytes", "broken data_position", "removed state folder"])
def test_a_damaged_newest_checkpoint_is_named_and_the_run_resumes_from_the_previous_one(
        straight, cache_dir, tmp_path, kind, caplog):
    workdir = str(tmp_path / "run")
    shutil.copytree(straight, workdir)
    _damage(os.path.join(checkpoints_dir(workdir), "8"), kind)
    caplog.set_level("WARNING", logger="jax_bert")
    result = pretrain.run(tiny_config(cache_dir), workdir)
    warnings = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(warnings) == 1 and "checkpoint 8 in" in warnings[0] and "8.damaged" in warnings[0], warnings
    assert result["status"] == "finished" and result["step"] == 8
    assert os.path.isdir(os.path.join(checkpoints_dir(workdir), "8.damaged"))  # kept for a post-mortem
    # Resumed from 4: steps 5..8 again, bitwise as in the uninterrupted run, each logged once.
    rows = [r["step"] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl")) if "train/loss" in r]
    assert rows == sorted(set(rows))
    assert losses(workdir) == losses(straight)
    a = checkpoint.restore_params_only(checkpoints_dir(workdir), 8)
    b = checkpoint.restore_params_only(checkpoints_dir(straight), 8)
    np.testing.assert_array_equal(a["bert"]["embeddings"]["word_embeddings"]["embedding"],
                                  b["bert"]["embeddings"]["word_embeddings"]["embedding"])
    caplog.clear()
    pretrain.run(tiny_config(cache_dir), workdir)  # never again: the new checkpoint 8 is intact
    assert not [r for r in caplog.records if "is damaged" in r.getMessage()]


def test_every_checkpoint_damaged_is_one_error_then_a_fresh_start(straight, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(straight, workdir)
    for step in ("4", "8"):
        _damage(os.path.join(checkpoints_dir(workdir), step), "flipped bytes")
    with pytest.raises(checkpoint.CheckpointDamaged, match="and so is every older one.*rerun to start from step 0"):
        pretrain.run(tiny_config(cache_dir), workdir)
    assert checkpoint.latest_step(checkpoints_dir(workdir)) is None
    assert pretrain.run(tiny_config(cache_dir), workdir)["status"] == "finished"  # no loop: a fresh run
    assert losses(workdir) == losses(straight)


def test_a_checkpoint_of_another_model_is_not_damage(straight, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(straight, workdir)
    os.remove(os.path.join(workdir, "config.json"))  # (with it, the changed recipe is refused before the restore)
    config = tiny_config(cache_dir)
    config.model.intermediate_size = 48
    with pytest.raises(ValueError, match=r"holds another model or optimizer \(.*intermediate.*\); resume with the "
                                         r"config it was written with"):
        pretrain.run(config, workdir)
    assert sorted(os.listdir(checkpoints_dir(workdir))) == ["4", "8"]  # nothing set aside


def test_a_damaged_teacher_checkpoint_is_named(cache_dir, tmp_path):
    teacher = str(tmp_path / "teacher")
    pretrain.run(tiny_config(cache_dir, steps=4, checkpoint_every=4), teacher)  # no hf/: read from checkpoints
    _damage(os.path.join(checkpoints_dir(teacher), "4"), "flipped bytes in every data file")
    config = tiny_config(cache_dir, steps=2)
    config.distill.teachers = (teacher,)
    with pytest.raises(checkpoint.CheckpointDamaged, match=r"checkpoint 4 in .*teacher/checkpoints is damaged: \w"):
        pretrain.run(config, str(tmp_path / "kd"))


# ------------------------------------------------------------------ a NaN, and the metrics of a resumed run


def test_a_nan_before_any_checkpoint_does_not_claim_one(cache_dir, tmp_path):
    config = tiny_config(cache_dir)
    config.optim.update(learning_rate=1e30)
    with pytest.raises(pretrain.TrainingDiverged, match="No checkpoint was saved yet"):
        pretrain.run(config, str(tmp_path / "nan"))


def test_resume_writes_each_row_once_and_drops_a_cut_line(straight, cache_dir, tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    with monkeypatch.context() as m:
        sigterm_after_step(m, 6)  # checkpoint at 4 (policy) and at 6 (the signal)
        pretrain.run(tiny_config(cache_dir), workdir)
    shutil.rmtree(os.path.join(checkpoints_dir(workdir), "6"))  # as if killed before that save: resume at 4
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 7, "train/lo')  # a line cut by kill -9
    pretrain.run(tiny_config(cache_dir), workdir)
    rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    keys = [(r["step"], tuple(sorted(r))) for r in rows]
    assert len(keys) == len(set(keys)), keys
    assert [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r] == sorted(losses(straight).items())


# ------------------------------------------------------------------ the checkpoint benchmark script


@pytest.mark.slow
def test_checkpoint_benchmark_runs_on_tiny_shapes():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "benchmark_checkpoint.py"), "--preset", "tiny",
                          "--repeats", "1"], env=subprocess_env(1), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "checksums / save:" in out.stdout and "verified restore" in out.stdout
