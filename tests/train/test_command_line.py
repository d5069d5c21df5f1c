"""scripts/pretrain.py's command line: a bad command line is one `error: ...` line and exit status 2, a run
that stops on an expected error (missing data files, teacher or tokenizer, a changed model on resume) one
line and exit status 1; never a traceback.

The cases run in this process the way the script runs them: its own flags (imported onto a FlagValues of
their own), the command line read by jax_bert.cli.parse_flags with the script's arguments, the run through
jax_bert.cli.run. One smoke test runs the real script twice in a child process (a bad key; a run that
stops) to show that it is wired the same way.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT, one_error_line, script_flags, stops_with_one_line, subprocess_env, tiny_config
from jax_bert import cli
from jax_bert.train import config as pretrain_config
from jax_bert.train import loop as pretrain

PRETRAIN = os.path.join(ROOT, "scripts", "pretrain.py")
TINY = os.path.join(ROOT, "configs", "tiny.py")
TINY_RIGL = os.path.join(ROOT, "configs", "tiny_rigl.py")
RIGL80 = os.path.join(ROOT, "configs", "rigl80.py")


@pytest.fixture
def straight(reference_run):
    """The session's uninterrupted 8-step run (checkpoints at 4 and 8): the reference."""
    return reference_run[0]


@pytest.fixture
def pretrain_script(monkeypatch, capsys):
    """scripts/pretrain.py with the given arguments, in this process: (exit status, its one error line)."""

    def run(*args):
        _, values = script_flags(PRETRAIN, monkeypatch)
        argv = ["pretrain.py", *args]

        def job():  # scripts/pretrain.py's parse, then its main's run
            pretrain_config.parse_command_line(argv, flag_values=values)
            cli.run(lambda: pretrain.run(values.config, values.workdir))

        return stops_with_one_line(job, monkeypatch, capsys)

    return run


@pytest.mark.parametrize("args,status,message", [
    (["--config.train.stepz=3"], 2, "unknown config key 'train.stepz': train has the keys checkpoint_every"),
    (["--config.train.steps=abc"], 2, "--config.train.steps=abc"),
    (["--config.train.eval_batch_size=0"], 2, "train.eval_batch_size must be an integer >= 1, got 0"),
    (["--config.data.source=files", "--config.data.files=/no/such/*.txt"], 1, "/no/such/*.txt"),
    (["--config.distill.teachers=/no/such/teacher"], 1, "teacher '/no/such/teacher' does not exist. To get one"),
    (["--config.tokenizer.name=/no/such/tokenizer"], 1, "tokenizer '/no/such/tokenizer' does not exist"),
    (["--config.optim.learning_rate=nan"], 2, "optim.learning_rate=nan: every numeric value must be a finite number"),
    (["--config.sparsity.level=1.5"], 2, "sparsity.level must be in [0, 1), got 1.5"),
    (["--config.sparsity.level=0.5"], 2, "sparsity.level=0.5 would be ignored: sparsity.enabled is False. Add "
                                         "--config.sparsity.enabled=True"),
])
def test_bad_input_is_one_line(pretrain_script, tmp_path, args, status, message):
    code, line = pretrain_script("--config", TINY, "--workdir", str(tmp_path / "w"),
                                 f"--config.data_cache_dir={tmp_path}/cache", *args)
    assert code == status, line
    assert message in line
    if "stepz" in message:
        assert line.endswith("Did you mean 'train.steps'?")


def test_a_sparsity_level_out_of_range_on_a_sparse_config_is_one_line(pretrain_script, tmp_path):
    code, line = pretrain_script("--config", TINY_RIGL, "--workdir", str(tmp_path / "w"), "--config.sparsity.level=1.5")
    assert code == 2 and "sparsity.level must be in [0, 1), got 1.5" in line  # before the missing teacher


def test_config_file_errors_are_one_line(pretrain_script, tmp_path):
    code, line = pretrain_script("--config", str(tmp_path / "missing.py"))
    assert code == 2 and "no such file" in line
    (tmp_path / "broken.py").write_text("def get_config():\n    return 1 / 0\n")
    code, line = pretrain_script("--config", str(tmp_path / "broken.py"))
    assert code == 2 and "ZeroDivisionError" in line


def test_tiny_rigl_without_its_teacher_says_to_train_it_first(pretrain_script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/tiny here
    code, line = pretrain_script("--config", TINY_RIGL, "--workdir", str(tmp_path / "w"))
    assert code == 1
    assert "teacher 'runs/tiny'" in line and "configs/tiny.py --workdir runs/tiny" in line


def test_resuming_with_a_changed_model_is_one_line(straight, cache_dir, tmp_path, monkeypatch, capsys):
    workdir = str(tmp_path / "run")
    shutil.copytree(straight, workdir)
    config = tiny_config(cache_dir)
    config.model.intermediate_size = 48
    code, line = stops_with_one_line(lambda: cli.run(lambda: pretrain.run(config, workdir)), monkeypatch, capsys)
    assert code == 1
    assert "holds a run with another recipe (model.intermediate_size 64 -> 48)" in line
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]
    # Without its config.json the checkpoint's own shapes still refuse it.
    os.remove(os.path.join(workdir, "config.json"))
    code, line = stops_with_one_line(lambda: cli.run(lambda: pretrain.run(config, workdir)), monkeypatch, capsys)
    assert code == 1 and "holds another model or optimizer" in line
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]


def test_resuming_with_another_batch_length_or_schedule_is_refused(straight, cache_dir, tmp_path, monkeypatch,
                                                                    capsys):
    """The data order and the optimisation of the steps already taken would not be those of the rest."""
    workdir = str(tmp_path / "run")
    shutil.copytree(straight, workdir)
    before = open(os.path.join(workdir, "config.json")).read()
    config = tiny_config(cache_dir, global_batch_size=16, seq_len=16)
    config.optim.learning_rate = 1e-3
    monkeypatch.setattr(pretrain, "prepare_data", lambda *a: pytest.fail("the data was prepared"))
    code, line = stops_with_one_line(lambda: cli.run(lambda: pretrain.run(config, workdir)), monkeypatch, capsys)
    assert code == 1
    assert ("another recipe (optim.learning_rate 0.005 -> 0.001; train.global_batch_size 8 -> 16; "
            "train.seq_len 32 -> 16)") in line
    assert "start a new run with another --workdir" in line
    assert open(os.path.join(workdir, "config.json")).read() == before  # the record is kept
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]


def test_a_resume_may_change_the_cadence_and_every_start_is_recorded(straight, cache_dir, tmp_path):
    from jax_bert.train import recipe

    workdir = str(tmp_path / "run")
    shutil.copytree(straight, workdir)
    assert [h["started_at_step"] for h in recipe.history(workdir)] == [0]
    config = tiny_config(cache_dir, log_every=2, checkpoint_every=2, keep_checkpoints=5, eval_batch_size=8)
    os.remove(os.path.join(workdir, "eval_results.json"))
    pretrain.run(config, workdir)  # resumes at step 8 of 8: only the final evaluation
    starts = recipe.history(workdir)
    assert [h["started_at_step"] for h in starts] == [0, 8]
    assert starts[0]["config"]["train"]["log_every"] == 1 and starts[1]["config"]["train"]["log_every"] == 2
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["train"]["checkpoint_every"] == 2  # config.json: the latest start
    assert os.path.isfile(os.path.join(workdir, "eval_results.json"))


def test_only_recipe_keys_are_compared():
    from jax_bert.train import recipe
    from jax_bert.train.config import base_config

    old = base_config().to_dict()
    new = base_config()
    new.train.update(log_every=7, eval_every=3, checkpoint_every=9, grad_accum_steps=2)
    new.mesh.data, new.data_cache_dir = 2, "/elsewhere"
    assert recipe.changed_recipe(old, new.to_dict()) == []
    new.sparsity.update(enabled=True, level=0.9)
    new.data.source = "files"
    assert [k for k, _, _ in recipe.changed_recipe(old, new.to_dict())] == [
        "data.source", "sparsity.enabled", "sparsity.level"]


@pytest.fixture
def empty_hub_caches(tmp_path, monkeypatch):
    """No Hugging Face model or dataset cached (the caches point at empty folders)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    return tmp_path


def test_a_hub_config_offline_names_everything_missing_at_once(pretrain_script, empty_hub_caches, tmp_path,
                                                                 monkeypatch):
    """configs/rigl80.py with no network: the teacher, the tokenizer and both datasets in one line, before
    any work and without asking the hub (HF_HUB_OFFLINE=1, as the tests run)."""
    monkeypatch.chdir(tmp_path)  # no runs/bert_1mi here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(pretrain, "prepare_data", lambda *a: pytest.fail("the data was prepared"))
    code, line = pretrain_script("--config", RIGL80, "--workdir", str(tmp_path / "w"))
    assert code == 1
    for named in ("hub unreachable (HF_HUB_OFFLINE=1)", "teacher 'runs/bert_1mi': no such directory",
                  "tokenizer 'bert-base-cased': not cached", "dataset 'wikimedia/wikipedia': not cached",
                  "dataset 'bookcorpus/bookcorpus': not cached", "configs/bert_1mi.py",
                  "--config.data.source=files --config.data.files="):
        assert named in line, named
    assert not os.path.exists(tmp_path / "w")


def test_an_unanswering_hub_is_found_in_one_probe(monkeypatch):
    from jax_bert.train import sources

    for name in sources._OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert sources.hub_unreachable().startswith("http://127.0.0.1:9 did not answer within 3 s")


def test_everything_cached_runs_offline_without_asking_the_hub(empty_hub_caches, monkeypatch):
    from jax_bert.train import sources
    from jax_bert.train.config import base_config

    snapshot = empty_hub_caches / "hub" / "models--bert-base-cased" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "tokenizer.json").write_text("{}")
    (empty_hub_caches / "hub" / "models--bert-base-cased" / "refs").mkdir()
    (empty_hub_caches / "hub" / "models--bert-base-cased" / "refs" / "main").write_text("abc")
    (empty_hub_caches / "datasets" / "wikimedia___wikipedia").mkdir(parents=True)
    config = base_config()
    config.tokenizer.name = "bert-base-cased"
    config.data.update(source="hub", datasets=("wikimedia/wikipedia:20231101.en",))
    for name in sources._OFFLINE_VARIABLES:
        monkeypatch.setenv(name, "0")
    monkeypatch.setattr(sources, "hub_unreachable", lambda: "no network")
    sources.check_sources(config)  # nothing missing
    assert all(os.environ[name] == "1" for name in sources._OFFLINE_VARIABLES)  # the libraries read the caches
    config.data.datasets = ("bookcorpus/bookcorpus",)
    with pytest.raises(ValueError, match=r"\(no network\): dataset 'bookcorpus/bookcorpus': not cached\. Offline"):
        sources.check_sources(config)


def test_the_end_of_a_run_says_what_it_wrote_and_where(straight):
    from jax_bert.train import summary

    result = {"status": "finished", "step": 8, "eval_loss": 6.1234567, "perplexity": 456.789,
              "eval_mlm_accuracy": 0.05, "eval_blocks": 3}
    text = summary.run_summary(result, straight, 8)
    assert text.splitlines()[0] == f"finished: 8 steps in {straight}"
    assert "final eval: loss 6.1235, perplexity 456.79, MLM accuracy 0.0500 over 3 validation blocks" in text
    assert f"checkpoints: {straight}/checkpoints (steps 4, 8)" in text
    assert f"Hugging Face export (BertForMaskedLM + tokenizer): {straight}/hf" in text
    assert "{" not in text  # not a dict
    stopped = summary.run_summary({"status": "stopped by SIGINT at step 4", "step": 4}, straight, 8)
    assert stopped.splitlines()[0] == "stopped by SIGINT at step 4 of 8."
    assert "Run the same command to resume" in stopped


@pytest.mark.slow
def test_the_real_script_says_a_bad_key_and_a_stopped_run_in_one_line(tmp_path):
    """The script itself, in a child process: its absl app, flags and cli wrapping, as a user runs it."""
    script = lambda *args, cwd=None: subprocess.run(  # noqa: E731
        [sys.executable, PRETRAIN, *args], env=subprocess_env(1), capture_output=True, text=True, timeout=180,
        cwd=cwd)
    bad_key = script("--config", TINY, "--workdir", str(tmp_path / "w"), "--config.train.stepz=3")
    assert bad_key.returncode == 2, bad_key.stderr[-2000:]
    line = one_error_line(bad_key.stderr)
    assert "unknown config key 'train.stepz'" in line and line.endswith("Did you mean 'train.steps'?")
    stopped = script("--config", TINY_RIGL, "--workdir", str(tmp_path / "w"), cwd=str(tmp_path))  # no runs/tiny
    assert stopped.returncode == 1, stopped.stderr[-2000:]
    line = one_error_line(stopped.stderr)
    assert "teacher 'runs/tiny'" in line and "configs/tiny.py --workdir runs/tiny" in line
