"""Faults injected into pretraining runs: what the user sees and what is kept.

Each test injects one fault (a damaged checkpoint, an error after the last step, a mismatched teacher
vocabulary, a full or read-only disk, a killed peer, ...) and asserts the promise: the message, the exit
status, the checkpoint that survives, a resumed run equal to an uninterrupted one.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT, losses, sigterm_after_step, subprocess_env, tiny_config, tiny_tokenizer, tiny_tokenizer_dir
from jax_bert import data
from jax_bert.train import checkpoint
from jax_bert.train import loop as pretrain
from jax_bert.train.logs import read_jsonl

HELPER = os.path.join(ROOT, "tests", "helpers.py")
PRETRAIN = os.path.join(ROOT, "scripts", "pretrain.py")


@pytest.fixture
def straight(reference_run):
    """The session's uninterrupted 8-step run (checkpoints at 4 and 8): the reference."""
    return reference_run[0]


def _checkpoints(workdir):
    return os.path.join(workdir, "checkpoints")


def _tmp_folders(workdir):
    return glob.glob(os.path.join(_checkpoints(workdir), f"*{checkpoint.TMP_MARKER}*"))


# ------------------------------------------------------------------ 2: an error after the last step


def test_an_error_after_the_last_step_keeps_the_final_checkpoint(cache_dir, tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")

    def broken_eval(*args, **kwargs):
        raise RuntimeError("injected: the final evaluation fails")

    with monkeypatch.context() as m:
        m.setattr(pretrain, "evaluate", broken_eval)
        with pytest.raises(RuntimeError, match="injected"):
            pretrain.run(tiny_config(cache_dir), workdir)
    assert checkpoint.latest_step(_checkpoints(workdir)) == 8  # committed although the eval raised
    assert not _tmp_folders(workdir)
    again = pretrain.run(tiny_config(cache_dir), workdir)  # resumes at 8: nothing left to train
    assert again["status"] == "finished" and again["step"] == 8 and "last_train" not in again


@pytest.mark.parametrize("key,value,message", [
    ("train.eval_batch_size", 0, "train.eval_batch_size must be an integer >= 1, got 0"),
    ("train.log_every", 0, "train.log_every must be an integer >= 1"),
    ("train.checkpoint_every", -1, "train.checkpoint_every must be"),
    ("masking.mlm_probability", 1.5, "masking.mlm_probability must be in"),
    ("distill.temperature", 0.0, "distill.temperature must be > 0"),
    ("mesh.data", 0, "mesh.data must be"),
    ("optim.schedule", "cosine", "schedule must be one of"),
    ("model.hidden_dropout_prob", 1.0, "model.hidden_dropout_prob must be in"),
])
def test_bad_config_values_fail_before_any_work(cache_dir, tmp_path, key, value, message):
    config = tiny_config(cache_dir)
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=message):
        pretrain.run(config, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")  # refused before the work directory, data or compilation


def test_sparsity_rules_are_checked_on_the_model_shapes_before_the_data(cache_dir, tmp_path, monkeypatch):
    config = tiny_config(cache_dir)
    config.model.vocab_size = 600
    config.sparsity.update(enabled=True, include=(r"^no/such/param$",))
    monkeypatch.setattr(pretrain, "prepare_data", lambda *a: pytest.fail("the data was prepared"))
    with pytest.raises(ValueError, match="no/such/param"):
        pretrain.run(config, str(tmp_path / "w"))


# ------------------------------------------------------------------ 3: damaged checkpoints


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


@pytest.mark.parametrize("kind", ["truncated file", "flipped bytes", "broken data_position", "removed state folder"])
def test_a_damaged_newest_checkpoint_is_named_and_the_run_resumes_from_the_previous_one(
        straight, cache_dir, tmp_path, kind, caplog):
    workdir = str(tmp_path / "run")
    shutil.copytree(straight, workdir)
    _damage(os.path.join(_checkpoints(workdir), "8"), kind)
    caplog.set_level("WARNING", logger="jax_bert")
    result = pretrain.run(tiny_config(cache_dir), workdir)
    warnings = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(warnings) == 1 and "checkpoint 8 in" in warnings[0] and "8.damaged" in warnings[0], warnings
    assert result["status"] == "finished" and result["step"] == 8
    assert os.path.isdir(os.path.join(_checkpoints(workdir), "8.damaged"))  # kept for a post-mortem
    # Resumed from 4: steps 5..8 again, bitwise as in the uninterrupted run, each logged once.
    rows = [r["step"] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl")) if "train/loss" in r]
    assert rows == sorted(set(rows))
    assert losses(workdir) == losses(straight)
    a = checkpoint.restore_params_only(_checkpoints(workdir), 8)
    b = checkpoint.restore_params_only(_checkpoints(straight), 8)
    np.testing.assert_array_equal(a["bert"]["embeddings"]["word_embeddings"]["embedding"],
                                  b["bert"]["embeddings"]["word_embeddings"]["embedding"])
    caplog.clear()
    pretrain.run(tiny_config(cache_dir), workdir)  # never again: the new checkpoint 8 is intact
    assert not [r for r in caplog.records if "is damaged" in r.getMessage()]


def test_every_checkpoint_damaged_is_one_error_then_a_fresh_start(straight, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(straight, workdir)
    for step in ("4", "8"):
        _damage(os.path.join(_checkpoints(workdir), step), "flipped bytes")
    with pytest.raises(checkpoint.CheckpointDamaged, match="and so is every older one.*rerun to start from step 0"):
        pretrain.run(tiny_config(cache_dir), workdir)
    assert checkpoint.latest_step(_checkpoints(workdir)) is None
    assert pretrain.run(tiny_config(cache_dir), workdir)["status"] == "finished"  # no loop: a fresh run
    assert losses(workdir) == losses(straight)


def test_a_checkpoint_of_another_model_is_not_damage(straight, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(straight, workdir)
    config = tiny_config(cache_dir)
    config.model.intermediate_size = 48
    with pytest.raises(ValueError, match=r"holds another model or optimizer \(.*intermediate.*\); resume with the "
                                         r"config it was written with"):
        pretrain.run(config, workdir)
    assert sorted(os.listdir(_checkpoints(workdir))) == ["4", "8"]  # nothing set aside


def test_a_nan_before_any_checkpoint_does_not_claim_one(cache_dir, tmp_path):
    config = tiny_config(cache_dir)
    config.optim.update(learning_rate=1e30)
    with pytest.raises(pretrain.TrainingDiverged, match="No checkpoint was saved yet"):
        pretrain.run(config, str(tmp_path / "nan"))


# ------------------------------------------------------------------ 1: the teacher's vocabulary


def _hf_teacher(path, tokenizer):
    """A random BERT with an MLM head and `tokenizer`, as a Hugging Face directory."""
    import transformers

    transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=32)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def other_tokenizer(tmp_path_factory, cache_dir):
    """A vocabulary of the same size as the tests' shared one, trained on other documents."""
    from jax_bert.data import corpus

    workdir = str(tmp_path_factory.mktemp("other_vocab"))
    tok = data.get_tokenizer(None, workdir=workdir, documents=corpus.offline_documents()[400:800], vocab_size=600)
    assert len(tok) == len(tiny_tokenizer(cache_dir))
    return tok


def test_a_teacher_with_another_vocabulary_of_the_same_size_is_refused(cache_dir, tmp_path, other_tokenizer):
    config = tiny_config(cache_dir, steps=2)
    tiny_tokenizer(cache_dir)
    config.tokenizer.name = tiny_tokenizer_dir(cache_dir)  # the student's own vocabulary, named
    config.distill.teachers = (_hf_teacher(tmp_path / "teacher", other_tokenizer),)
    with pytest.raises(ValueError, match=r"tokenize differently: \d+ tokens only in the teacher's \(.*\); \d+ only "
                                         r"in the student's .*leave tokenizer.name empty"):
        pretrain.run(config, str(tmp_path / "kd"))
    assert not os.path.exists(tmp_path / "kd" / "checkpoints")


def test_distilling_without_a_tokenizer_takes_the_teachers(cache_dir, tmp_path, other_tokenizer):
    config = tiny_config(cache_dir, steps=2)  # no tokenizer.name
    config.distill.teachers = (_hf_teacher(tmp_path / "teacher", other_tokenizer),)
    pretrain.run(config, str(tmp_path / "kd"))
    used = data.get_tokenizer(str(tmp_path / "kd" / "tokenizer"))
    assert used.get_vocab() == other_tokenizer.get_vocab()


# ------------------------------------------------------------------ 4: the same command, the same run


def test_vocabulary_training_is_the_same_in_every_process(tmp_path):
    """Two interpreters with different hash seeds (the library's trainer differed between processes)."""
    code = ("import hashlib, sys; from jax_bert.data import corpus, tokenizer; "
            "v = tokenizer.train_wordpiece_vocab(corpus.offline_documents()[:1500], 2000); "
            "print(len(v), hashlib.sha256('\\n'.join(v).encode()).hexdigest())")
    outs = []
    for seed in ("1", "2"):
        env = dict(subprocess_env(1), PYTHONHASHSEED=seed)
        outs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   timeout=300, check=True).stdout)
    assert outs[0] == outs[1] and outs[0].startswith("2000 ")


def test_two_fresh_work_directories_give_bitwise_the_same_losses(tmp_path):
    """Each run trains its own vocabulary (tiny_config names none): same files, same losses, bit for bit."""
    runs = []
    for name in ("a", "b"):
        config = tiny_config(str(tmp_path / f"cache_{name}"), steps=4)  # fresh data caches too
        pretrain.run(config, str(tmp_path / name))
        runs.append(str(tmp_path / name))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        assert open(os.path.join(runs[0], "tokenizer", f), "rb").read() == open(
            os.path.join(runs[1], "tokenizer", f), "rb").read()
    assert losses(runs[0]) == losses(runs[1]) and len(losses(runs[0])) == 4


# ------------------------------------------------------------------ 7: files follow the umask


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_exported_files_follow_the_umask(cache_dir, tmp_path, umask):
    previous = os.umask(umask)
    try:
        config = tiny_config(cache_dir, steps=1, export_hf=True)  # its vocabulary is trained in tokenizer/
        pretrain.run(config, str(tmp_path / "run"))
    finally:
        os.umask(previous)
    for sub in ("hf", "tokenizer"):
        root = tmp_path / "run" / sub
        assert (os.stat(root).st_mode & 0o777) == 0o777 & ~umask, sub
        for path in root.iterdir():
            assert (os.stat(path).st_mode & 0o777) == 0o666 & ~umask, path
    assert (os.stat(tmp_path / "run" / "eval_results.json").st_mode & 0o777) == 0o666 & ~umask


# ------------------------------------------------------------------ 9: what the user sees


def test_first_step_evaluations_and_final_sparsity_are_shown(cache_dir, tmp_path, caplog):
    caplog.set_level("INFO", logger="jax_bert")
    config = tiny_config(cache_dir, steps=6, log_every=4, eval_every=3)
    config.sparsity.update(enabled=True, overall=0.6)
    config.sparsity.rigl.update(enabled=True, update_freq=2, start=2)
    pretrain.run(config, str(tmp_path / "run"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    rows = read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))
    assert [r["step"] for r in rows if "train/loss" in r] == [1, 4, 6]  # the first step too
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


def test_resume_writes_each_row_once_and_drops_a_cut_line(straight, cache_dir, tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    with monkeypatch.context() as m:
        sigterm_after_step(m, 6)  # checkpoint at 4 (policy) and at 6 (the signal)
        pretrain.run(tiny_config(cache_dir), workdir)
    shutil.rmtree(os.path.join(_checkpoints(workdir), "6"))  # as if killed before that save: resume at 4
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 7, "train/lo')  # a line cut by kill -9
    pretrain.run(tiny_config(cache_dir), workdir)
    rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    keys = [(r["step"], tuple(sorted(r))) for r in rows]
    assert len(keys) == len(set(keys)), keys
    assert [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r] == sorted(losses(straight).items())


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


# ------------------------------------------------------------------ faults of our own


def test_a_second_run_on_the_same_work_directory_is_refused(cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    with pretrain._workdir_lock(workdir, enabled=True):
        with pytest.raises(ValueError, match=rf"{workdir} is in use by a run that is still going \(pid {os.getpid()}"):
            pretrain.run(tiny_config(cache_dir), workdir)
    assert not os.path.exists(os.path.join(workdir, "checkpoints"))


def test_a_damaged_data_cache_is_rebuilt(cache_dir, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    config = tiny_config(cache, steps=2)
    pretrain.run(config, str(tmp_path / "a"))
    for npy in glob.glob(os.path.join(cache, "blocks-*.npy")):
        with open(npy, "r+b") as f:
            f.truncate(os.path.getsize(npy) // 3)
    caplog.set_level("WARNING", logger="jax_bert")
    pretrain.run(config, str(tmp_path / "b"))
    assert sum("is damaged" in r.getMessage() and "building it again" in r.getMessage() for r in caplog.records) == 2
    assert losses(str(tmp_path / "a")) == losses(str(tmp_path / "b"))


def test_a_damaged_cached_tokenizer_is_named(cache_dir, tmp_path):
    config = tiny_config(cache_dir, steps=1)
    workdir = tmp_path / "run"
    pretrain.run(config, str(workdir))
    saved = workdir / "tokenizer" / "tokenizer.json"
    saved.write_text(saved.read_text().replace('"[MASK]": 4', '"[MASK]": 5', 1))  # a hand edit
    with pytest.raises(ValueError, match=r"tokenizer cached in .* is damaged \(tokenizer.json differs.*delete that"):
        pretrain.run(config, str(workdir))


def test_a_damaged_teacher_checkpoint_is_named(cache_dir, tmp_path):
    teacher = str(tmp_path / "teacher")
    pretrain.run(tiny_config(cache_dir, steps=4, checkpoint_every=4), teacher)  # no hf/: read from checkpoints
    _damage(os.path.join(_checkpoints(teacher), "4"), "flipped bytes in every data file")
    config = tiny_config(cache_dir, steps=2)
    config.distill.teachers = (teacher,)
    with pytest.raises(checkpoint.CheckpointDamaged, match=r"checkpoint 4 in .*teacher/checkpoints is damaged: \w"):
        pretrain.run(config, str(tmp_path / "kd"))


# ------------------------------------------------------------------ the command line (subprocesses)


def _pretrain(*args, timeout=180, cwd=None):
    return subprocess.run([sys.executable, PRETRAIN, *args], env=subprocess_env(1), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def _one_error_line(out):
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr and "Event loop is closed" not in out.stderr, out.stderr[-3000:]
    assert lines and lines[-1].startswith("error: "), out.stderr[-3000:]
    assert sum(line.startswith("error: ") for line in lines) == 1, out.stderr[-3000:]
    return lines[-1]


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


# ------------------------------------------------------------------ 5 and extra: a full disk, a read-only disk


def _mount_tmpfs(path, options):
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path):
    path = tmp_path / "disk"
    _mount_tmpfs(path, "size=16m")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


# The run in a child process, optionally without the free-space check before a save, so that the disk
# fills up while orbax writes (the other way a full disk shows).
_UNCHECKED = ("import sys; sys.path.insert(0, {tests!r}); from jax_bert.train import checkpoint; "
              "checkpoint._check_free_space = lambda *a: None; import helpers; "
              "sys.argv = ['helpers.py', *sys.argv[1:]]; helpers.run_in_subprocess_main()")


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before the save", "during the save"])
def test_a_full_disk_is_one_line_and_keeps_the_checkpoints(straight, cache_dir, small_disk, when):
    workdir = str(small_disk / "run")
    shutil.copytree(straight, workdir, ignore=shutil.ignore_patterns("8", "eval_results.json"))  # resume at 4
    before = sorted(os.listdir(_checkpoints(workdir)))
    stat = os.statvfs(small_disk)
    with open(small_disk / "filler", "wb") as f:  # leave ~100 KB: the logs fit, a checkpoint does not
        f.write(b"\0" * max(stat.f_bavail * stat.f_frsize - 100_000, 0))
    entry = [HELPER] if when == "before the save" else ["-c", _UNCHECKED.format(tests=os.path.join(ROOT, "tests"))]
    out = subprocess.run([sys.executable, *entry, workdir, cache_dir, "{}"], env=subprocess_env(1),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    line = _one_error_line(out)
    assert "No space left on device" in line and "free space on that disk" in line, line
    assert sorted(os.listdir(_checkpoints(workdir))) == before and not _tmp_folders(workdir)
    checkpoint.restore_params_only(_checkpoints(workdir), 4)  # intact (verified against its checksums)
    os.remove(small_disk / "filler")
    out = subprocess.run([sys.executable, HELPER, workdir, cache_dir, "{}"], env=subprocess_env(1),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert losses(workdir) == losses(straight)


@pytest.mark.slow
def test_a_read_only_work_directory_is_one_line(cache_dir, tmp_path):
    path = tmp_path / "readonly"
    _mount_tmpfs(path, "ro,size=1m")
    try:
        out = subprocess.run([sys.executable, HELPER, str(path / "run"), cache_dir, "{}"], env=subprocess_env(1),
                             capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
    assert out.returncode == 1
    assert "Read-only file system" in _one_error_line(out)


# ------------------------------------------------------------------ 8: a peer process dies


@pytest.mark.slow
def test_a_killed_peer_stops_the_survivor_within_seconds(cache_dir, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = str(tmp_path / "two")
    procs = []
    for pid in range(2):
        overrides = {"distributed.initialize": "yes", "distributed.coordinator_address": f"127.0.0.1:{port}",
                     "distributed.num_processes": 2, "distributed.process_id": pid, "train.steps": 10_000,
                     "train.checkpoint_every": 2, "train.log_every": 50}
        procs.append(subprocess.Popen([sys.executable, HELPER, workdir, cache_dir, json.dumps(overrides)],
                                      env=subprocess_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    deadline = time.time() + 240
    while checkpoint.latest_step(_checkpoints(workdir)) is None and time.time() < deadline:
        assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-3000:]
        time.sleep(0.5)
    assert checkpoint.latest_step(_checkpoints(workdir)) is not None, "no checkpoint within 4 minutes"
    procs[1].send_signal(signal.SIGKILL)
    killed = time.time()
    _, err = procs[0].communicate(timeout=120)
    waited = time.time() - killed
    procs[1].wait()
    if procs[0].returncode == -signal.SIGABRT:
        # JAX's coordination client can learn of the lost process first and abort from its own thread,
        # with its own message, before the failed collective reaches Python (a race this JAX offers no
        # hook for: its client's missed_heartbeat_callback cannot be given a Python function).
        assert "another task died" in err, err[-3000:]
    else:
        assert procs[0].returncode == 1, err[-3000:]
        line = _one_error_line(subprocess.CompletedProcess([], 1, "", err))
        assert "process 1 of this 2-process run is gone" in line and "process 0 stopped too" in line
    assert waited < 30, waited
    step = checkpoint.latest_step(_checkpoints(workdir))
    params = checkpoint.restore_params_only(_checkpoints(workdir), step)  # intact: verified against checksums
    assert all(np.isfinite(x).all() for x in __import__("jax").tree.leaves(params))


@pytest.mark.slow
def test_checkpoint_benchmark_runs_on_tiny_shapes():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "benchmark_checkpoint.py"), "--preset", "tiny",
                          "--repeats", "1"], env=subprocess_env(1), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "checksums / save:" in out.stdout and "verified restore" in out.stdout
