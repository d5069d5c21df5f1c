"""scripts/pretrain.py's command line: a bad command line is one `error: ...` line and exit status 2, a run
that stops on an expected error (missing data files, teacher or tokenizer, a changed model on resume) one
line and exit status 1; never a traceback. Each case runs the script (or tests/helpers.py) in a child process.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT, one_error_line, subprocess_env

HELPER = os.path.join(ROOT, "tests", "helpers.py")
PRETRAIN = os.path.join(ROOT, "scripts", "pretrain.py")


@pytest.fixture
def straight(reference_run):
    """The session's uninterrupted 8-step run (checkpoints at 4 and 8): the reference."""
    return reference_run[0]


def _checkpoints(workdir):
    return os.path.join(workdir, "checkpoints")


def _pretrain(*args, timeout=180, cwd=None):
    return subprocess.run([sys.executable, PRETRAIN, *args], env=subprocess_env(1), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def _one_error_line(out):
    return one_error_line(out.stderr)


@pytest.mark.slow
@pytest.mark.parametrize("args,status,message", [
    (["--config.train.stepz=3"], 2, "unknown config key 'train.stepz': train has the keys checkpoint_every"),
    (["--config.train.steps=abc"], 2, "--config.train.steps=abc"),
    (["--config.train.eval_batch_size=0"], 2, "train.eval_batch_size must be an integer >= 1, got 0"),
    (["--config.data.source=files", "--config.data.files=/no/such/*.txt"], 1, "/no/such/*.txt"),
    (["--config.distill.teachers=/no/such/teacher"], 1, "teacher '/no/such/teacher' does not exist. To get one"),
    (["--config.tokenizer.name=/no/such/tokenizer"], 1, "tokenizer '/no/such/tokenizer' does not exist"),
])
def test_script_bad_input_is_one_line(tmp_path, args, status, message):
    out = _pretrain("--config", os.path.join(ROOT, "configs", "tiny.py"), "--workdir", str(tmp_path / "w"),
                    f"--config.data_cache_dir={tmp_path}/cache", *args)
    assert out.returncode == status, out.stderr[-2000:]
    line = _one_error_line(out)
    assert message in line
    if "stepz" in message:
        assert line.endswith("Did you mean 'train.steps'?")


@pytest.mark.slow
def test_script_config_file_errors_are_one_line(tmp_path):
    out = _pretrain("--config", str(tmp_path / "missing.py"))
    assert out.returncode == 2 and "no such file" in _one_error_line(out)
    (tmp_path / "broken.py").write_text("def get_config():\n    return 1 / 0\n")
    out = _pretrain("--config", str(tmp_path / "broken.py"))
    assert out.returncode == 2 and "ZeroDivisionError" in _one_error_line(out)


@pytest.mark.slow
def test_tiny_rigl_without_its_teacher_says_to_train_it_first(tmp_path):
    out = _pretrain("--config", os.path.join(ROOT, "configs", "tiny_rigl.py"), "--workdir", str(tmp_path / "w"),
                    cwd=str(tmp_path))  # no runs/tiny here
    assert out.returncode == 1
    line = _one_error_line(out)
    assert "teacher 'runs/tiny'" in line and "configs/tiny.py --workdir runs/tiny" in line


@pytest.mark.slow
def test_resuming_with_a_changed_model_is_one_line(straight, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(straight, workdir)
    out = subprocess.run([sys.executable, HELPER, workdir, cache_dir, json.dumps({"model.intermediate_size": 48})],
                         env=subprocess_env(1), capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "holds another model or optimizer" in _one_error_line(out)
    assert sorted(os.listdir(_checkpoints(workdir))) == ["4", "8"]
