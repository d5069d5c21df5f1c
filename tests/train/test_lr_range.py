"""The LR range test: the ramp the step really used, the loop's batches and step, the suggestion rule
against pandas' centred rolling mean, the outputs, the masks held still, and bad input (the command line's
cases in this process, the real script once in a child process)."""
import csv
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pandas as pd
import pytest

import sparsity
from helpers import ROOT, losses, script_flags, shared_tokenizer, stops_with_one_line, subprocess_env, tiny_config
from jax_bert import cli
from jax_bert.train import config as pretrain_config
from jax_bert.train import loop as pretrain
from jax_bert.train import lr_range, sparse_config


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("mode", ["linear", "exponential"])
def test_range_test_on_tiny_shapes(cache_dir, tmp_path, mode):
    config = tiny_config(cache_dir, steps=8)
    steps, min_lr, max_lr = 9, 1e-4, 5e-2
    result = lr_range.run(config, str(tmp_path / "test"), min_lr=min_lr, max_lr=max_lr, steps=steps, mode=mode,
                          window=3)
    rows = read_csv(result["files"]["csv"])
    assert [int(r["step"]) for r in rows] == list(range(steps)) and list(rows[0]) == list(lr_range.COLUMNS)
    # The lr each step used (read back from the optimizer state) is the original's ramp.
    i = np.arange(steps)
    want = (min_lr + (max_lr - min_lr) / (steps - 1) * i if mode == "linear"
            else (max_lr / min_lr) ** (i / (steps - 1)) * min_lr)
    np.testing.assert_allclose([float(r["learning_rate"]) for r in rows], want, rtol=2e-6)
    # The suggestion: the lr at the minimum of the centred rolling mean of the validation loss.
    eval_loss = pd.Series([float(r["eval_loss"]) for r in rows])
    smoothed = eval_loss.rolling(3, center=True, min_periods=1).mean()
    np.testing.assert_allclose([float(r["eval_loss_smoothed"]) for r in rows], smoothed, rtol=1e-6)
    assert result["suggested_max_lr"] == pytest.approx(float(rows[int(smoothed.idxmin())]["learning_rate"]), rel=1e-6)
    summary = json.load(open(result["files"]["json"]))
    assert summary["suggested_max_lr"] == result["suggested_max_lr"] and "moving average of 3 steps" in summary["rule"]
    from matplotlib.image import imread

    assert imread(result["files"]["png"]).shape[2] in (3, 4)
    # A fixed subset: 5% of the validation blocks, the same every step.
    _, _, val_blocks = pretrain.prepare_data(config, str(tmp_path / "test"))
    assert summary["eval_blocks"] == len(val_blocks[::20])


def test_the_first_step_is_the_runs_first_step(cache_dir, tmp_path):
    """Step 0's training loss is computed before any update: it must equal a pretraining run's, whose
    batch and initial state are the same (the loop's data and the step builder)."""
    config = tiny_config(cache_dir, steps=2)
    pretrain.run(config, str(tmp_path / "run"))
    result = lr_range.run(config, str(tmp_path / "test"), steps=3, min_lr=1e-4, max_lr=1e-3)
    assert result["rows"][0]["train_loss"] == pytest.approx(losses(str(tmp_path / "run"))[1], rel=1e-6)


def test_a_sparse_distilled_config_keeps_its_masks_and_distils(cache_dir, tmp_path):
    teacher = str(tmp_path / "teacher")
    pretrain.run(tiny_config(cache_dir, steps=2, export_hf=True), teacher)
    config = tiny_config(cache_dir)
    config.sparsity.update(enabled=True, overall=0.6)
    config.sparsity.rigl.update(enabled=True, update_freq=2, start=2)  # would move the masks at steps 2, 4
    config.distill.teachers = [{"path": teacher, "weight": 1.0}]
    result = lr_range.run(config, str(tmp_path / "test"), steps=5, min_lr=1e-3, max_lr=1e-1)
    state = result["state"]
    masks = sparsity.get_masks(state["opt_state"])
    initial = sparsity.init_masks(jax.random.key(0), state["params"], sparse_config.sparsity_spec(config.sparsity))
    for a, b in zip(jax.tree.leaves(masks), jax.tree.leaves(initial)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert sparsity.masked_nonzero(state["params"], masks) == 0
    # The objective is distillation (the teacher's distribution), evaluation plain MLM.
    assert all(r["train_loss"] != r["train_mlm_loss"] for r in result["rows"])


def test_the_masks_do_not_change_during_the_test(cache_dir):
    config = tiny_config(cache_dir)
    config.sparsity.update(enabled=True, overall=0.6)
    config.sparsity.rigl.update(enabled=True, update_freq=2, start=2)
    test = lr_range.range_test_config(config)
    assert test.sparsity.enabled and not test.sparsity.rigl.enabled and test.optim.schedule == "constant"
    assert config.sparsity.rigl.enabled  # the caller's config is unchanged
    config.sparsity.rigl.enabled = False
    config.sparsity.gmp.update(enabled=True, warmup_steps=2, cooldown_steps=2, prune_period=2)
    test = lr_range.range_test_config(config)
    assert not test.sparsity.enabled and not test.sparsity.gmp.enabled  # gradual pruning starts dense


def test_suggest_on_made_up_curves():
    lrs = np.linspace(1e-4, 1e-2, 100)
    rng = np.random.default_rng(0)
    valley = (lrs - 4e-3) ** 2 * 1e5 + 3 + rng.normal(0, 0.05, 100)  # lowest at 4e-3
    train = 5 - lrs * 100
    s = lr_range.suggest(lrs, valley, train, window=9)
    assert abs(s["suggested_max_lr"] - 4e-3) < 1e-3
    assert "still falling" in s["notes"][0]
    falling = lr_range.suggest(lrs, 5 - lrs * 50, train)
    assert falling["suggested_max_lr"] == lrs[-1] and "larger --max_lr" in falling["notes"][-1]
    rising = lr_range.suggest(lrs, 3 + lrs * 50, train)
    assert rising["suggested_max_lr"] == lrs[0] and "smaller --min_lr" in rising["notes"][-1]
    np.testing.assert_allclose(lr_range.smooth(valley, 9),
                               pd.Series(valley).rolling(9, center=True, min_periods=1).mean(), rtol=1e-12)


@pytest.mark.parametrize("kwargs,message", [
    (dict(min_lr=1e-2, max_lr=1e-3), "0 < min_lr < max_lr"),
    (dict(steps=1), "at least 2 steps"),
    (dict(mode="cubic"), "mode must be one of"),
    (dict(window=4), "odd number"),
    (dict(eval_fraction=0.0), r"fraction must be in \(0, 1\]"),
])
def test_bad_settings_fail_before_any_work(cache_dir, tmp_path, kwargs, message, monkeypatch):
    monkeypatch.setattr(pretrain, "prepare_data", lambda *a: pytest.fail("data prepared before the check"))
    with pytest.raises(ValueError, match=message):
        lr_range.run(tiny_config(cache_dir), str(tmp_path / "w"), **kwargs)


def _tiny_flags(cache_dir):
    """--config.KEY=VALUE flags that make configs/tiny.py tiny enough for a test."""
    return [f"--config.{k}={v}" for k, v in {
        "model.hidden_size": 32, "model.num_hidden_layers": 1, "model.num_attention_heads": 2,
        "model.intermediate_size": 64, "model.max_position_embeddings": 32, "train.seq_len": 32,
        "train.global_batch_size": 8, "data.max_documents": 400, "data_cache_dir": cache_dir,
        "tokenizer.name": shared_tokenizer(cache_dir)}.items()]


@pytest.mark.slow
def test_the_script_runs_and_prints_its_suggestion(cache_dir, tmp_path):
    """The script itself, in a child process: its absl app and flags, its output and files."""
    script = os.path.join(ROOT, "scripts", "lr_range_test.py")
    ok = subprocess.run([sys.executable, script, "--config", os.path.join(ROOT, "configs", "tiny.py"),
                         *_tiny_flags(cache_dir), "--steps", "4", "--workdir", str(tmp_path / "w")],
                        env=subprocess_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "suggested max_lr:" in ok.stdout and "rule: the learning rate at the minimum" in ok.stdout
    assert len(read_csv(tmp_path / "w" / "lr_range.csv")) == 4


@pytest.mark.parametrize("args,message,status", [
    (["--config", "configs/no_such.py"], "no such file", 2),
    (["--config", "configs/tiny.py", "--config.train.no_such_key=1"], "unknown config key 'train.no_", 2),
    (["--config", "configs/tiny.py", "--mode", "cubic"], "--mode", 2),
    (["--config", "configs/tiny.py", "--min_lr", "1", "--max_lr", "0.1", "TINY"], "0 < min_lr < max_lr", 1),
])
def test_bad_input_is_one_line(cache_dir, tmp_path, monkeypatch, capsys, args, message, status):
    """scripts/lr_range_test.py's command line in this process: the script's own flags, its parse
    (cli.parse_flags: exit status 2) and its run (cli.run: exit status 1), from the repository root."""
    _, values = script_flags(os.path.join(ROOT, "scripts", "lr_range_test.py"), monkeypatch)
    monkeypatch.chdir(ROOT)
    argv = ["lr_range_test.py", *[a for arg in args for a in (_tiny_flags(cache_dir) if arg == "TINY" else [arg])],
            "--workdir", str(tmp_path / "bad")]

    def job():  # scripts/lr_range_test.py's parse, then its main's run
        pretrain_config.parse_command_line(argv, flag_values=values)
        cli.run(lambda: lr_range.run(values.config, values.workdir, min_lr=values.min_lr, max_lr=values.max_lr,
                                     steps=values.steps, mode=values.mode, eval_fraction=values.eval_fraction,
                                     window=values.smoothing_window))

    code, line = stops_with_one_line(job, monkeypatch, capsys)
    assert code == status, (args, line)
    assert message in line
