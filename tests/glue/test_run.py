"""The GLUE job (glue/run.py) on the shared offline GLUE example (conftest.glue_example: synthetic tasks, a
tiny random BERT), its settings (glue/config.py) and its command line (glue/command.py, scripts/glue.py,
--search's flags included).

The command line is read in this process on a FlagValues of its own: a bad one is one line `error: ...`
and exit status 2, from the flags' parsing (glue.command.parse) or from the job's own checks (glue.run.main).
The script itself runs in child processes in two tests only: end to end (and --report_only), and with
one bad command line.
"""
import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from glue import command, data, finetune, metrics, report, run
from glue import config as glue_config
from glue.tasks import get_task
from helpers import ROOT, subprocess_env
from jax_bert.finetune import HParams, engine
from jax_bert.model import body
from jax_bert.train.config import load_config_file

MAX_LEN = 32


def hparams(**changes) -> HParams:
    """glue/config.py's defaults (sst2's epochs), with `changes`."""
    return finetune.task_hparams(glue_config.get_config(), "sst2", **changes)


# The job's settings: as a ConfigDict (glue.run.main) and as the script's flags.
JOB = {"learning_rate": 3e-3, "batch_size": 16, "max_length": MAX_LEN, "eval_batch_size": 32,
       "tasks": {"cola": {"epochs": 8}, "mrpc": {"epochs": 8}}}
CLI_HP = ["--config.learning_rate=3e-3", "--config.batch_size=16", f"--config.max_length={MAX_LEN}",
          "--config.eval_batch_size=32", "--config.tasks.cola.epochs=8",
          "--config.tasks.mrpc.epochs=8", "--no_progress"]
SCRIPT = os.path.join(ROOT, "scripts", "glue.py")


def job_config(**changes):
    return glue_config.with_overrides(changes, glue_config.with_overrides(JOB))


# ------------------------------------------------------------------ the job (glue.run.main)

def check_task_outputs(out, task, seeds_ok, sizes):
    """metrics/, predictions/ and submission/ of a finished task; seeds_ok: the seeds that trained; sizes:
    the example's split sizes."""
    results = json.loads((out / "results.json").read_text())
    for seed in seeds_ok:
        info = json.loads((out / "metrics" / task / f"seed{seed}.json").read_text())
        assert info["scored"] == {"validation": sizes["validation"]}
        lines = (out / "predictions" / task / f"seed{seed}.validation.jsonl").read_text().splitlines()
        assert len(lines) == sizes["validation"]
        rows = [json.loads(x) for x in lines]
        assert sorted(r["idx"] for r in rows) == list(range(sizes["validation"]))
        preds = np.array([r["prediction"] for r in rows])
        labels = np.array([r["label"] for r in rows])
        assert info["metrics"] == pytest.approx(dict(metrics.compute_metrics(task, preds, labels)))
    sub = (out / "submission" / get_task(task).submissions["test"]).read_text().splitlines()
    assert sub[0] == "index\tprediction" and len(sub) == 1 + sizes["test"]
    return results


def test_job_end_to_end(glue_example, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    # Seed 1 diverges (lr x 1e30) in every task: it must be recorded as failed and left out.
    monkeypatch.setattr(run.finetune, "finetune",
                        functools.partial(engine.finetune, lr_scale=[1.0, 1e30]))
    rc = run.main(job_config(), checkpoint=str(glue_example["ckpt"]), data_dir=str(glue_example["data_dir"]),
                  tasks="cola,rte,mrpc", seeds=2, out=str(out), test_predictions=True, progress=False)
    err = capsys.readouterr().err
    assert rc == 1  # rte has no data: that task failed, the others finished
    assert "rte failed" in err and "rte/train-00000-of-00001.parquet" in err
    assert (out / "errors" / "rte.txt").is_file()
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"cola", "mrpc"}
    for task in ("cola", "mrpc"):
        assert [r["status"] for r in results["runs"][task]] == ["ok", "failed"]
        check_task_outputs(out, task, [0], glue_example["sizes"])
    cola_mcc = results["runs"]["cola"][0]["metrics"]["matthews_correlation"]
    assert cola_mcc > 60.0  # the cue-word rule is learned through the job too
    table = (out / "results.md").read_text()
    assert "| checkpoint |" in table and "failed (diverged) runs left out: cola 1, mrpc 1" in table
    assert f"{cola_mcc:.2f}" in table
    assert (out / "results.csv").read_text().startswith("model,average_bert")
    assert results["settings"] == {"keep_masks": True}
    assert f"| {results['extras']['sparsity']:.2f} | kept |" in table
    # The other keep_masks setting into the same --out is refused before any task runs.
    rc = run.main(job_config(keep_masks=False), checkpoint=str(glue_example["ckpt"]), tasks="cola", seeds=2,
                  data_dir=str(glue_example["data_dir"]), out=str(out), progress=False)
    assert rc == 2 and "holds runs fine-tuned with keep_masks=True" in capsys.readouterr().err
    assert results["extras"]["sparsity"] == pytest.approx(
        float(body.body_sparsity(engine.base_params(glue_example["params"]))))
    settings = json.loads((out / "glue_config.json").read_text())["settings"]
    assert settings["cola"] == vars(hparams(learning_rate=3e-3, batch_size=16, epochs=8, eval_batch_size=32)) | {
        "max_length": MAX_LEN, "seeds": 2}

    # report_only: several models in one table.
    other = tmp_path / "other"
    other.mkdir()
    results["model"] = "second_model"
    (other / "results.json").write_text(json.dumps(results))
    rc = run.main(glue_config.get_config(), report_only=True, out=[str(out), str(other)],
                  csv=str(tmp_path / "both.csv"))
    printed = capsys.readouterr().out
    assert rc == 0 and "| checkpoint |" in printed and "| second_model |" in printed
    assert len((tmp_path / "both.csv").read_text().splitlines()) == 3


def test_job_passes_keep_masks_and_length_buckets(glue_example, tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_finetune(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(run.finetune, "finetune", fake_finetune)
    rc = run.main(job_config(keep_masks=False, length_buckets=2), checkpoint=str(glue_example["ckpt"]),
                  tasks="cola", data_dir=str(glue_example["data_dir"]), out=str(tmp_path), progress=False)
    assert rc == 1 and "stop here" in capsys.readouterr().err
    assert seen["use_masks"] is False and seen["length_buckets"] == 2
    assert report.load_results(tmp_path)["settings"] == {"keep_masks": False}
    assert "may regrow" in report.build_report([tmp_path])


def test_work_directory_checkpoint_gives_perplexity(glue_example, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(glue_example["ckpt"], work / "hf")
    (work / "eval_results.json").write_text(json.dumps(
        {"step": 10, "eval_loss": 2.138, "perplexity": 8.482, "eval_blocks": 3}))
    config, params, tokenizer, extras, name = run.load_checkpoint(str(work))
    assert extras == {"eval_loss": 2.138, "perplexity": 8.482} and name == "work"
    assert config == glue_example["config"]


@pytest.mark.parametrize("kwargs, changes, message", [
    ({"tasks": "cola,nope"}, {}, "valid tasks are: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli"),
    ({"seeds": 0}, {}, "--seeds must be >= 1, got 0"),
    ({"data_dir": "/nonexistent/glue"}, {}, "--data_dir /nonexistent/glue is not a directory"),
    ({}, {"seed_loop": "pmap"}, "seed_loop must be one of ('auto', 'vmap', 'map'), got 'pmap'"),
    ({}, {"length_buckets": 0}, "length_buckets must be >= 1, got 0"),
    ({}, {"tasks": {"rte": {"batch_size": 0}}}, "rte: batch_size must be >= 1, got 0"),
    ({}, {"max_length": 4}, "cola: max_length must be >= 8, got 4"),
    ({"out": ["a", "b"]}, {}, "give one --out DIR for fine-tuning"),
])
def test_bad_input_is_one_clear_error(glue_example, capsys, kwargs, changes, message):
    rc = run.main(job_config(**changes), **{"checkpoint": str(glue_example["ckpt"])} | kwargs)
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_checkpoint_without_tokenizer_is_an_error(glue_example, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(glue_example["ckpt"] / f, bare / f)
    rc = run.main(glue_config.get_config(), checkpoint=str(bare), tasks="cola")
    err = capsys.readouterr().err
    assert rc == 2 and "has no tokenizer" in err and str(bare) in err


def test_missing_task_files_are_named(glue_example):
    with pytest.raises(ValueError, match="rte.*(RTE/train.tsv|rte/train-00000-of-00001.parquet)"):
        data.load_task("rte", glue_example["data_dir"])


# ------------------------------------------------------------------ settings (glue/config.py)

CONFIG_FILE = '''from glue.config import get_config as glue_defaults


def get_config():
    c = glue_defaults()
    c.learning_rate = 3e-5
    c.tasks.rte.update(epochs=2, batch_size=8, runs=4)
    return c
'''


def test_config_file_per_task_overrides(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text(CONFIG_FILE)
    config = glue_config.with_overrides({"tasks": {"cola": {"learning_rate": 1e-5}}},
                                        load_config_file(str(path)).get_config())
    glue_config.validate(config)
    hp, max_length, seeds = run.task_settings(config, "rte")
    assert (hp.learning_rate, hp.epochs, hp.batch_size, max_length, seeds) == (
        3e-5, 2, 8, 128, [0, 1, 2, 3])
    hp, _, seeds = run.task_settings(config, "cola", seeds=3)
    assert (hp.learning_rate, hp.epochs, hp.batch_size, hp.weight_decay, seeds) == (
        1e-5, 5, 32, 0.0, [0, 1, 2])
    hp, _, seeds = run.task_settings(glue_config.get_config(), "mrpc")
    assert (hp.learning_rate, hp.epochs, len(seeds)) == (2e-5, 5, 3)


def test_hparams_come_from_the_config_only():
    config = glue_config.get_config()
    hp = finetune.task_hparams(config, "cola")
    assert vars(hp) == {k: config[k] for k in vars(hp) if k != "epochs"} | {"epochs": 5}
    with pytest.raises(TypeError):
        HParams(learning_rate=2e-5)  # no defaults of its own
    with pytest.raises(TypeError, match="no fields"):
        finetune.task_hparams(config, "cola", learning_rat=1e-3)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        finetune.task_hparams(config, "cola", learning_rate=0.0)


def test_config_checks():
    with pytest.raises(ValueError, match="unknown GLUE config key 'tasks.cola.epoch'"):
        glue_config.with_overrides({"tasks": {"cola": {"epoch": 3}}})
    with pytest.raises(ValueError, match="GLUE config key 'learning_rate'"):
        glue_config.with_overrides({"learning_rate": "fast"})
    with pytest.raises(ValueError, match="'tasks' is a group"):
        glue_config.with_overrides({"tasks": 3})
    bare = glue_config.get_config()
    bare.unlock()
    del bare["clip"]
    with pytest.raises(ValueError, match=r"lacks keys \['clip'\]"):
        glue_config.validate(bare)
    bare.clip = 1.0
    bare.extra = 1
    with pytest.raises(ValueError, match=r"unknown GLUE config keys \['extra'\]"):
        glue_config.validate(bare)
    loose = glue_config.get_config().to_dict()
    with pytest.raises(ValueError, match="must be an ml_collections.ConfigDict"):
        glue_config.validate(loose)
    import ml_collections

    untyped = ml_collections.ConfigDict(loose, type_safe=False)
    untyped.tasks.rte.learning_rate = "fast"
    with pytest.raises(ValueError, match="tasks.rte.learning_rate must be float, got 'fast'"):
        glue_config.validate(untyped)
    untyped.tasks.rte.learning_rate = None
    untyped.batch_size = True
    with pytest.raises(ValueError, match="batch_size must be int, got True"):
        glue_config.validate(untyped)
    untyped.batch_size = 32
    glue_config.validate(untyped)


# ------------------------------------------------------------------ the command line, in this process

@pytest.mark.parametrize("args, message", [
    (["--config.tasks.cola.epoch=3"], "unknown config key 'tasks.cola.epoch': tasks.cola has the keys"),
    (["--config.task.cola.epochs=3"], "unknown config key 'task.cola.epochs': the config has the keys"),
    (["--config.learning_rate=fast"], "flag --config.learning_rate=fast: could not convert string to float"),
    (["--config.tasks.cola.batch_size=1.5"], "flag --config.tasks.cola.batch_size=1.5: invalid literal"),
    (["--config", "/nonexistent/cfg.py"], "--config /nonexistent/cfg.py: no such file"),
    (["--config=/nonexistent/cfg.py", "--config.learning_rate=1"], "--config /nonexistent/cfg.py: no such file"),
    (["--config", "FILE_WITHOUT_GET_CONFIG"], "has no attribute 'get_config'"),
])
def test_command_line_errors_are_one_line(tmp_path, monkeypatch, args, message):
    """What scripts/glue.py does with its command line, on a FlagValues of its own."""
    # config_flags loads every config file as the module `config_config`, into the same module
    # object when one is left from an earlier load in this process (a script loads one file).
    monkeypatch.delitem(sys.modules, "config_config", raising=False)
    (tmp_path / "nothing.py").write_text("x = 1\n")
    argv = ["glue.py"] + [str(tmp_path / "nothing.py") if a == "FILE_WITHOUT_GET_CONFIG" else a
                                   for a in args]
    values = flags.FlagValues()
    with pytest.raises(Exception) as caught:
        holder = config_flags.DEFINE_config_file("config", glue_config.__file__, flag_values=values,
                                                 lock_config=True, sys_argv=argv)
        values(argv)
        glue_config.validate(holder.value)
    text = glue_config.command_line_error(caught.value, argv)
    assert message in text and "\n" not in text


def test_command_line_overrides_reach_the_config():
    argv = ["glue.py", "--config.tasks.cola.learning_rate=1e-5", "--config.batch_size=16"]
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", glue_config.__file__, flag_values=values,
                                             lock_config=True, sys_argv=argv)
    values(argv)
    glue_config.validate(holder.value)
    hp, _, _ = run.task_settings(holder.value, "cola")
    assert (hp.learning_rate, hp.batch_size) == (1e-5, 16)
    assert run.task_settings(holder.value, "rte")[0].learning_rate == 2e-5


def script_flags() -> flags.FlagValues:
    """A FlagValues of its own holding scripts/glue.py's flags (unparsed copies of glue/command.py's): the
    command line is read in this process as often as the tests like, and absl's global FLAGS stay untouched."""
    values = flags.FlagValues()
    for flag in flags.FLAGS.get_flags_for_module(command.__name__):
        values[flag.name] = copy.deepcopy(flag)
    return values


def glue_command(args, monkeypatch) -> int:
    """The exit status of scripts/glue.py with the command line `args`, run from the repository root, in
    this process: glue.command.parse on script_flags() (a bad command line exits), then glue.run.main
    called as glue.command.main calls it."""
    # config_flags loads every config file as the module `config_config`, into the same module
    # object when one is left from an earlier load in this process (a script loads one file).
    monkeypatch.delitem(sys.modules, "config_config", raising=False)
    monkeypatch.chdir(ROOT)  # relative paths (glue/search_config.py) as the script's users give them
    values = script_flags()
    try:
        command.parse(["glue.py", *args], flag_values=values)
    except SystemExit as e:
        return e.code
    return run.main(values.config, checkpoint=values.checkpoint, seeds=values.seeds, tasks=values.tasks,
                    data_dir=values.data_dir, out=values.out, model_name=values.model_name,
                    test_predictions=values.test_predictions, report_only=values.report_only, csv=values.csv,
                    progress=not values.no_progress, search=values.search, hparams=values.hparams,
                    fresh=values.fresh)


@pytest.mark.parametrize("args, message", [
    (["--config.tasks.cola.epoch=3"], "unknown config key 'tasks.cola.epoch'"),
    (["--config.learning_rate=fast"], "--config.learning_rate=fast: could not convert string to float: 'fast'"),
    (["--config", "/nonexistent/cfg.py"], "--config /nonexistent/cfg.py: no such file"),
    (["--config.tasks.rte.batch_size=0"], "rte: batch_size must be >= 1, got 0"),  # the job's own check
    (["--search", "glue/search_config.py", "--search.lr=1"], "unknown config key 'lr'"),
    (["--search", "glue/search_config.py", "--search.learning_rates=()"], "an empty grid"),
    (["--search", "glue/search_config.py", "--search.learning_rates=(0.0,1e-5)"], "learning_rates must all be > 0"),
    (["--search.seeds=2"], "give the search file too"),
    (["--search", "no_such_search.py"], "no such file"),
])
def test_bad_command_line_is_one_line_and_exit_2(glue_example, monkeypatch, capsys, args, message):
    status = glue_command(["--checkpoint", str(glue_example["ckpt"]), *args], monkeypatch)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_config_file_with_per_task_overrides_reaches_the_job(glue_example, tmp_path, monkeypatch, capsys):
    (tmp_path / "cfg.py").write_text(CONFIG_FILE)
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    status = glue_command(["--checkpoint", str(glue_example["ckpt"]), "--config", str(tmp_path / "cfg.py"),
                           "--config.tasks.cola.learning_rate=1e-5", "--tasks", "rte,cola,mrpc",
                           "--data_dir", str(tmp_path / "empty"), "--out", str(out), "--no_progress"], monkeypatch)
    # no data: every task fails, after the config
    assert status == 1 and "No rte data in" in capsys.readouterr().err
    settings = json.loads((out / "glue_config.json").read_text())["settings"]
    got = {t: (s["learning_rate"], s["epochs"], s["batch_size"], s["max_length"], s["seeds"])
           for t, s in settings.items()}
    assert got == {"rte": (3e-5, 2, 8, 128, 4), "cola": (1e-5, 5, 32, 128, 10), "mrpc": (3e-5, 5, 32, 128, 3)}


# ------------------------------------------------------------------ the script, in a child process

def run_script(args, timeout=600):
    """scripts/glue.py in a child process (sharing the tests' compilation cache)."""
    env = subprocess_env()
    env["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir
    return subprocess.run([sys.executable, SCRIPT, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.slow
def test_script_end_to_end(glue_example, tmp_path):
    out = tmp_path / "out"
    res = run_script(["--checkpoint", str(glue_example["ckpt"]), "--data_dir", str(glue_example["data_dir"]),
                      "--tasks", "cola,rte", "--seeds", "2", "--out", str(out), "--test_predictions"] + CLI_HP)
    assert res.returncode == 1, res.stderr[-3000:]  # rte has no data: that task failed, cola finished
    assert "rte failed" in res.stderr and "rte/train-00000-of-00001.parquet" in res.stderr
    assert (out / "errors" / "rte.txt").is_file()
    results = check_task_outputs(out, "cola", [0, 1], glue_example["sizes"])
    assert set(results["runs"]) == {"cola"}
    assert [r["status"] for r in results["runs"]["cola"]] == ["ok", "ok"]
    assert min(r["metrics"]["matthews_correlation"] for r in results["runs"]["cola"]) > 60.0
    assert "| checkpoint |" in res.stdout and res.stdout.strip() in (out / "results.md").read_text()
    # The end says what was written where; no library noise (absl's prefixes, transformers' advice).
    assert f"wrote {out}:" in res.stderr and "submission/" in res.stderr
    assert not re.search(r"^[IWEF]\d{4} \d\d:\d\d", res.stderr, re.M) and "PyTorch was not found" not in res.stderr

    res = run_script(["--report_only", "--out", str(out), "--out", str(out), "--csv", str(tmp_path / "t.csv")])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| checkpoint |" in res.stdout and (tmp_path / "t.csv").is_file()


@pytest.mark.slow
def test_script_bad_command_line_is_one_line_and_exit_2(glue_example):
    """The real entry point (absl's app.run with glue.command.parse) on one bad command line; the others
    are read in this process (test_bad_command_line_is_one_line_and_exit_2)."""
    res = run_script(["--checkpoint", str(glue_example["ckpt"]), "--config.learning_rate=fast"])
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    message = "--config.learning_rate=fast: could not convert string to float: 'fast'"
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
