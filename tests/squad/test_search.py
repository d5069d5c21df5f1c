"""The hyper-parameter search and --hparams for SQuAD, on the search every task family shares
(jax_bert/finetune/search.py): the grid's members train in one program and are scored by F1 on held-out
training questions, the best is written to OUT/hparams/squad.json and fine-tuned; the same command resumes
without training; --hparams runs with the chosen values; a file of another version or a damaged one is named."""
import json

import numpy as np
import pytest

from jax_bert.finetune import search_config
from squad import config as squad_config
from squad import run, synthetic
from squad import search as squad_search


def _config():
    config = squad_config.get_config()
    config.update(max_length=64, doc_stride=16, batch_size=8, epochs=1, learning_rate=1e-3, eval_batch_size=16)
    return config


def _search():
    s = search_config.get_config()
    s.learning_rates, s.warmup_ratios, s.epochs, s.seeds, s.fraction = (1e-4, 3e-3), (0.0,), (1,), 1, 0.25
    search_config.validate(s)
    return s


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("squad_search")
    data_dir, ckpt = synthetic.make_offline_example(root, "1.1", train=16, validation=8, hidden=32, layers=1)
    out = root / "out"
    assert run.main(_config(), checkpoint=str(ckpt), seeds=1, data_dir=str(data_dir), out=str(out), progress=False,
                    search=_search()) == 0
    return data_dir, ckpt, out


class Trained(Exception):
    pass


def _no_training(monkeypatch, seen=None):
    def stop(*args, **kwargs):
        if seen is not None:
            seen.append(args[9] if len(args) > 9 else kwargs.get("chosen"))
        raise Trained

    monkeypatch.setattr(run, "train_and_score", stop)
    monkeypatch.setattr(squad_search, "finetune", stop)


def test_the_search_chooses_the_best_member_and_fine_tunes_it(searched):
    data_dir, _, out = searched
    doc = json.loads((out / "hparams" / "squad.json").read_text())
    scores = [m["score"] for m in doc["members"]]
    assert [m["learning_rate"] for m in doc["members"]] == [1e-4, 3e-3] and all(np.isfinite(scores))
    assert doc["learning_rate"] == doc["members"][int(np.argmax(scores))]["learning_rate"]
    assert doc["score"] == max(scores) and doc["metric"] == "SQuAD v1.1 f1"
    # Held out by question: 25% of the 16 training questions scored, the other 12 trained on.
    assert doc["score_examples"] == 4 and doc["train_examples"] == 12
    assert doc["scored_on"].startswith("heldout: 25% of the training questions held out")
    results = json.loads((out / "results.json").read_text())
    assert {k: results["hparams"][k] for k in ("learning_rate", "warmup_ratio", "epochs")} == {
        k: doc[k] for k in ("learning_rate", "warmup_ratio", "epochs")}
    assert results["train_questions"] == 16  # the final run trains on the whole training set
    table = (out / "results.md").read_text()
    assert "| squad | " in table and "search score" in table


def test_the_same_search_command_resumes_without_training(searched, tmp_path, monkeypatch, capsys):
    import shutil

    data_dir, ckpt, out = searched
    mine = tmp_path / "out"
    shutil.copytree(out, mine)
    _no_training(monkeypatch)
    assert run.main(_config(), checkpoint=str(ckpt), seeds=1, data_dir=str(data_dir), out=str(mine),
                    progress=False, search=_search()) == 0
    err = capsys.readouterr().err
    assert "search chose learning rate" in err and "finished earlier with these settings" in err
    other = _search()
    other.learning_rates = (1e-4, 2e-3)  # another grid: searched again
    with pytest.raises(Trained):
        run.main(_config(), checkpoint=str(ckpt), seeds=1, data_dir=str(data_dir), out=str(mine), progress=False,
                 search=other)


def test_hparams_runs_with_the_chosen_values(searched, tmp_path, monkeypatch):
    data_dir, ckpt, out = searched
    seen = []
    _no_training(monkeypatch, seen)
    for given in (out / "hparams", out / "hparams" / "squad.json"):
        with pytest.raises(Trained):
            run.main(_config(), checkpoint=str(ckpt), seeds=1, data_dir=str(data_dir), out=str(tmp_path / "o"),
                     progress=False, hparams=str(given))
    doc = json.loads((out / "hparams" / "squad.json").read_text())
    assert [{k: c[k] for k in ("learning_rate", "warmup_ratio", "epochs")} for c in seen] == 2 * [
        {k: doc[k] for k in ("learning_rate", "warmup_ratio", "epochs")}]
    # The search's own final run is the run that --hparams asks for: the same recipe.
    finished = json.loads((out / "finished.json").read_text())["recipe"]
    assert finished == run.recipe(_config(), "1.1", str(data_dir), seen[0])


def test_hparams_of_another_version_or_damaged_is_named(searched, tmp_path):
    data_dir, ckpt, out = searched
    with pytest.raises(ValueError, match=r"holds no values for SQuAD v2.0 \(squad_v2\)"):
        run.main(_config(), checkpoint=str(ckpt), seeds=1, version="2.0", data_dir=str(data_dir),
                 out=str(tmp_path / "o"), hparams=str(out / "hparams" / "squad.json"))
    bad = tmp_path / "squad.json"
    bad.write_text(json.dumps({"task": "squad", "learning_rate": -1, "warmup_ratio": 0, "epochs": 1}))
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        run.main(_config(), checkpoint=str(ckpt), seeds=1, data_dir=str(data_dir), out=str(tmp_path / "o"),
                 hparams=str(bad))
    bad.write_text(json.dumps({"task": "rte", "learning_rate": 1e-3, "warmup_ratio": 0, "epochs": 1}))
    with pytest.raises(ValueError, match="not a search's hparams file .*'rte' is not a SQuAD task"):
        squad_search.read_hparams(bad, "1.1")
    with pytest.raises(ValueError, match="--search .* or --hparams .*, not both"):
        run.main(_config(), checkpoint=str(ckpt), seeds=1, data_dir=str(data_dir), out=str(tmp_path / "o"),
                 search=_search(), hparams=str(bad))



@pytest.mark.parametrize("args, message", [
    (["--search.seeds=2"], "give the search file too (--search jax_bert/finetune/search_config.py)"),
    (["--search", "jax_bert/finetune/search_config.py", "--search.lr=1"], "unknown config key 'lr'"),
    (["--search", "jax_bert/finetune/search_config.py", "--hparams", "x"], "--search (choose hyper-parameters) or"),
])
def test_bad_search_flags_are_one_line_and_exit_2(monkeypatch, capsys, args, message):
    import os
    import sys

    from helpers import ROOT, script_flags

    monkeypatch.delitem(sys.modules, "config_config", raising=False)
    monkeypatch.chdir(ROOT)
    # squad/command.py's flags on a FlagValues of their own: imported as it is, its flags would join absl's
    # global FLAGS, where GLUE's command (imported by other tests in this process) holds the same names.
    command, values = script_flags(os.path.join(ROOT, "squad", "command.py"), monkeypatch)
    with pytest.raises(SystemExit) as stop:
        command.parse(["squad.py", "--checkpoint", "x", *args], flag_values=values)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
