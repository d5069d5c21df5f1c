"""A SQuAD --out as GLUE's: the same command keeps a finished run (as many seeds or fewer) instead of training
again, other settings train again, another checkpoint's results are refused and --fresh moves them aside, and
a second run into a folder in use is refused. One real (tiny) run; the reruns that must train stop at once."""
import json
import shutil

import pytest

from jax_bert.finetune import identity
from squad import config as squad_config
from squad import run, synthetic

KEPT = ("results.json", "results.md", "results.csv", "predictions/seed0.json", "predictions/seed1.json",
        "finished.json", "checkpoint.json")


def _config(**changes):
    config = squad_config.get_config()
    config.update(dict(max_length=64, doc_stride=16, batch_size=8, epochs=1, learning_rate=1e-3,
                       eval_batch_size=16) | changes)
    squad_config.validate(config)
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(data_dir, checkpoint, out) of a finished 2-seed v1.1 run."""
    root = tmp_path_factory.mktemp("squad_resume")
    data_dir, ckpt = synthetic.make_offline_example(root, "1.1", train=16, validation=8, hidden=32, layers=1)
    out = root / "out"
    assert run.main(_config(), checkpoint=str(ckpt), seeds=2, data_dir=str(data_dir), out=str(out),
                    progress=False) == 0
    return data_dir, ckpt, out


class Trained(Exception):
    pass


@pytest.fixture
def copy(finished, tmp_path, monkeypatch):
    """A copy of the finished folder, and a run that stops with Trained as soon as it would train."""
    data_dir, ckpt, out = finished
    mine = tmp_path / "out"
    shutil.copytree(out, mine)

    def train_and_score(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(run, "train_and_score", train_and_score)

    def again(seeds=2, fresh=False, **changes):
        return run.main(_config(**changes), checkpoint=str(ckpt), seeds=seeds, data_dir=str(data_dir),
                        out=str(mine), progress=False, fresh=fresh)

    return mine, again


def _bytes(out):
    return {name: (out / name).read_bytes() for name in KEPT}


def test_the_same_command_keeps_the_finished_run(copy, capsys):
    out, again = copy
    before = _bytes(out)
    assert json.loads((out / "finished.json").read_text())["seeds"] == [0, 1]
    for seeds in (2, 1):  # the same seeds, or fewer
        assert again(seeds=seeds) == 0
        captured = capsys.readouterr()
        assert "finished earlier with these settings, kept from" in captured.err
        assert captured.out == (out / "results.md").read_text() and "mean ± std (2 of 2 seeds)" in captured.out
    assert _bytes(out) == before
    assert run.kept_after_stop(out) == f"the finished results in {out} are kept"


@pytest.mark.parametrize("changes", [dict(seeds=3), dict(learning_rate=2e-3), dict(max_eval_questions=4)])
def test_other_settings_or_more_seeds_train_again(copy, changes):
    out, again = copy
    with pytest.raises(Trained):
        again(**changes)
    # Its finished record is gone before training starts: a crash now leaves nothing that a rerun would keep.
    assert not (out / "finished.json").exists() and (out / "results.json").is_file()
    assert run.kept_after_stop(out).startswith("no run had finished in")
    with pytest.raises(Trained):  # and the earlier settings, too, train again
        again()


def test_another_checkpoints_results_are_refused_and_fresh_moves_them_aside(copy):
    out, again = copy
    other = dict(json.loads((out / "checkpoint.json").read_text()), path="/elsewhere/model", fingerprint="f" * 64)
    (out / "checkpoint.json").write_text(json.dumps(other))
    with pytest.raises(identity.ResultsOfAnotherModel, match="/elsewhere/model .*weights ffffffffffff.*--fresh"):
        again()
    with pytest.raises(Trained):
        again(fresh=True)
    aside = out.parent / "out.replaced-1"
    assert json.loads((aside / "checkpoint.json").read_text()) == other and (aside / "results.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == [".lock", "checkpoint.json"]


def test_fresh_starts_over_even_when_finished(copy):
    out, again = copy
    with pytest.raises(Trained):
        again(fresh=True)
    assert (out.parent / "out.replaced-1" / "finished.json").is_file() and not (out / "results.json").exists()


def test_a_folder_in_use_is_refused_naming_the_run(copy):
    out, again = copy
    lock = identity.OneRunAtATime(out)
    lock.acquire()
    try:
        with pytest.raises(ValueError, match=f"{out} is in use by a fine-tuning run that is still going \\(pid "):
            again()
    finally:
        lock.release()
    assert again() == 0  # released: the same command goes on


@pytest.mark.slow
def test_ctrl_c_stops_in_one_line_and_the_same_command_finishes(finished, tmp_path):
    """SIGINT while a run with other settings trains over a finished one: one line, exit 130, nothing half
    written; the same command again trains and finishes."""
    import signal
    import subprocess
    import sys
    import time

    import jax

    from helpers import ROOT, one_error_line, subprocess_env

    data_dir, ckpt, out = finished
    mine = tmp_path / "out"
    shutil.copytree(out, mine)
    args = ["--checkpoint", str(ckpt), "--data_dir", str(data_dir), "--seeds", "2", "--out", str(mine),
            "--no_progress", "--config.max_length=64", "--config.doc_stride=16", "--config.batch_size=8",
            "--config.epochs=1", "--config.learning_rate=2e-3", "--config.eval_batch_size=16"]
    env = dict(subprocess_env(), JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir)
    proc = subprocess.Popen([sys.executable, f"{ROOT}/scripts/squad.py", *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while (mine / "finished.json").exists():  # the earlier run is being replaced: it trains now
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert one_error_line(err) == (f"error: stopped by SIGINT; no run had finished in {mine}; run the same command "
                                   "to start again")
    assert "Fatal Python error" not in err and not list(mine.rglob(".tmp-*"))
    assert run.main(_config(learning_rate=2e-3), checkpoint=str(ckpt), seeds=2, data_dir=str(data_dir),
                    out=str(mine), progress=False) == 0
    assert json.loads((mine / "finished.json").read_text())["recipe"]["config"]["learning_rate"] == 2e-3
