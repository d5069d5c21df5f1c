"""The GLUE hyper-parameter search (glue/search.py): members with their own learning rate, warm-up and
steps in one fine-tuning program (engine.finetune's member_hps), the held-out split, the choice, the
hparams files, --hparams runs and resuming. The --search flags are tested with the rest of the command
line (tests/glue/test_run.py).

Offline, on the shared GLUE example (conftest.glue_example: synthetic data, a tiny random BERT).
"""
import dataclasses
import functools
import json
import math
import os

import jax
import numpy as np
import pytest

from glue import config as glue_config
from glue import data, finetune, run, search, search_config
from glue.tasks import get_task
from jax_bert.finetune import batching, engine, hparams
from jax_bert.train import schedules

MAX_LEN = 32
# The shared example's 250 training rows at batch 16: 16 steps per epoch, the last one partial; 48 validation rows.
HP = finetune.task_hparams(glue_config.get_config(), "sst2", learning_rate=3e-3, batch_size=16,
                                  epochs=2, eval_batch_size=32)
JOB = {"learning_rate": 3e-3, "batch_size": 16, "max_length": MAX_LEN, "eval_batch_size": 32,
       "tasks": {"sst2": {"epochs": 2, "runs": 2}, "mrpc": {"epochs": 1, "runs": 1}}}


def search_settings(**changes):
    s = search_config.get_config()
    s.update(dict(learning_rates=(1e-3, 3e-3), warmup_ratios=(0.0, 0.25), epochs=(0,), seeds=1) | changes)
    return s


@pytest.fixture(scope="module")
def example(glue_example, glue_tok):
    """The shared offline GLUE example (conftest.glue_example) with sst2's splits tokenized to MAX_LEN."""
    tok = functools.partial(glue_tok, max_length=MAX_LEN)
    return glue_example | dict(train=tok("sst2", "train"), val=tok("sst2", "validation"))


# ------------------------------------------------------------------ members in one program

def test_member_schedules_are_each_members_own_schedule():
    """Each column of the member table is that member's warm-up + linear decay (float64 reference),
    0 after its last step; warm-up steps are Hugging Face's ceil(ratio x steps)."""
    spe, settings = 6, [(1e-3, 0.0, 1), (3e-5, 0.1, 3), (2e-5, 0.25, 2)]
    hps = [dataclasses.replace(HP, learning_rate=lr, epochs=e, warmup_steps=search.warmup_steps(w, e * spe))
           for lr, w, e in settings]
    table = hparams.member_learning_rates(hps, spe)
    assert table.shape == (18, 3) and table.dtype == np.float32
    for i, (lr, w, e) in enumerate(settings):
        n = e * spe
        warm = math.ceil(w * n)
        ref = np.array([lr * (s / max(1, warm) if s < warm else max(0.0, (n - s) / max(1, n - warm)))
                        for s in range(n)])
        np.testing.assert_allclose(table[:n, i], ref, rtol=1e-7, atol=0)
        np.testing.assert_array_equal(table[:n, i], np.float32(schedules.warmup_linear(lr, warm, n)(np.arange(n))))
        assert not table[n:, i].any()
    assert search.warmup_steps(0.1, 18) == 2 and search.warmup_steps(0.0, 18) == 0


def test_a_finished_member_keeps_its_params_and_optimizer_state_exactly(example):
    config = example["config"].replace(num_labels=2, dropout_layout_length=MAX_LEN)
    base = engine.base_params(example["params"])
    params, opt_state = engine.init_seeds(config, base, [0, 1], HP)
    step = engine._train_step(config, engine._optimizer_key(HP), "vmap", True)
    rows = np.stack([np.arange(16), np.arange(16, 32)])
    batch = batching.gather_batch(example["train"], rows, np.ones((2, 16), np.float32))
    masks = engine.masks_tree(config, base, {})
    last = np.array([0.5, 0.7], np.float32)
    new_params, new_opt, bad, loss = step(params, opt_state, np.zeros(2, bool), batch, np.array([0, 1], np.int32),
                                          np.int32(3), masks, np.array([1e-3, 1e-3], np.float32),
                                          np.array([False, True]), last)
    for before, after in [(params, new_params), (opt_state, new_opt)]:
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
            np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(b)[0])  # member 0: done, unchanged
    moved = [not np.array_equal(np.asarray(a)[1], np.asarray(b)[1])
             for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(new_params))]
    assert all(moved)  # member 1 trained: every param changed
    assert float(loss[0]) == 0.5 and float(loss[1]) != 0.7 and not bool(bad.any())


def test_a_grid_in_one_program_equals_each_member_alone(example):
    """Members with different seeds, learning rates, warm-up and epochs (one stops after 1 epoch of 2)
    trained together give each member the params and logits it gets alone."""
    args = (example["config"], example["params"], example["train"], {"validation": example["val"]})
    spe = hparams.steps_per_epoch(len(example["train"]["input_ids"]), HP.batch_size, HP.drop_last)
    seeds = [0, 0, 1]
    hps = [dataclasses.replace(HP, learning_rate=1e-3, epochs=1),
           dataclasses.replace(HP, learning_rate=3e-3, epochs=2, warmup_steps=search.warmup_steps(0.25, 2 * spe)),
           dataclasses.replace(HP, learning_rate=1e-3, epochs=2)]
    together = engine.finetune(*args, seeds, HP, num_labels=2, member_hps=hps, keep_params=True)
    assert together.steps == 2 * spe
    for i, (seed, hp) in enumerate(zip(seeds, hps)):
        alone = engine.finetune(*args, [seed], hp, num_labels=2, keep_params=True)
        np.testing.assert_allclose(together.logits["validation"][i], alone.logits["validation"][0],
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(together.final_loss[i], alone.final_loss[0], rtol=1e-3, atol=1e-5)
        for a, b in zip(jax.tree.leaves(together.params), jax.tree.leaves(alone.params)):
            np.testing.assert_allclose(np.asarray(a)[i], np.asarray(b)[0], rtol=1e-4, atol=1e-5)


def test_members_may_differ_only_in_lr_warmup_and_epochs(example):
    args = (example["config"], example["params"], example["train"], {})
    with pytest.raises(ValueError, match="members may differ in"):
        engine.finetune(*args, [0, 0], HP, member_hps=[HP, dataclasses.replace(HP, weight_decay=0.1)])
    with pytest.raises(ValueError, match="one HParams per seed"):
        engine.finetune(*args, [0, 1], HP, member_hps=[HP])


# ------------------------------------------------------------------ scoring and choosing

def test_held_out_split_is_disjoint_covering_and_deterministic():
    kept, held = search.split_off(250, 0.1, split_seed=3)
    assert len(held) == 25 and len(kept) == 225
    assert not set(kept) & set(held) and sorted(set(kept) | set(held)) == list(range(250))
    again = search.split_off(250, 0.1, split_seed=3)
    np.testing.assert_array_equal(held, again[1])
    assert not np.array_equal(held, search.split_off(250, 0.1, split_seed=4)[1])
    assert len(search.split_off(5, 0.01, 0)[1]) == 1  # at least one scored and one kept
    with pytest.raises(ValueError, match="cannot be divided"):
        search.split_off(1, 0.5, 0)


def test_choice_is_the_best_mean_over_seeds_with_ties_to_the_first():
    settings = [search.Setting(lr, 0.0, 3) for lr in (1e-5, 2e-5, 3e-5)]
    best, means = search.choose(settings, [80, 90, 86, 86, np.nan, 99], seeds=2)
    np.testing.assert_allclose(means, [85, 86, 99])
    assert best == 2  # a diverged seed is left out of its setting's mean
    assert search.choose(settings, [1, 1, 1, 1, 0, 0], seeds=2)[0] == 0
    with pytest.raises(ValueError, match="every member of the search diverged"):
        search.choose(settings, [np.nan] * 6, seeds=2)


@pytest.mark.parametrize("changes, message", [
    (dict(learning_rates=()), "non-empty"),
    (dict(learning_rates=(1e-5, 0.0)), "learning_rates must all be > 0"),
    (dict(warmup_ratios=(1.5,)), "warmup_ratios must lie in"),
    (dict(score_on="test"), "score_on must be one of"),
    (dict(fraction=0.0), "fraction must lie in"),
    (dict(seeds=0), "seeds must be >= 1"),
])
def test_search_config_checks(changes, message):
    s = search_config.get_config()
    for k, v in changes.items():
        s[k] = v
    with pytest.raises(ValueError, match=message):
        search_config.validate(s)


def test_unknown_search_key_is_named():
    s = search_config.get_config()
    s.lr = 1.0
    with pytest.raises(ValueError, match=r"unknown search keys \['lr'\]"):
        search_config.validate(s)
    search_config.validate(search_config.get_config())


# ------------------------------------------------------------------ the job: search, hparams, resume

def job(out, **kwargs):
    config = glue_config.with_overrides(JOB)
    return run.main(config, out=str(out), progress=False, **kwargs)


def test_search_writes_hparams_that_a_normal_run_uses(example, tmp_path, capsys):
    out = tmp_path / "searched"
    assert job(out, checkpoint=str(example["ckpt"]), data_dir=example["data_dir"], tasks="sst2",
               search=search_settings()) == 0
    text = capsys.readouterr().out
    doc = json.loads((out / "hparams" / "sst2.json").read_text())
    assert doc["learning_rate"] in (1e-3, 3e-3) and doc["warmup_ratio"] in (0.0, 0.25) and doc["epochs"] == 2
    assert doc["scored_on"].startswith("heldout") and doc["score_examples"] == 25 and doc["train_examples"] == 225
    assert len(doc["members"]) == 4 and max(s["score"] for s in doc["settings"]) == doc["score"]
    assert "chosen by search" in text and f"| sst2 | {doc['learning_rate']:g} |" in text
    # The final runs used the chosen values on the full training set (250 rows: 15 full batches of 16 per
    # epoch, the last partial one dropped as the original).
    seed0 = json.loads((out / "metrics" / "sst2" / "seed0.json").read_text())
    assert seed0["hparams"]["learning_rate"] == doc["learning_rate"]
    assert seed0["hparams"]["warmup_steps"] == math.ceil(doc["warmup_ratio"] * 30) and seed0["steps"] == 30

    # --hparams: a normal run with the file gets the same runs (the same numbers) as the search's final.
    again = tmp_path / "again"
    assert job(again, checkpoint=str(example["ckpt"]), data_dir=example["data_dir"], tasks="sst2",
               hparams=str(out / "hparams" / "sst2.json")) == 0
    assert "chosen by search" in capsys.readouterr().out
    for seed in (0, 1):
        a = json.loads((out / "metrics" / "sst2" / f"seed{seed}.json").read_text())
        b = json.loads((again / "metrics" / "sst2" / f"seed{seed}.json").read_text())
        assert a["hparams"] == b["hparams"]
        np.testing.assert_allclose(a["metrics"]["accuracy"], b["metrics"]["accuracy"])


def test_validation_fraction_is_labelled(example, tmp_path):
    doc = search.search_task(
        "sst2", search_settings(score_on="validation_fraction", learning_rates=(3e-3,), warmup_ratios=(0.0,),
                                fraction=0.25),
        hp=HP, max_length=MAX_LEN, bert_config=example["config"], params=example["params"],
        tokenizer=example["tokenizer"], dataset=data.load_task("sst2", example["data_dir"]),
        out=tmp_path, model="m", checkpoint="c", config=glue_config.get_config(), progress=False)
    assert doc["scored_on"].startswith("validation_fraction") and "not independent" in doc["scored_on"]
    assert doc["score_examples"] == 12 and doc["train_examples"] == 250


class Stopped(BaseException):
    """Not an Exception: the job's per-task error handling lets it through, as it does Ctrl-C."""


def test_an_interrupted_search_resumes_to_the_uninterrupted_result(example, tmp_path, monkeypatch):
    kwargs = dict(checkpoint=str(example["ckpt"]), data_dir=example["data_dir"], tasks="sst2,mrpc",
                  search=search_settings(warmup_ratios=(0.0,)))
    assert job(tmp_path / "whole", **kwargs) == 0

    real, searched = search.search_task, []

    def crash_on_mrpc(task, *args, **kw):
        if task == "mrpc":
            raise Stopped  # as a user's Ctrl-C or a killed job would stop it
        searched.append(task)
        return real(task, *args, **kw)

    monkeypatch.setattr(search, "search_task", crash_on_mrpc)
    with pytest.raises(Stopped):
        job(tmp_path / "resumed", **kwargs)
    assert (tmp_path / "resumed" / "hparams" / "sst2.json").is_file()
    assert not (tmp_path / "resumed" / "hparams" / "mrpc.json").exists()

    monkeypatch.undo()
    counted = []
    original = engine.finetune

    def counting(*a, **kw):
        counted.append("search" if kw.get("member_hps") is not None else "final")
        return original(*a, **kw)

    monkeypatch.setattr(finetune, "finetune", counting)
    assert job(tmp_path / "resumed", **kwargs) == 0
    assert counted == ["search", "final"]  # sst2: neither its search nor its final run again; mrpc: both
    for task in ("sst2", "mrpc"):
        whole = json.loads((tmp_path / "whole" / "hparams" / f"{task}.json").read_text())
        resumed = json.loads((tmp_path / "resumed" / "hparams" / f"{task}.json").read_text())
        for key in ("learning_rate", "warmup_ratio", "epochs", "score"):
            assert whole[key] == pytest.approx(resumed[key], rel=1e-6), key
        assert [m["score"] for m in whole["members"]] == pytest.approx([m["score"] for m in resumed["members"]])
    tables = [(tmp_path / d / "results.md").read_text().split("\nValidation examples scored")[0]
              for d in ("whole", "resumed")]
    assert tables[0] == tables[1] and "| sst2 |" in tables[0] and "| mrpc |" in tables[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(search=search_settings(learning_rates=(-1e-3,))), "learning_rates must all be > 0"),
    (dict(search=search_settings(), hparams="x.json"), "not both"),
    (dict(hparams="/nonexistent/hp.json"), "no such file"),
])
def test_bad_search_input_is_one_line(example, tmp_path, capsys, kwargs, message):
    assert job(tmp_path, checkpoint=str(example["ckpt"]), data_dir=example["data_dir"], tasks="sst2", **kwargs) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_a_damaged_hparams_file_is_named(tmp_path):
    bad = tmp_path / "sst2.json"
    bad.write_text('{"task": "sst2", "learning_rate": 0.001}')
    with pytest.raises(ValueError, match="not a search's hparams file"):
        search.read_hparams(bad, ["sst2"])
    bad.write_text(json.dumps({"task": "sst2", "learning_rate": 0, "warmup_ratio": 0.0, "epochs": 2}))
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        search.read_hparams(bad, ["sst2"])
    assert get_task("sst2").name == "sst2" and os.path.isfile(bad)
