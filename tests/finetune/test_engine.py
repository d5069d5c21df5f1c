"""The fine-tuning engine (jax_bert/finetune: engine.py, seeds.py, hparams.py) on the shared offline GLUE
example (conftest.glue_example: synthetic tasks, a tiny random BERT): the loss and the learning rates
against torch / transformers, training every seed of a task in one program (bucketed and packed batches
equal padded ones, seeds together equal each seed alone, pairs, regression against torch, bfloat16), and
sparse checkpoints (the masks kept, or not).

The tests share one model config and hyperparameters so the compiled steps are reused.
"""
import dataclasses
import functools

import jax
import numpy as np
import pytest

import sparsity
from glue import config as glue_config
from glue import finetune, metrics
from jax_bert.finetune import HParams, batching, engine, heads, learning_rates
from jax_bert.finetune.seeds import resolve_seed_loop

MAX_LEN = 32


def hparams(**changes) -> HParams:
    """glue/config.py's defaults (sst2's epochs), with `changes`."""
    return finetune.task_hparams(glue_config.get_config(), "sst2", **changes)


HP = hparams(learning_rate=3e-3, batch_size=16, epochs=8, eval_batch_size=32, drop_last=False)  # every example


@pytest.fixture(scope="module")
def tok(glue_tok):
    """tok(task, split) -> that split of the shared offline GLUE example at MAX_LEN tokens."""
    return functools.partial(glue_tok, max_length=MAX_LEN)


@pytest.fixture(scope="module")
def sst2_runs(glue_example, tok):
    """Seeds 0 and 1 of the learnable single-sentence task, trained together (every step at its own
    shape: a run this short would otherwise run all its steps at one, see plan_shapes)."""
    return engine.finetune(glue_example["config"], glue_example["params"], tok("sst2", "train"),
                           {"validation": tok("sst2", "validation")}, [0, 1], HP,
                           num_labels=2, shape_min_steps=0)


# ------------------------------------------------------------------ the loss and the learning rates

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
    mse = ref = torch.nn.MSELoss()(torch.tensor(logits[:4, 0]), torch.tensor(scores[:4])).item()
    assert ours == pytest.approx(ref, rel=1e-6)
    # The shared program's form: a 2-label task in 3 columns, and regression in column 0 of 3, with finite
    # gradients (the unused branch gets none, though a 4.7 read as a class id is out of range).
    two = labels % 2
    ours = float(engine.weighted_loss(logits, two.astype(np.float32), weights, np.array([True, True, False]), False))
    ref = torch.nn.CrossEntropyLoss()(torch.tensor(logits[:4, :2]), torch.tensor(two[:4])).item()
    assert ours == pytest.approx(ref, rel=1e-6)
    regression = functools.partial(engine.weighted_loss, classes=np.array([True, False, False]), regression=True)
    ours, grad = jax.value_and_grad(regression)(logits, scores, weights)
    assert float(ours) == pytest.approx(mse, rel=1e-6)
    assert np.isfinite(grad).all() and not grad[:, 1:].any() and grad[:4, 0].all()


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

def test_single_sentence_task_is_learned(glue_example, tok, sst2_runs):
    labels = tok("sst2", "validation")["labels"]
    assert sst2_runs.logits["validation"].shape == (2, glue_example["sizes"]["validation"], 2)
    assert not sst2_runs.failed.any() and sst2_runs.errors == {}
    assert sst2_runs.steps == HP.epochs * 16  # 250 training rows at batch 16: 16 batches per epoch, the last partial
    for i in range(2):
        acc = metrics.compute_metrics("sst2", sst2_runs.logits["validation"][i], labels)["accuracy"]
        assert acc >= 90.0, acc  # the cue-word rule; chance is about 50
    assert np.all(sst2_runs.final_loss < 0.2)
    # The seeds differ (own head init, dropout, data order).
    assert not np.allclose(sst2_runs.logits["validation"][0], sst2_runs.logits["validation"][1])


@pytest.fixture(scope="module")
def sst2_padded(glue_example, tok):
    """sst2_runs' seeds with every batch padded to max_length and every position computed."""
    return engine.finetune(glue_example["config"], glue_example["params"], tok("sst2", "train"),
                           {"validation": tok("sst2", "validation")}, [0, 1], HP, num_labels=2,
                           length_buckets=1, pack_tokens=False)


@pytest.mark.parametrize("pack_tokens", [True, False])
def test_bucketed_training_equals_padding_to_max_length(glue_example, tok, sst2_runs, sst2_padded, pack_tokens):
    """Batches padded to their bucket, with the dense layers on packed tokens (the default) or on every
    position, train what batches padded to max_length train."""
    padded = sst2_padded
    runs = sst2_runs if pack_tokens else engine.finetune(
        glue_example["config"], glue_example["params"], tok("sst2", "train"), {"validation": tok("sst2", "validation")},
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



def test_eval_logits_at_bucketed_lengths_equal_padding_to_max_length(glue_example, tok):
    """Scored shortest first at each batch's bucket, every example gets its max_length logits back in place,
    on rows cut to lengths from 2 to MAX_LEN (pairs, so token types change inside each row)."""
    d = dict(tok("mrpc", "validation"))
    cut = np.random.default_rng(1).integers(2, MAX_LEN + 1, len(d["input_ids"]))
    keep = np.arange(MAX_LEN)[None, :] < cut[:, None]
    d = {k: np.where(keep, v, 0) if k in batching.INPUT_KEYS else v for k, v in d.items()}
    assert len({batching.bucket_for(np.array([n]), (8, 16, 24, 32)) for n in cut}) == 4
    config = glue_example["config"].replace(num_labels=2)
    params, _ = engine.init_seeds(config, engine.base_params(glue_example["params"]), [0, 1], HP)
    params["classifier"]["kernel"] = params["classifier"]["kernel"] * 100  # logits of order 1, not 0.02
    full = engine.predict(config, params, d, 16)
    bucketed = engine.predict(config, params, d, 16, buckets=batching.bucket_lengths(MAX_LEN, 4))
    np.testing.assert_allclose(bucketed, full, rtol=1e-5, atol=1e-5)
    # packed as training is, the last batch only as large as what is left
    assert len(d["input_ids"]) % 20 and batching.eval_shape(len(d["input_ids"]) % 20, 40, 20, 32)[0] < 20
    packed = engine.predict(config, params, d, 20, buckets=batching.bucket_lengths(MAX_LEN, 4), pack_tokens=True)
    np.testing.assert_allclose(packed, full, rtol=1e-5, atol=1e-5)
    # rows differ by 100x the tolerance, so a row scored into the wrong place would fail the comparison
    assert np.abs(full).max() > 0.5 and np.abs(full[0, 1:] - full[0, :-1]).max() > 1e-3


def test_the_classifier_padded_to_the_shared_width_trains_as_the_task_alone(glue_example, tok, monkeypatch):
    """A 2-label task in the shared 3-column programs: the extra column's logit is masked out of the
    loss, so it gets no gradient, stays exactly zero and changes nothing: the logits and the classifier
    equal those of a run whose programs have exactly 2 columns."""
    args = (glue_example["config"], glue_example["params"], tok("mrpc", "train"),
            {"validation": tok("mrpc", "validation")}, [0, 1], hparams(learning_rate=3e-3, batch_size=16, epochs=2))
    assert engine.classifier_width(1) == engine.classifier_width(2) == engine.classifier_width(3) == 3
    shared = engine.finetune(*args, num_labels=2, keep_params=True)
    monkeypatch.setattr(heads, "SHARED_CLASSES", 2)
    alone = engine.finetune(*args, num_labels=2, keep_params=True)
    assert shared.logits["validation"].shape == alone.logits["validation"].shape
    assert shared.logits["validation"].shape[-1] == 2
    np.testing.assert_allclose(shared.logits["validation"], alone.logits["validation"], rtol=1e-5, atol=1e-6)
    for k in ("kernel", "bias"):
        assert shared.params["classifier"][k].shape[-1] == 2  # cut back to the task's labels
        np.testing.assert_allclose(shared.params["classifier"][k], alone.params["classifier"][k], atol=1e-6)
    assert np.abs(shared.logits["validation"]).max() > 1e-3  # trained, not zeros


def test_tasks_share_the_compiled_steps(glue_example):
    """The step does not depend on a task's lr, epochs, batch size or step count (the lr is an input),
    so tasks with the same model and seed count reuse its compiled buckets."""
    config = glue_example["config"].replace(num_labels=2)
    a = engine._optimizer_key(hparams(learning_rate=1e-3, epochs=3, batch_size=16))
    b = engine._optimizer_key(hparams(learning_rate=2e-5, epochs=5, batch_size=32, warmup_steps=7))
    assert engine._train_step(config, a, "map") is engine._train_step(config, b, "map")
    c = engine._optimizer_key(hparams(weight_decay=0.01))
    assert engine._train_step(config, c, "map") is not engine._train_step(config, a, "map")


def test_bfloat16_compute_trains_with_buckets(glue_example, tok):
    runs = engine.finetune(glue_example["config"].replace(dtype="bfloat16"), glue_example["params"],
                           tok("sst2", "train"), {"validation": tok("sst2", "validation")}, [0], HP,
                           num_labels=2, log_every=16, shape_min_steps=0)
    assert len(runs.bucket_steps) >= 2 and not runs.failed.any()
    assert runs.loss_log[-1][1][0] < 0.5 * runs.loss_log[0][1][0]  # the loss falls
    acc = metrics.compute_metrics("sst2", runs.logits["validation"][0], tok("sst2", "validation")["labels"])
    assert acc["accuracy"] >= 90.0, acc


@pytest.mark.parametrize("seed_loop", ["vmap", "map"])
def test_seeds_together_equal_each_seed_alone(glue_example, tok, seed_loop):
    """Both ways of running seeds in one step (vmap, lax.map) give a seed what it gets alone."""
    args = (glue_example["config"], glue_example["params"], tok("sst2", "train"),
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


def test_pairs_fit_and_every_example_is_scored(glue_example, tok):
    train = tok("mrpc", "train")
    evals = {"validation": tok("mrpc", "validation"), "train": train,
             "test": tok("mrpc", "test")}
    runs = engine.finetune(glue_example["config"], glue_example["params"], train, evals, [0, 1], HP,
                           num_labels=2)
    assert {s: runs.logits[s].shape[1] for s in evals} == {s: glue_example["sizes"][s] for s in evals}
    assert np.isfinite(runs.logits["test"]).all()  # unlabelled test rows are scored too
    for i in range(2):  # word overlap of two segments: the training pairs are fitted
        acc = metrics.compute_metrics("mrpc", runs.logits["train"][i], train["labels"])["accuracy"]
        assert acc >= 70.0, acc


def test_regression_steps_match_torch(glue_example, tok, tmp_path):
    """Two AdamW steps (one full, one partial batch) on STS-B pairs equal transformers' +
    torch.optim.AdamW + linear decay + clipping, with dropout off so both are deterministic."""
    torch = pytest.importorskip("torch")
    import transformers

    from jax_bert.model import hf_io

    config = glue_example["config"].replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                       num_labels=1)
    full = tok("stsb", "train")
    train = {k: v[:24] for k, v in full.items()}
    val = tok("stsb", "validation")
    # drop_last=False: this compares the partial batch's arithmetic too (GLUE's default drops it)
    hp = hparams(learning_rate=1e-3, batch_size=16, epochs=1, weight_decay=0.01, eval_batch_size=32,
                 drop_last=False)
    runs = engine.finetune(config, glue_example["params"], train, {"validation": val}, [0, 1], hp,
                           num_labels=1)
    assert runs.steps == 2 and not runs.failed.any()
    dropped = engine.finetune(config, glue_example["params"], train, {"validation": val}, [0, 1],
                              dataclasses.replace(hp, drop_last=True), num_labels=1)
    assert dropped.steps == 1  # 24 rows at batch 16: the partial second batch is dropped

    seed = 1
    init, _ = engine.init_seeds(config, engine.base_params(glue_example["params"]), [seed], hp)
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


def test_sparse_masks_stay_zero_and_a_diverged_seed_is_left_out(glue_example, tok):
    sparse, sparse_paths = sparse_checkpoint(glue_example["params"])
    masks = engine.find_masks(engine.base_params(sparse))
    assert sorted(masks) == sorted(sparse_paths)
    # Seed 1's learning rate is 1e30 times too large: it diverges, seed 0 must not notice.
    runs = engine.finetune(glue_example["config"], sparse, tok("sst2", "train"),
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


def test_without_keep_masks_pruned_weights_regrow(glue_example, tok):
    """keep_masks off (the original's sparse GLUE rows): nothing holds the zeros, so they move."""
    sparse, sparse_paths = sparse_checkpoint(glue_example["params"])
    hp = hparams(learning_rate=3e-3, batch_size=16, epochs=1, eval_batch_size=32)
    runs = engine.finetune(glue_example["config"], sparse, tok("sst2", "train"),
                           {"validation": tok("sst2", "validation")}, [0], hp, num_labels=2,
                           use_masks=False, keep_params=True)
    assert runs.masked_tensors == 0
    trained = dict(sparsity.named_leaves(jax.tree.map(lambda x: np.asarray(x[0]), runs.params)))
    for path in sparse_paths:
        pruned = np.asarray(dict(sparsity.named_leaves(sparse))[path]) == 0
        # Every pruned weight that got a gradient has moved (AdamW's first step is +-lr wherever the
        # gradient is nonzero); rows of the embedding for tokens never seen stay 0.
        assert np.mean(trained[path][pruned] != 0) > (0.01 if "embeddings" in path else 0.9), path
