"""GLUE fine-tuning vmapped over seeds (glue/finetune.py), the job (glue/run.py), its settings
(glue/config.py) and its command line (scripts/glue.py).

Everything is offline: synthetic GLUE data and a tiny random BERT (glue.synthetic.make_offline_example).
The tests share one model config and hyperparameters so the compiled steps are reused.
"""
import functools
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

import sparsity
from glue import config as glue_config
from glue import data, finetune, metrics, report, run, synthetic
from glue.tasks import get_task
from helpers import ROOT, subprocess_env
from jax_bert.finetune import HParams, batching, engine, learning_rates, steps_per_epoch
from jax_bert.finetune.seeds import resolve_seed_loop
from jax_bert.model import body
from jax_bert.train.config import load_config_file

TASKS = ("sst2", "cola", "mrpc", "stsb")
# 250 training rows: the last batch of each epoch (250 = 15 * 16 + 10) is partial; 48 validation
# rows with eval batch 32: the last eval batch is padded.
SIZES = {"train": 250, "validation": 48, "test": 8}
MAX_LEN = 32


def hparams(**changes) -> HParams:
    """glue/config.py's defaults (sst2's epochs), with `changes`."""
    return finetune.task_hparams(glue_config.get_config(), "sst2", **changes)


HP = hparams(learning_rate=3e-3, batch_size=16, epochs=8, eval_batch_size=32)
# The same settings for the job: as a ConfigDict (glue.run.main) and as the script's flags.
JOB = {"learning_rate": 3e-3, "batch_size": 16, "max_length": MAX_LEN, "eval_batch_size": 32,
       "tasks": {"cola": {"epochs": 8}, "mrpc": {"epochs": 8}}}
CLI_HP = ["--config.learning_rate=3e-3", "--config.batch_size=16", f"--config.max_length={MAX_LEN}",
          "--config.eval_batch_size=32", "--config.tasks.cola.epochs=8",
          "--config.tasks.mrpc.epochs=8", "--no_progress"]
SCRIPT = os.path.join(ROOT, "scripts", "glue.py")


def job_config(**changes):
    return glue_config.with_overrides(changes, glue_config.with_overrides(JOB))


def run_script(args, timeout=600):
    """scripts/glue.py in a child process (sharing the tests' compilation cache)."""
    env = subprocess_env()
    env["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir
    return subprocess.run([sys.executable, SCRIPT, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue_ft")
    data_dir, ckpt = synthetic.make_offline_example(root, TASKS, SIZES)
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
    """Seeds 0 and 1 of the learnable single-sentence task, trained together (every step at its own
    shape: a run this short would otherwise run all its steps at one, see plan_shapes)."""
    return engine.finetune(example["config"], example["params"], tok("sst2", "train"),
                             {"validation": tok("sst2", "validation")}, [0, 1], HP,
                             num_labels=2, shape_min_steps=0)


# ------------------------------------------------------------------ the loss

def test_weighted_loss_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 6)
    weights = np.array([1, 1, 1, 1, 0, 0], np.float32)  # two padding rows
    ours = float(engine.weighted_loss(logits, labels, weights))
    ref = torch.nn.CrossEntropyLoss()(torch.tensor(logits[:4]), torch.tensor(labels[:4])).item()
    assert ours == pytest.approx(ref, rel=1e-6)
    scores = rng.uniform(0, 5, 6).astype(np.float32)
    ours = float(engine.weighted_loss(logits[:, :1], scores, weights))
    ref = torch.nn.MSELoss()(torch.tensor(logits[:4, 0]), torch.tensor(scores[:4])).item()
    assert ours == pytest.approx(ref, rel=1e-6)


def test_batches_cover_every_example_once_per_epoch():
    orders = np.stack([batching.epoch_order(37, s, 2) for s in (0, 1)])
    assert not np.array_equal(orders[0], orders[1])  # each seed its own order
    seen = [[], []]
    for i in range(steps_per_epoch(37, 8)):
        rows, weights = batching.batch_indices(orders, i, 8)
        assert rows.shape == weights.shape == (2, 8)
        for s in range(2):
            seen[s] += rows[s][weights[s] == 1].tolist()
    assert sorted(seen[0]) == sorted(seen[1]) == list(range(37))


def test_length_buckets():
    assert batching.bucket_lengths(128, 4) == (32, 64, 96, 128)
    assert batching.bucket_lengths(128, 1) == (128,)
    assert batching.bucket_lengths(32, 4) == (8, 16, 24, 32)
    assert batching.bucket_lengths(100, 4) == (32, 56, 80, 100)  # multiples of 8, capped at max_length
    assert batching.bucket_lengths(16, 8) == (8, 16)
    with pytest.raises(ValueError, match="length_buckets must be >= 1"):
        batching.bucket_lengths(128, 0)
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    assert batching.real_lengths(mask).tolist() == [3, 6, 0, 1]
    assert batching.bucket_for(np.array([3, 9, 16]), (8, 16, 24)) == 16
    assert batching.bucket_for(np.array([17]), (8, 16, 24)) == 24
    with pytest.raises(ValueError, match="more than the longest bucket 24"):
        batching.bucket_for(np.array([25]), (8, 16, 24))
    data = {"input_ids": np.arange(24).reshape(4, 6), "attention_mask": mask, "token_type_ids": mask * 0,
            "labels": np.array([5, 6, 7, 8])}
    batch = batching.gather_batch(data, np.array([[3, 1]]), np.ones((1, 2), np.float32), length=4)
    assert batch["input_ids"].tolist() == [[[18, 19, 20, 21], [6, 7, 8, 9]]]
    assert batch["labels"].tolist() == [[8, 6]] and batch["attention_mask"].shape == (1, 2, 4)


def test_rare_shapes_run_at_a_larger_common_one():
    needs = [(16, 192)] * 81 + [(16, 224)] * 4 + [(24, 192)] * 15 + [(24, 240)] * 6 + [(32, 192)] * 5 + [(32, 256)] * 17
    plan = batching.plan_shapes(needs, few=0)
    assert all(plan[n][0] >= n[0] and plan[n][1] >= n[1] for n in needs)  # every step fits its shape
    assert plan[(16, 224)] == (24, 240) and plan[(32, 192)] == (32, 256)  # the cheapest holder
    assert plan[(24, 240)] == (24, 240)  # 10 of 128 steps after the merge: not rare (5%)
    assert set(plan.values()) == {(16, 192), (24, 192), (24, 240), (32, 256)}
    # With few=64 (the default) shapes of fewer than 64 steps merge on: (32, 256) then has 47 steps and
    # nothing holds it, and running (16, 192)'s 81 steps there too wastes 81 x 64 tokens, less than 64
    # steps of 256 tokens: one shape (one compilation) for the whole run.
    assert set(batching.plan_shapes(needs).values()) == {(32, 256)}
    # MNLI's shapes at full size: the rare ones join a holder; (128, 2048) has none, and a shape holding
    # it and another would waste too much, so it stays.
    mnli = {(64, 1280): 11, (96, 1152): 125, (96, 1536): 13635, (96, 1920): 32, (128, 1536): 22586, (128, 2048): 427}
    plan = batching.plan_shapes([k for k, n in mnli.items() for _ in range(n)])
    assert set(plan.values()) == {(96, 1536), (128, 1536), (128, 2048)} and plan[(96, 1920)] == (128, 2048)
    # A shape compiled for an earlier task holds a rare one; a common shape keeps its own.
    plan = batching.plan_shapes([(16, 100)] * 2 + [(16, 200)] * 98, compiled={(16, 128), (32, 512)})
    assert plan == {(16, 100): (16, 128), (16, 200): (16, 200)}
    assert batching.plan_shapes([(8, 64)]) == {(8, 64): (8, 64)}  # nothing holds it: its own


def test_learning_rates_are_transformers_linear_schedule():
    torch = pytest.importorskip("torch")
    import transformers

    hp = hparams(learning_rate=3e-5, warmup_steps=3)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-5)
    sched = transformers.get_linear_schedule_with_warmup(opt, 3, 11)
    ref = []
    for _ in range(11):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_array_equal(learning_rates(hp, 11), np.asarray(ref, np.float32))


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


@pytest.fixture(scope="module")
def sst2_padded(example, tok):
    """sst2_runs' seeds with every batch padded to max_length and every position computed."""
    return engine.finetune(example["config"], example["params"], tok("sst2", "train"),
                             {"validation": tok("sst2", "validation")}, [0, 1], HP, num_labels=2,
                             length_buckets=1, pack_tokens=False)


@pytest.mark.parametrize("pack_tokens", [True, False])
def test_bucketed_training_equals_padding_to_max_length(example, tok, sst2_runs, sst2_padded, pack_tokens):
    """Batches padded to their bucket, with the dense layers on packed tokens (the default) or on every
    position, train what batches padded to max_length train."""
    padded = sst2_padded
    runs = sst2_runs if pack_tokens else engine.finetune(
        example["config"], example["params"], tok("sst2", "train"), {"validation": tok("sst2", "validation")},
        [0, 1], HP, num_labels=2, pack_tokens=False, shape_min_steps=0)
    assert padded.bucket_steps == {MAX_LEN: padded.steps} and padded.positions == padded.steps * 16 * MAX_LEN
    assert len(runs.bucket_steps) >= 2 and min(runs.bucket_steps) < MAX_LEN  # really bucketed
    assert runs.real_tokens <= runs.positions < (0.5 if pack_tokens else 1) * padded.positions
    np.testing.assert_allclose(runs.logits["validation"], padded.logits["validation"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(runs.final_loss, padded.final_loss, rtol=1e-3, atol=1e-6)
    labels = tok("sst2", "validation")["labels"]
    for i in range(2):
        assert (metrics.compute_metrics("sst2", padded.logits["validation"][i], labels)
                == metrics.compute_metrics("sst2", runs.logits["validation"][i], labels))


def test_packed_batches_hold_every_real_token_once(example, tok):
    train = tok("mrpc", "train")
    lengths = batching.real_lengths(train["attention_mask"])
    rows = np.stack([batching.epoch_order(len(lengths), s, 0)[:16] for s in (0, 1)])
    weights = np.ones(rows.shape, np.float32)
    weights[1, -3:] = 0  # filling rows keep only their first token
    length, tokens = batching.step_shape(lengths, rows, weights, (MAX_LEN,), pack_tokens=True)
    batch = batching.pack_batch(train, lengths, rows, weights, length, tokens)
    real = np.minimum(lengths[rows], MAX_LEN)
    real[1, -3:] = 1
    assert batch["input_ids"].shape == (2, tokens) and tokens % (16 * 8) == 0
    assert tokens == batching.token_budget(real.sum(1).max(), 16, MAX_LEN) < 16 * MAX_LEN
    for s in range(2):
        slots = batch["token_slot"][s][batch["token_slot"][s] < 16 * MAX_LEN]
        assert len(slots) == real[s].sum()
        ids = train["input_ids"][rows[s]]
        np.testing.assert_array_equal(batch["input_ids"][s][:len(slots)], ids[slots // MAX_LEN, slots % MAX_LEN])


def test_eval_logits_at_bucketed_lengths_equal_padding_to_max_length(example, tok):
    """Scored shortest first at each batch's bucket, every example gets its max_length logits back in place,
    on rows cut to lengths from 2 to MAX_LEN (pairs, so token types change inside each row)."""
    d = dict(tok("mrpc", "validation"))
    cut = np.random.default_rng(1).integers(2, MAX_LEN + 1, len(d["input_ids"]))
    keep = np.arange(MAX_LEN)[None, :] < cut[:, None]
    d = {k: np.where(keep, v, 0) if k in batching.INPUT_KEYS else v for k, v in d.items()}
    assert len({batching.bucket_for(np.array([n]), (8, 16, 24, 32)) for n in cut}) == 4
    config = example["config"].replace(num_labels=2)
    params, _ = engine.init_seeds(config, engine.base_params(example["params"]), [0, 1], HP)
    params["classifier"]["kernel"] = params["classifier"]["kernel"] * 100  # logits of order 1, not 0.02
    full = engine.predict(config, params, d, 16)
    bucketed = engine.predict(config, params, d, 16, buckets=batching.bucket_lengths(MAX_LEN, 4))
    np.testing.assert_allclose(bucketed, full, rtol=1e-5, atol=1e-5)
    # rows differ by 100x the tolerance, so a row scored into the wrong place would fail the comparison
    assert np.abs(full).max() > 0.5 and np.abs(full[0, 1:] - full[0, :-1]).max() > 1e-3


def test_tasks_share_the_compiled_steps(example):
    """The step does not depend on a task's lr, epochs, batch size or step count (the lr is an input),
    so tasks with the same model and seed count reuse its compiled buckets."""
    config = example["config"].replace(num_labels=2)
    a = engine._optimizer_key(hparams(learning_rate=1e-3, epochs=3, batch_size=16))
    b = engine._optimizer_key(hparams(learning_rate=2e-5, epochs=5, batch_size=32, warmup_steps=7))
    assert engine._train_step(config, a, "map") is engine._train_step(config, b, "map")
    c = engine._optimizer_key(hparams(weight_decay=0.01))
    assert engine._train_step(config, c, "map") is not engine._train_step(config, a, "map")


def test_bfloat16_compute_trains_with_buckets(example, tok):
    runs = engine.finetune(example["config"].replace(dtype="bfloat16"), example["params"],
                             tok("sst2", "train"), {"validation": tok("sst2", "validation")}, [0], HP,
                             num_labels=2, log_every=16, shape_min_steps=0)
    assert len(runs.bucket_steps) >= 2 and not runs.failed.any()
    assert runs.loss_log[-1][1][0] < 0.5 * runs.loss_log[0][1][0]  # the loss falls
    acc = metrics.compute_metrics("sst2", runs.logits["validation"][0], tok("sst2", "validation")["labels"])
    assert acc["accuracy"] >= 90.0, acc


@pytest.mark.parametrize("seed_loop", ["vmap", "map"])
def test_seeds_together_equal_each_seed_alone(example, tok, seed_loop):
    """Both ways of running seeds in one step (vmap, lax.map) give a seed what it gets alone."""
    args = (example["config"], example["params"], tok("sst2", "train"),
            {"validation": tok("sst2", "validation")})
    together = engine.finetune(*args, [0, 1], HP, num_labels=2, seed_loop=seed_loop)
    alone = engine.finetune(*args, [1], HP, num_labels=2, seed_loop=seed_loop)
    np.testing.assert_allclose(alone.logits["validation"][0], together.logits["validation"][1],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(alone.final_loss[0], together.final_loss[1], rtol=1e-3, atol=1e-5)


def test_seed_loop_choice():
    assert resolve_seed_loop("auto", None) == ("map" if jax.default_backend() == "cpu" else "vmap")
    assert resolve_seed_loop("auto", object()) == "vmap"  # a sharded seed axis is never looped
    assert resolve_seed_loop("map", None) == "map"
    with pytest.raises(ValueError, match="seed_loop must be one of"):
        resolve_seed_loop("pmap", None)


def test_pairs_fit_and_every_example_is_scored(example, tok):
    train = tok("mrpc", "train")
    evals = {"validation": tok("mrpc", "validation"), "train": train,
             "test": tok("mrpc", "test")}
    runs = engine.finetune(example["config"], example["params"], train, evals, [0, 1], HP,
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

    from jax_bert.model import hf_io

    config = example["config"].replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                       num_labels=1)
    full = tok("stsb", "train")
    train = {k: v[:24] for k, v in full.items()}
    val = tok("stsb", "validation")
    hp = hparams(learning_rate=1e-3, batch_size=16, epochs=1, weight_decay=0.01, eval_batch_size=32)
    runs = engine.finetune(config, example["params"], train, {"validation": val}, [0, 1], hp,
                             num_labels=1)
    assert runs.steps == 2 and not runs.failed.any()

    seed = 1
    init, _ = engine.init_seeds(config, engine.base_params(example["params"]), [seed], hp)
    hf_io.save_hf(config, jax.tree.map(lambda x: np.asarray(x[0]), init), str(tmp_path / "t"))
    model = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / "t"))
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (2 - s) / 2))
    order = batching.epoch_order(24, seed, 0)
    model.train()
    for rows in (order[:16], order[16:]):
        batch = {k: torch.tensor(train[k][rows]).long() for k in batching.INPUT_KEYS}
        out = model(**batch, labels=torch.tensor(train["labels"][rows]).float())
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        ref = model(**{k: torch.tensor(val[k]).long() for k in batching.INPUT_KEYS}).logits
    ours = runs.logits["validation"][runs.seeds.index(seed)]
    assert np.abs(ours - init_logits(config, init, val)).max() > 1e-3  # training moved it
    np.testing.assert_allclose(ours, ref.numpy(), rtol=2e-4, atol=2e-4)


def init_logits(config, params, d):
    return engine.predict(config, params, d, 32)[0]


def sparse_checkpoint(params):
    """(params with 60% of every encoder kernel and the word embeddings zeroed, those paths)."""
    rng = np.random.default_rng(0)
    sparse_paths = []

    def sparsify(path, x):
        if path.startswith("bert/encoder/") and path.endswith("kernel") or path.endswith(
                "word_embeddings/embedding"):
            sparse_paths.append(path)
            return np.where(rng.random(x.shape) < 0.6, 0.0, x).astype(x.dtype)
        return x

    return sparsity.map_with_path(sparsify, jax.tree.map(np.asarray, params)), sparse_paths


def test_sparse_masks_stay_zero_and_a_diverged_seed_is_left_out(example, tok):
    sparse, sparse_paths = sparse_checkpoint(example["params"])
    masks = engine.find_masks(engine.base_params(sparse))
    assert sorted(masks) == sorted(sparse_paths)
    # Seed 1's learning rate is 1e30 times too large: it diverges, seed 0 must not notice.
    runs = engine.finetune(example["config"], sparse, tok("sst2", "train"),
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
        x.size for p, x in sparsity.named_leaves(engine.base_params(sparse))
        if not p.startswith("bert/pooler")) - 1e-9
    acc = metrics.compute_metrics("sst2", runs.logits["validation"][0],
                                  tok("sst2", "validation")["labels"])["accuracy"]
    assert acc >= 80.0, acc


def test_without_keep_masks_pruned_weights_regrow(example, tok):
    """keep_masks off (the original's sparse GLUE rows): nothing holds the zeros, so they move."""
    sparse, sparse_paths = sparse_checkpoint(example["params"])
    hp = hparams(learning_rate=3e-3, batch_size=16, epochs=1, eval_batch_size=32)
    runs = engine.finetune(example["config"], sparse, tok("sst2", "train"),
                             {"validation": tok("sst2", "validation")}, [0], hp, num_labels=2,
                             use_masks=False, keep_params=True)
    assert runs.masked_tensors == 0
    trained = dict(sparsity.named_leaves(jax.tree.map(lambda x: np.asarray(x[0]), runs.params)))
    for path in sparse_paths:
        pruned = np.asarray(dict(sparsity.named_leaves(sparse))[path]) == 0
        # Every pruned weight that got a gradient has moved (AdamW's first step is +-lr wherever the
        # gradient is nonzero); rows of the embedding for tokens never seen stay 0.
        assert np.mean(trained[path][pruned] != 0) > (0.01 if "embeddings" in path else 0.9), path


# ------------------------------------------------------------------ the job (glue.run.main)

def check_task_outputs(out, task, seeds_ok):
    """metrics/, predictions/ and submission/ of a finished task; seeds_ok: the seeds that trained."""
    results = json.loads((out / "results.json").read_text())
    for seed in seeds_ok:
        info = json.loads((out / "metrics" / task / f"seed{seed}.json").read_text())
        assert info["scored"] == {"validation": SIZES["validation"]}
        lines = (out / "predictions" / task / f"seed{seed}.validation.jsonl").read_text().splitlines()
        assert len(lines) == SIZES["validation"]
        rows = [json.loads(x) for x in lines]
        assert sorted(r["idx"] for r in rows) == list(range(SIZES["validation"]))
        preds = np.array([r["prediction"] for r in rows])
        labels = np.array([r["label"] for r in rows])
        assert info["metrics"] == pytest.approx(dict(metrics.compute_metrics(task, preds, labels)))
    sub = (out / "submission" / get_task(task).submissions["test"]).read_text().splitlines()
    assert sub[0] == "index\tprediction" and len(sub) == 1 + SIZES["test"]
    return results


def test_job_end_to_end(example, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    # Seed 1 diverges (lr x 1e30) in every task: it must be recorded as failed and left out.
    monkeypatch.setattr(run.finetune, "finetune",
                        functools.partial(engine.finetune, lr_scale=[1.0, 1e30]))
    rc = run.main(job_config(), checkpoint=str(example["ckpt"]), data_dir=str(example["data_dir"]),
                  tasks="cola,rte,mrpc", seeds=2, out=str(out), test_predictions=True, progress=False)
    err = capsys.readouterr().err
    assert rc == 1  # rte has no data: that task failed, the others finished
    assert "rte failed" in err and "rte/train-00000-of-00001.parquet" in err
    assert (out / "errors" / "rte.txt").is_file()
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"cola", "mrpc"}
    for task in ("cola", "mrpc"):
        assert [r["status"] for r in results["runs"][task]] == ["ok", "failed"]
        check_task_outputs(out, task, [0])
    cola_mcc = results["runs"]["cola"][0]["metrics"]["matthews_correlation"]
    assert cola_mcc > 60.0  # the cue-word rule is learned through the job too
    table = (out / "results.md").read_text()
    assert "| checkpoint |" in table and "failed (diverged) runs left out: cola 1, mrpc 1" in table
    assert f"{cola_mcc:.2f}" in table
    assert (out / "results.csv").read_text().startswith("model,average_bert")
    assert results["settings"] == {"keep_masks": True}
    assert f"| {results['extras']['sparsity']:.2f} | kept |" in table
    # The other keep_masks setting into the same --out is refused before any task runs.
    rc = run.main(job_config(keep_masks=False), checkpoint=str(example["ckpt"]), tasks="cola", seeds=2,
                  data_dir=str(example["data_dir"]), out=str(out), progress=False)
    assert rc == 2 and "holds runs fine-tuned with keep_masks=True" in capsys.readouterr().err
    assert results["extras"]["sparsity"] == pytest.approx(
        float(body.body_sparsity(engine.base_params(example["params"]))))
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


def test_job_passes_keep_masks_and_length_buckets(example, tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_finetune(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(run.finetune, "finetune", fake_finetune)
    rc = run.main(job_config(keep_masks=False, length_buckets=2), checkpoint=str(example["ckpt"]),
                  tasks="cola", data_dir=str(example["data_dir"]), out=str(tmp_path), progress=False)
    assert rc == 1 and "stop here" in capsys.readouterr().err
    assert seen["use_masks"] is False and seen["length_buckets"] == 2
    assert report.load_results(tmp_path)["settings"] == {"keep_masks": False}
    assert "may regrow" in report.build_report([tmp_path])


def test_work_directory_checkpoint_gives_perplexity(example, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(example["ckpt"], work / "hf")
    (work / "eval_results.json").write_text(json.dumps(
        {"step": 10, "eval_loss": 2.138, "perplexity": 8.482, "eval_blocks": 3}))
    config, params, tokenizer, extras, name = run.load_checkpoint(str(work))
    assert extras == {"eval_loss": 2.138, "perplexity": 8.482} and name == "work"
    assert config == example["config"]


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
def test_bad_input_is_one_clear_error(example, capsys, kwargs, changes, message):
    rc = run.main(job_config(**changes), **{"checkpoint": str(example["ckpt"])} | kwargs)
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_checkpoint_without_tokenizer_is_an_error(example, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(example["ckpt"] / f, bare / f)
    rc = run.main(glue_config.get_config(), checkpoint=str(bare), tasks="cola")
    err = capsys.readouterr().err
    assert rc == 2 and "has no tokenizer" in err and str(bare) in err


def test_missing_task_files_are_named(example):
    with pytest.raises(ValueError, match="rte.*(RTE/train.tsv|rte/train-00000-of-00001.parquet)"):
        data.load_task("rte", example["data_dir"])


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


# ------------------------------------------------------------------ the script, in a child process

@pytest.mark.slow
def test_script_end_to_end(example, tmp_path):
    out = tmp_path / "out"
    res = run_script(["--checkpoint", str(example["ckpt"]), "--data_dir", str(example["data_dir"]),
                      "--tasks", "cola,rte", "--seeds", "2", "--out", str(out), "--test_predictions"] + CLI_HP)
    assert res.returncode == 1, res.stderr[-3000:]  # rte has no data: that task failed, cola finished
    assert "rte failed" in res.stderr and "rte/train-00000-of-00001.parquet" in res.stderr
    assert (out / "errors" / "rte.txt").is_file()
    results = check_task_outputs(out, "cola", [0, 1])
    assert set(results["runs"]) == {"cola"}
    assert [r["status"] for r in results["runs"]["cola"]] == ["ok", "ok"]
    assert min(r["metrics"]["matthews_correlation"] for r in results["runs"]["cola"]) > 60.0
    assert "| checkpoint |" in res.stdout and res.stdout.strip() in (out / "results.md").read_text()

    res = run_script(["--report_only", "--out", str(out), "--out", str(out), "--csv", str(tmp_path / "t.csv")])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| checkpoint |" in res.stdout and (tmp_path / "t.csv").is_file()


@pytest.mark.slow
def test_script_config_file_with_per_task_overrides(example, tmp_path):
    (tmp_path / "cfg.py").write_text(CONFIG_FILE)
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    res = run_script(["--checkpoint", str(example["ckpt"]), "--config", str(tmp_path / "cfg.py"),
                      "--config.tasks.cola.learning_rate=1e-5", "--tasks", "rte,cola,mrpc",
                      "--data_dir", str(tmp_path / "empty"), "--out", str(out), "--no_progress"])
    assert res.returncode == 1 and "No rte data in" in res.stderr  # no data: every task fails, after the config
    settings = json.loads((out / "glue_config.json").read_text())["settings"]
    got = {t: (s["learning_rate"], s["epochs"], s["batch_size"], s["max_length"], s["seeds"])
           for t, s in settings.items()}
    assert got == {"rte": (3e-5, 2, 8, 128, 4), "cola": (1e-5, 5, 32, 128, 10), "mrpc": (3e-5, 5, 32, 128, 3)}


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--config.tasks.cola.epoch=3"], "unknown config key 'tasks.cola.epoch'"),
    (["--config.learning_rate=fast"], "--config.learning_rate=fast: could not convert string to float: 'fast'"),
    (["--config", "/nonexistent/cfg.py"], "--config /nonexistent/cfg.py: no such file"),
    (["--config.tasks.rte.batch_size=0"], "rte: batch_size must be >= 1, got 0"),
])
def test_script_bad_input_is_one_line_and_exit_2(example, args, message):
    res = run_script(["--checkpoint", str(example["ckpt"])] + args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
