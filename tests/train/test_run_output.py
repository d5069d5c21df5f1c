"""What a pretraining run shows and writes for the user to read: the first step, the evaluations and the
final sparsity in its log (under the same sparsity definition as the GLUE side), TensorBoard events
flushed at every log step, and scripts/plot.py's PNG curves of a run (with one error line for a directory
that holds no run).

The plot script runs for real in a child process, on the session's 8-step reference run; the rest runs
in this process.
"""
import glob
import os
import subprocess
import sys

import pytest

from helpers import ROOT, subprocess_env, tiny_config
from jax_bert.train import loop as pretrain
from jax_bert.train import sparse_config
from jax_bert.train.logs import read_jsonl


@pytest.fixture
def straight(reference_run):
    """The session's uninterrupted 8-step run (checkpoints at 4 and 8): the reference."""
    return reference_run[0]


def test_first_step_evaluations_and_final_sparsity_are_shown(cache_dir, tmp_path, caplog):
    caplog.set_level("INFO", logger="jax_bert")
    config = tiny_config(cache_dir, steps=6, log_every=4, eval_every=3)
    config.sparsity.update(enabled=True, overall=0.6)
    config.sparsity.rigl.update(enabled=True, update_freq=2, start=2)
    pretrain.run(config, str(tmp_path / "run"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    rows = read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))
    # the first step too, every log_every, the last, and around each RigL update (updates at 2 and 4: all 6)
    around = sparse_config.rigl_logged_steps(config.sparsity, 6)
    assert around == {1, 2, 3, 4, 5, 6}
    assert [r["step"] for r in rows if "train/loss" in r] == sorted({1, 4, 6} | around)
    assert "eval at step 3: loss" in text and "eval at step 6: loss" in text
    assert "sparsity at the end (step 6)" in text and "overall" in text
    from jax_bert.model import body

    final = [r for r in rows if "sparsity/body_sparsity_percent" in r and r["step"] == 6]
    assert len(final) == 1
    assert f"{body.SPARSITY_NAME} at the end (step 6): {final[0]['sparsity/body_sparsity_percent']:.2f}%" in text


def test_glue_names_the_same_sparsity_definition():
    from jax_bert.finetune import engine
    from jax_bert.model import body

    assert engine.body_sparsity is body.body_sparsity  # what each fine-tuned seed reports
    run = open(os.path.join(ROOT, "glue", "run.py")).read()
    assert "body.SPARSITY_NAME" in run and "body.body_sparsity(" in run  # what a GLUE run prints


def _tfrecords(path):
    """The records of a tensorboard event file (TFRecord framing: length, crc, data, crc)."""
    import struct

    out, raw = [], open(path, "rb").read()
    i = 0
    while i + 12 <= len(raw):
        (n,) = struct.unpack("<Q", raw[i:i + 8])
        out.append(raw[i + 12:i + 12 + n])
        i += 12 + n + 4
    return out


def test_tensorboard_is_flushed_at_every_log_step(tmp_path):
    from jax_bert.train.logs import MetricsWriter

    writer = MetricsWriter(str(tmp_path))
    writer.scalars(1, {"loss": 9.0}, prefix="train/")
    events = glob.glob(str(tmp_path / "tensorboard" / "events.*"))
    assert len(events) == 1 and any(b"train/loss" in r for r in _tfrecords(events[0]))  # before close
    writer.close()


def test_plot_script_writes_png_curves(straight, tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "plot.py"), straight, "--out",
                          str(tmp_path)], env=subprocess_env(1), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("loss.png", "accuracy.png", "learning_rate.png"):
        png = open(tmp_path / name, "rb").read()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000, name
    missing = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "plot.py"), str(tmp_path / "nowhere")],
                             env=subprocess_env(1), capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and missing.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'} has no metrics.jsonl: give the work directory of a pretraining run."]
