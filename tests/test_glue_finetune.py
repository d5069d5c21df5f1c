"""GLUE fine-tuning vmapped over seeds (glue/finetune.py) and the command line (glue/run.py).

Everything is offline: synthetic GLUE data and a tiny random BERT (glue.run.make_offline_example).
The tests share one model config and hyperparameters so the compiled steps are reused.
"""
import functools
import json
import shutil

import jax
import numpy as np
import pytest

import sparsity
from glue import data, finetune, metrics, run
from glue.tasks import get_task

TASKS = ("sst2", "cola", "mrpc", "stsb")
# 250 training rows: the last batch of each epoch (250 = 15 * 16 + 10) is partial; 48 validation
# rows with eval batch 32: the last eval batch is padded.
SIZES = {"train": 250, "validation": 48, "test": 8}
MAX_LEN = 32
HP = finetune.HParams(learning_rate=3e-3, batch_size=16, epochs=8, eval_batch_size=32)
CLI_HP = ["--config.learning_rate=3e-3", "--config.batch_size=16", f"--config.max_length={MAX_LEN}",
          "--config.eval_batch_size=32", "--config.tasks.cola.epochs=8",
          "--config.tasks.mrpc.epochs=8", "--no_progress"]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue_ft")
    data_dir, ckpt = run.make_offline_example(root, TASKS, SIZES)
    config, params, tokenizer, extras, name = run.load_checkpoint(str(ckpt))
    return dict(root=root, data_dir=data_dir, ckpt=ckpt, config=config, params=params,
                tokenizer=tokenizer, extras=extras, name=name)


@pytest.fixture(scope="module")
def tok(example):
    """tok(task, split) -> the tokenized split, each tokenized once per module."""
    return functools.lru_cache(maxsize=None)(
        lambda task, split: data.tokenize_task(data.load_task(task, example["data_dir"])[split],
                                               task, example["tokenizer"], MAX_LEN))


@pytest.fixture(scope="module")
def sst2_runs(example, tok):
    """Seeds 0 and 1 of the learnable single-sentence task, trained together."""
    return finetune.finetune(example["config"], example["params"], tok("sst2", "train"),
                             {"validation": tok("sst2", "validation")}, [0, 1], HP,
                             num_labels=2)


# ------------------------------------------------------------------ the loss

def test_weighted_loss_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 6)
    weights = np.array([1, 1, 1, 1, 0, 0], np.float32)  # two padding rows
    ours = float(finetune.weighted_loss(logits, labels, weights))
    ref = torch.nn.CrossEntropyLoss()(torch.tensor(logits[:4]), torch.tensor(labels[:4])).item()
    assert ours == pytest.approx(ref, rel=1e-6)
    scores = rng.uniform(0, 5, 6).astype(np.float32)
    ours = float(finetune.weighted_loss(logits[:, :1], scores, weights))
    ref = torch.nn.MSELoss()(torch.tensor(logits[:4, 0]), torch.tensor(scores[:4])).item()
    assert ours == pytest.approx(ref, rel=1e-6)


def test_batches_cover_every_example_once_per_epoch():
    orders = np.stack([finetune.epoch_order(37, s, 2) for s in (0, 1)])
    assert not np.array_equal(orders[0], orders[1])  # each seed its own order
    seen = [[], []]
    for i in range(finetune.steps_per_epoch(37, 8)):
        rows, weights = finetune.batch_indices(orders, i, 8)
        assert rows.shape == weights.shape == (2, 8)
        for s in range(2):
            seen[s] += rows[s][weights[s] == 1].tolist()
    assert sorted(seen[0]) == sorted(seen[1]) == list(range(37))


# ------------------------------------------------------------------ training

def test_single_sentence_task_is_learned(example, tok, sst2_runs):
    labels = tok("sst2", "validation")["labels"]
    assert sst2_runs.logits["validation"].shape == (2, SIZES["validation"], 2)
    assert not sst2_runs.failed.any() and sst2_runs.errors == {}
    assert sst2_runs.steps == HP.epochs * 16
    for i in range(2):
        acc = metrics.compute_metrics("sst2", sst2_runs.logits["validation"][i], labels)["accuracy"]
        assert acc >= 90.0, acc  # the cue-word rule; chance is about 50
    assert np.all(sst2_runs.final_loss < 0.2)
    # The seeds differ (own head init, dropout, data order).
    assert not np.allclose(sst2_runs.logits["validation"][0], sst2_runs.logits["validation"][1])


@pytest.mark.parametrize("seed_loop", ["vmap", "map"])
def test_seeds_together_equal_each_seed_alone(example, tok, seed_loop):
    """Both ways of running seeds in one step (vmap, lax.map) give a seed what it gets alone."""
    args = (example["config"], example["params"], tok("sst2", "train"),
            {"validation": tok("sst2", "validation")})
    together = finetune.finetune(*args, [0, 1], HP, num_labels=2, seed_loop=seed_loop)
    alone = finetune.finetune(*args, [1], HP, num_labels=2, seed_loop=seed_loop)
    np.testing.assert_allclose(alone.logits["validation"][0], together.logits["validation"][1],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(alone.final_loss[0], together.final_loss[1], rtol=1e-3, atol=1e-5)


def test_seed_loop_choice():
    assert finetune.resolve_seed_loop("auto", None) == ("map" if jax.default_backend() == "cpu" else "vmap")
    assert finetune.resolve_seed_loop("auto", object()) == "vmap"  # a sharded seed axis is never looped
    assert finetune.resolve_seed_loop("map", None) == "map"
    with pytest.raises(ValueError, match="seed_loop must be one of"):
        finetune.resolve_seed_loop("pmap", None)


def test_pairs_fit_and_every_example_is_scored(example, tok):
    train = tok("mrpc", "train")
    evals = {"validation": tok("mrpc", "validation"), "train": train,
             "test": tok("mrpc", "test")}
    runs = finetune.finetune(example["config"], example["params"], train, evals, [0, 1], HP,
                             num_labels=2)
    assert {s: runs.logits[s].shape[1] for s in evals} == {
        "validation": SIZES["validation"], "train": SIZES["train"], "test": SIZES["test"]}
    assert np.isfinite(runs.logits["test"]).all()  # unlabelled test rows are scored too
    for i in range(2):  # word overlap of two segments: the training pairs are fitted
        acc = metrics.compute_metrics("mrpc", runs.logits["train"][i], train["labels"])["accuracy"]
        assert acc >= 70.0, acc


def test_regression_steps_match_torch(example, tok, tmp_path):
    """Two AdamW steps (one full, one partial batch) on STS-B pairs equal transformers' +
    torch.optim.AdamW + linear decay + clipping, with dropout off so both are deterministic."""
    torch = pytest.importorskip("torch")
    import transformers

    from jax_bert import hf_io

    config = example["config"].replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                       num_labels=1)
    full = tok("stsb", "train")
    train = {k: v[:24] for k, v in full.items()}
    val = tok("stsb", "validation")
    hp = finetune.HParams(learning_rate=1e-3, batch_size=16, epochs=1, weight_decay=0.01,
                          eval_batch_size=32)
    runs = finetune.finetune(config, example["params"], train, {"validation": val}, [0, 1], hp,
                             num_labels=1)
    assert runs.steps == 2 and not runs.failed.any()

    seed = 1
    init, _ = finetune.init_seeds(config, finetune.base_params(example["params"]), [seed], hp, 2)
    hf_io.save_hf(config, jax.tree.map(lambda x: np.asarray(x[0]), init), str(tmp_path / "t"))
    model = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / "t"))
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (2 - s) / 2))
    order = finetune.epoch_order(24, seed, 0)
    model.train()
    for rows in (order[:16], order[16:]):
        batch = {k: torch.tensor(train[k][rows]).long() for k in finetune.INPUT_KEYS}
        out = model(**batch, labels=torch.tensor(train["labels"][rows]).float())
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        ref = model(**{k: torch.tensor(val[k]).long() for k in finetune.INPUT_KEYS}).logits
    ours = runs.logits["validation"][runs.seeds.index(seed)]
    assert np.abs(ours - init_logits(config, init, val)).max() > 1e-3  # training moved it
    np.testing.assert_allclose(ours, ref.numpy(), rtol=2e-4, atol=2e-4)


def init_logits(config, params, d):
    return finetune.predict(config, params, d, 32)[0]


def test_sparse_masks_stay_zero_and_a_diverged_seed_is_left_out(example, tok):
    rng = np.random.default_rng(0)
    params = jax.tree.map(np.asarray, example["params"])
    sparse_paths = []

    def sparsify(path, x):
        if path.startswith("bert/encoder/") and path.endswith("kernel") or path.endswith(
                "word_embeddings/embedding"):
            sparse_paths.append(path)
            return np.where(rng.random(x.shape) < 0.6, 0.0, x).astype(x.dtype)
        return x

    sparse = sparsity.map_with_path(sparsify, params)
    masks = finetune.find_masks(finetune.base_params(sparse))
    assert sorted(masks) == sorted(sparse_paths)
    # Seed 1's learning rate is 1e30 times too large: it diverges, seed 0 must not notice.
    runs = finetune.finetune(example["config"], sparse, tok("sst2", "train"),
                             {"validation": tok("sst2", "validation")}, [0, 1], HP,
                             num_labels=2, lr_scale=[1.0, 1e30], keep_params=True)
    assert runs.failed.tolist() == [False, True]
    assert "non-finite" in runs.errors[1] and 0 not in runs.errors
    assert runs.masked_tensors == len(sparse_paths)
    trained = dict(sparsity.named_leaves(jax.tree.map(lambda x: np.asarray(x[0]), runs.params)))
    for path, keep in masks.items():
        w = trained[path]
        assert np.all(w[~keep] == 0.0), path  # exactly zero after every step
        assert np.any(w[keep] != np.asarray(dict(sparsity.named_leaves(sparse))[path])[keep])
    assert runs.sparsity[0] >= 100 * sum((~m).sum() for m in masks.values()) / sum(
        x.size for p, x in sparsity.named_leaves(finetune.base_params(sparse))
        if not p.startswith("bert/pooler")) - 1e-9
    acc = metrics.compute_metrics("sst2", runs.logits["validation"][0],
                                  tok("sst2", "validation")["labels"])["accuracy"]
    assert acc >= 80.0, acc


# ------------------------------------------------------------------ the command line

def test_cli_end_to_end(example, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    # Seed 1 diverges (lr x 1e30) in every task: it must be recorded as failed and left out.
    monkeypatch.setattr(run.finetune, "finetune",
                        functools.partial(finetune.finetune, lr_scale=[1.0, 1e30]))
    rc = run.main(["--checkpoint", str(example["ckpt"]), "--data_dir", str(example["data_dir"]),
                   "--tasks", "cola,rte,mrpc", "--seeds", "2", "--out", str(out),
                   "--test_predictions"] + CLI_HP)
    err = capsys.readouterr().err
    assert rc == 1  # rte has no data: that task failed, the others finished
    assert "rte failed" in err and "rte/train-00000-of-00001.parquet" in err
    assert (out / "errors" / "rte.txt").is_file()
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"cola", "mrpc"}
    for task in ("cola", "mrpc"):
        assert [r["status"] for r in results["runs"][task]] == ["ok", "failed"]
        info = json.loads((out / "metrics" / task / "seed0.json").read_text())
        assert info["scored"] == {"validation": SIZES["validation"]}
        lines = (out / "predictions" / task / "seed0.validation.jsonl").read_text().splitlines()
        assert len(lines) == SIZES["validation"]
        rows = [json.loads(x) for x in lines]
        assert sorted(r["idx"] for r in rows) == list(range(SIZES["validation"]))
        preds = np.array([r["prediction"] for r in rows])
        labels = np.array([r["label"] for r in rows])
        assert info["metrics"] == pytest.approx(dict(metrics.compute_metrics(task, preds, labels)))
        sub = (out / "submission" / get_task(task).submissions["test"]).read_text().splitlines()
        assert sub[0] == "index\tprediction" and len(sub) == 1 + SIZES["test"]
    cola_mcc = results["runs"]["cola"][0]["metrics"]["matthews_correlation"]
    assert cola_mcc > 60.0  # the cue-word rule is learned through the CLI too
    table = (out / "results.md").read_text()
    assert "| checkpoint |" in table and "failed (diverged) runs left out: cola 1, mrpc 1" in table
    assert f"{cola_mcc:.2f}" in table
    assert (out / "results.csv").read_text().startswith("model,average_bert")
    assert results["extras"]["sparsity"] == pytest.approx(
        float(finetune.body_sparsity(finetune.base_params(example["params"]))))

    # --report_only: several models in one table.
    other = tmp_path / "other"
    other.mkdir()
    results["model"] = "second_model"
    (other / "results.json").write_text(json.dumps(results))
    rc = run.main(["--report_only", "--out", str(out), "--out", str(other), "--csv",
                   str(tmp_path / "both.csv")])
    printed = capsys.readouterr().out
    assert rc == 0 and "| checkpoint |" in printed and "| second_model |" in printed
    assert len((tmp_path / "both.csv").read_text().splitlines()) == 3


def test_work_directory_checkpoint_gives_perplexity(example, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(example["ckpt"], work / "hf")
    (work / "eval_results.json").write_text(json.dumps(
        {"step": 10, "eval_loss": 2.138, "perplexity": 8.482, "eval_blocks": 3}))
    config, params, tokenizer, extras, name = run.load_checkpoint(str(work))
    assert extras == {"eval_loss": 2.138, "perplexity": 8.482} and name == "work"
    assert config == example["config"]


@pytest.mark.parametrize("args, message", [
    (["--tasks", "cola,nope"], "valid tasks are: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli"),
    (["--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["--config.tasks.cola.epoch=3"], "unknown config key 'tasks.cola.epoch'"),
    (["--config.learning_rate=fast"], "config key 'learning_rate'"),
    (["--data_dir", "/nonexistent/glue"], "--data_dir /nonexistent/glue is not a directory"),
    (["--config.seed_loop=pmap"], "seed_loop must be one of ('auto', 'vmap', 'map'), got 'pmap'"),
])
def test_bad_input_is_one_clear_error(example, capsys, args, message):
    rc = run.main(["--checkpoint", str(example["ckpt"])] + args)
    assert rc == 2
    assert message in capsys.readouterr().err


def test_checkpoint_without_tokenizer_is_an_error(example, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(example["ckpt"] / f, bare / f)
    rc = run.main(["--checkpoint", str(bare), "--tasks", "cola"])
    err = capsys.readouterr().err
    assert rc == 2 and "has no tokenizer" in err and str(bare) in err


def test_missing_task_files_are_named(example):
    with pytest.raises(ValueError, match="rte.*(RTE/train.tsv|rte/train-00000-of-00001.parquet)"):
        data.load_task("rte", example["data_dir"])


def test_config_file_per_task_overrides(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text("def get_config():\n"
                    "    return {'learning_rate': 3e-5, 'tasks': {'rte': {'epochs': 2, "
                    "'batch_size': 8, 'runs': 4}}}\n")
    config = run.load_config(str(path), ["tasks.cola.learning_rate=1e-5"])
    hp, max_length, seeds = run.task_settings(config, "rte")
    assert (hp.learning_rate, hp.epochs, hp.batch_size, max_length, seeds) == (
        3e-5, 2, 8, 128, [0, 1, 2, 3])
    hp, _, seeds = run.task_settings(config, "cola", seeds=3)
    assert (hp.learning_rate, hp.epochs, hp.batch_size, hp.weight_decay, seeds) == (
        1e-5, 5, 32, 0.0, [0, 1, 2])
    hp, _, seeds = run.task_settings(run.default_config(), "mrpc")
    assert (hp.learning_rate, hp.epochs, len(seeds)) == (2e-5, 5, 3)
