"""Faults a GLUE user meets, on the shared offline example (conftest.glue_example): a results directory
reused with another checkpoint, a run killed or interrupted and rerun, bad labels and bytes in the data,
a pretraining work directory that has not exported its model yet."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import pytest

from glue import config as glue_config
from glue import run
from helpers import ROOT, one_error_line, subprocess_env
from jax_bert.finetune import identity

SCRIPT = f"{ROOT}/scripts/glue.py"

QUICK = {"learning_rate": 3e-3, "batch_size": 16, "max_length": 32, "eval_batch_size": 32,
         "tasks": {"sst2": {"epochs": 1}, "mrpc": {"epochs": 1}, "cola": {"epochs": 1}}}


def quick_config(**changes):
    return glue_config.with_overrides(changes, glue_config.with_overrides(QUICK))


def other_model(glue_example, folder):
    """A copy of the example's checkpoint with one weight changed in its lowest mantissa byte: another model
    that loads like the first."""
    shutil.copytree(glue_example["ckpt"], folder)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4] ^= 1
    weights.write_bytes(bytes(data))
    return folder


def glue(example, out, checkpoint=None, **kwargs):
    kwargs = {"tasks": "sst2", "seeds": 1, "progress": False} | kwargs
    return run.main(kwargs.pop("config", quick_config()), checkpoint=str(checkpoint or example["ckpt"]),
                    data_dir=str(example["data_dir"]), out=str(out), **kwargs)


def test_out_of_another_checkpoint_is_refused_and_fresh_moves_it_aside(glue_example, tmp_path, capsys):
    out = tmp_path / "out"
    assert glue(glue_example, out, tasks="sst2,mrpc") == 0
    before = (out / "results.json").read_bytes()
    b = other_model(glue_example, tmp_path / "model_b")
    capsys.readouterr()

    assert glue(glue_example, out, checkpoint=b) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert str(glue_example["ckpt"]) in err and str(b) in err and "--fresh" in err
    assert (out / "results.json").read_bytes() == before  # nothing of model B mixed in

    assert glue(glue_example, out, checkpoint=b, fresh=True) == 0
    assert f"moved to {tmp_path / 'out.replaced-1'}" in capsys.readouterr().err
    assert (tmp_path / "out.replaced-1" / "results.json").read_bytes() == before
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"sst2"}  # model A's mrpc is not averaged into model B's row
    assert json.loads((out / "checkpoint.json").read_text())["path"] == str(b)

    # The same model (by its bytes) from another path goes on into the same directory.
    copy = shutil.copytree(b, tmp_path / "copy_of_b")
    assert glue(glue_example, out, checkpoint=copy) == 0


# ------------------------------------------------------------------ a killed or interrupted run, rerun

RESUME = {"tasks": {"mrpc": {"epochs": 6}}}  # mrpc long enough (~100 steps) to be interrupted in


def outputs(out):
    """What a finished job leaves that must not depend on interruptions: results, tables, predictions."""
    keep = ["results.json", "results.md", "results.csv", "finished.json", "checkpoint.json"]
    found = {name: (out / name).read_text() for name in keep}
    found |= {str(p.relative_to(out)): p.read_text() for p in sorted((out / "predictions").rglob("*.jsonl"))}
    return found


class Killed(BaseException):
    """Stands for a kill -9: nothing after it runs, no handler sees it."""


def test_a_killed_run_resumes_with_the_same_command(glue_example, tmp_path, monkeypatch):
    config = quick_config()
    reference = tmp_path / "reference"
    assert glue(glue_example, reference, tasks="sst2,mrpc", seeds=2, config=config) == 0

    out = tmp_path / "out"
    real, trained = run.run_task, []

    def killed_in_mrpc(task, *args, **kwargs):
        trained.append(task)
        if task == "mrpc":
            raise Killed
        return real(task, *args, **kwargs)

    monkeypatch.setattr(run, "run_task", killed_in_mrpc)
    with pytest.raises(Killed):
        glue(glue_example, out, tasks="sst2,mrpc", seeds=2, config=config)
    monkeypatch.setattr(run, "run_task", lambda task, *a, **k: trained.append(task) or real(task, *a, **k))
    assert glue(glue_example, out, tasks="sst2,mrpc", seeds=2, config=config) == 0
    assert trained == ["sst2", "mrpc", "mrpc"]  # sst2 kept, not trained again
    assert outputs(out) == outputs(reference)

    # Fewer seeds than finished: kept too; other settings for a task: trained again.
    assert glue(glue_example, out, tasks="sst2", seeds=1, config=config) == 0
    assert trained == ["sst2", "mrpc", "mrpc"]
    assert glue(glue_example, out, tasks="sst2", seeds=1, config=quick_config(learning_rate=1e-3)) == 0
    assert trained[-1] == "sst2" and len(trained) == 4
    # Its seed 1 of the earlier setting is gone: mean ± std are over the runs of one setting.
    assert [r["seed"] for r in json.loads((out / "results.json").read_text())["runs"]["sst2"]] == [0]
    assert sorted(p.name for p in (out / "metrics" / "sst2").iterdir()) == ["seed0.json"]


def start_script(args):
    """scripts/glue.py in a child process (the tests' compilation cache), stderr read line by line."""
    env = subprocess_env()
    env["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir
    return subprocess.Popen([sys.executable, SCRIPT, *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(predicate, proc, seconds=300):
    deadline = time.time() + seconds
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_ctrl_c_and_sigterm_stop_in_one_line_and_the_rerun_resumes(glue_example, tmp_path):
    """SIGINT while mrpc trains (sst2 finished), then SIGTERM as the rerun starts mrpc (loading, compiling):
    each one line, exit 130 / 143, sst2 kept; the third run finishes what an uninterrupted run gives."""
    out = tmp_path / "out"
    args = ["--checkpoint", str(glue_example["ckpt"]), "--data_dir", str(glue_example["data_dir"]),
            "--tasks", "sst2,mrpc", "--seeds", "2", "--out", str(out), "--no_progress",
            "--config.learning_rate=3e-3", "--config.batch_size=16", "--config.max_length=32",
            "--config.eval_batch_size=32", "--config.tasks.sst2.epochs=1", "--config.tasks.mrpc.epochs=6"]
    finished, results = out / "finished.json", out / "results.json"

    proc = start_script(args)
    # As soon as sst2's first record is written, perhaps while the rest of its records are: they complete first.
    wait_for(lambda: results.is_file() and "sst2" in json.loads(results.read_text())["runs"], proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    line = one_error_line(err)
    assert line == (f"error: stopped by SIGINT; finished tasks (sst2) are kept in {out}; run the same command "
                    "to resume (they are not trained again)"), err[-3000:]
    assert "Fatal Python error" not in err and list(json.loads(finished.read_text())) == ["sst2"]
    assert not list(out.rglob(".tmp-*"))  # no half-written file left behind

    proc = start_script(args)
    for text in proc.stderr:
        if text.startswith("sst2: finished earlier"):
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-3000:]
    assert one_error_line(err).startswith("error: stopped by SIGTERM; finished tasks (sst2) are kept in")
    assert "Fatal Python error" not in err and list(json.loads(finished.read_text())) == ["sst2"]

    config = quick_config(**RESUME)
    assert glue(glue_example, out, tasks="sst2,mrpc", seeds=2, config=config) == 0
    reference = tmp_path / "reference"
    assert glue(glue_example, reference, tasks="sst2,mrpc", seeds=2, config=config) == 0
    assert outputs(out) == outputs(reference)


# ------------------------------------------------------------------ bad data, an unexported work directory

def test_a_bad_label_fails_its_task_naming_file_and_row(glue_example, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data_dir = shutil.copytree(glue_example["data_dir"], tmp_path / "data")
    path = data_dir / "sst2" / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    labels = table.column("label").to_pylist()
    labels[3] = 7
    pq.write_table(table.set_column(table.column_names.index("label"), "label", pa.array(labels)), path)
    status = run.main(quick_config(), checkpoint=str(glue_example["ckpt"]), data_dir=str(data_dir),
                      tasks="sst2", seeds=1, out=str(tmp_path / "out"), progress=False)
    err = capsys.readouterr().err
    assert status == 1
    assert f"error: sst2 failed: GlueDataError: {path}, row 3 (idx 3): sst2 label 7 is outside its label set" in err


def test_an_unexported_work_directory_is_read_from_its_newest_intact_checkpoint(reference_run, tmp_path, capsys):
    work = shutil.copytree(reference_run[0], tmp_path / "work", ignore=shutil.ignore_patterns(".lock"))
    exported = run.load_model(str(work))  # its hf/ export, written at the end of the run (step 8)
    shutil.rmtree(work / "hf")
    latest = run.load_model(str(work))
    err = capsys.readouterr().err
    assert f"{work}: no hf/ export yet (the pretraining run has not finished): fine-tuning its newest intact " \
           "checkpoint, step 8" in err
    assert latest.identity == exported.identity | {"step": 8}  # the same bytes as its later export
    assert latest.config == exported.config and len(latest.tokenizer) == len(exported.tokenizer)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), latest.params, exported.params))

    shutil.rmtree(work / "checkpoints" / "8" / "state")  # the newest checkpoint damaged
    older = run.load_model(str(work))
    err = capsys.readouterr().err
    assert "fine-tuning its newest intact checkpoint, step 4 (damaged, skipped: step 8: " in err
    assert older.identity["step"] == 4 and older.identity["fingerprint"] != latest.identity["fingerprint"]
    assert (work / "checkpoints" / "8").is_dir()  # named, not moved: the work directory is its run's

    shutil.rmtree(work / "checkpoints" / "4")
    shutil.rmtree(work / "checkpoints" / "8")
    status = run.main(quick_config(), checkpoint=str(work), tasks="sst2", out=str(tmp_path / "out"))
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert f"error: {work} has no checkpoint yet: its pretraining run stopped before the first save" in err


def test_the_job_ends_saying_what_it_wrote_where(glue_example, tmp_path, capsys):
    out = tmp_path / "out"
    assert glue(glue_example, out, test_predictions=True) == 0
    err = capsys.readouterr().err
    summary = err[err.index(f"wrote {out}:"):].splitlines()
    assert summary[1].split() == ["results.md,", "results.csv", "the", "tables", "above", "(best", "seed", "per",
                                  "task;", "mean", "±", "std", "over", "seeds)"]
    assert any(line.split()[:2] == ["metrics/,", "predictions/"] and "(sst2)" in line for line in summary)
    assert any(line.split()[0] == "submission/" for line in summary)
    for line in summary[1:]:  # every file or folder it names is there
        for name in line.split("  ")[1].replace(",", " ").split():
            assert (out / name).exists(), name


# ------------------------------------------------------------------ the results directory itself

def test_an_out_in_use_by_another_run_is_refused_naming_it(glue_example, tmp_path, capsys):
    out = tmp_path / "out"
    first = identity.OneRunAtATime(out)
    first.acquire()
    try:
        assert glue(glue_example, out) == 2
    finally:
        first.release()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"error: {out} is in use by a fine-tuning run that is still going (pid {os.getpid()} on " in err
    assert not (out / "results.json").exists()


def test_an_out_that_is_a_file_or_holds_a_damaged_results_file_is_one_line(glue_example, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert glue(glue_example, tmp_path / "file") == 2
    err = capsys.readouterr().err
    assert err == f"error: --out {tmp_path / 'file'} is a file, not a directory; give a directory for the results.\n"
    out = tmp_path / "out"
    identity.claim(out, run.load_model(str(glue_example["ckpt"])).identity, has_results=False)
    (out / "results.json").write_text('{"format_version": 1, "runs": {')  # cut short
    assert glue(glue_example, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {out / 'results.json'} is damaged (") and "--fresh" in err


def test_a_stop_waits_for_a_compilation_cache_write(tmp_path, monkeypatch):
    """JAX writes its cache entries in place: a stop on a signal must not cut one short (cli.exit_on_signals
    makes each write hold files.WRITING, which the stop takes before it exits)."""
    from jax._src import lru_cache

    from jax_bert import cli, files

    monkeypatch.setattr(lru_cache.LRUCache, "put", lru_cache.LRUCache.put)  # restored after the test
    held = []
    monkeypatch.setattr(lru_cache.pathlib.Path, "write_bytes",
                        lambda self, data: held.append(files.WRITING._is_owned()), raising=False)
    cli._whole_compilation_cache_entries()
    lru_cache.LRUCache(str(tmp_path), max_size=-1).put("key", b"bytes")
    assert held == [True]
