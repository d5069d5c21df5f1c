"""SQuAD on the shared engine with the span head: every seed in one compiled step gives each seed what
it gets alone, the length bucket changes nothing, a sparse checkpoint keeps its zeros, and the job writes
its outputs (results, official-format predictions, tables) and scores them as squad.metrics does."""
import json

import jax
import numpy as np
import pytest

from jax_bert import model
from jax_bert.finetune import HParams, finetune
from jax_bert.finetune.heads import SPAN
from squad import config as squad_config
from squad import data, features, metrics, run, synthetic

HP = HParams(learning_rate=1e-3, batch_size=4, epochs=1, weight_decay=0.01, warmup_steps=2, clip=1.0, b1=0.9,
             b2=0.999, eps=1e-8, eval_batch_size=16, sparse_threshold=0.1)


@pytest.fixture(scope="module")
def tiny():
    tok = synthetic.tokenizer()
    config = model.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=48, max_position_embeddings=64)
    params = jax.device_get(model.init_params(config, jax.random.key(0), head="mlm"))
    rows = data.flatten(synthetic.make_dataset(24, 0, "2.0", long_share=0.0), "synthetic")
    feats = features.prepare(tok, rows, 64, 16)
    return tok, config, params, rows, feats


def _split(feats, labelled=True, rows=slice(None)):
    return {k: feats[k][rows] for k in features.INPUT_KEYS + (("labels",) if labelled else ())}


def test_seeds_together_equal_alone_at_any_bucket_and_sparse_zeros_stay(tiny):
    _, config, params, _, feats = tiny
    kernel = np.asarray(params["bert"]["encoder"]["layer_0"]["intermediate"]["dense"]["kernel"]).copy()
    kernel[::2] = 0.0  # half the rows: a sparse checkpoint
    sparse = jax.tree.map(np.asarray, params)
    sparse["bert"]["encoder"]["layer_0"]["intermediate"]["dense"]["kernel"] = kernel
    evals = {"validation": _split(feats, False)}
    # Short features and a few full ones, so that training steps run at several buckets.
    lengths = feats["attention_mask"].sum(1)
    rows = np.sort(np.concatenate([np.flatnonzero(lengths <= 40), np.flatnonzero(lengths > 40)[:4]]))
    train = _split(feats, rows=rows)
    both = finetune(config, sparse, train, evals, (0, 1), HP, head=SPAN, length_buckets=3, keep_params=True,
                    shape_min_steps=1)
    alone = finetune(config, sparse, train, evals, (1,), HP, head=SPAN, length_buckets=1)
    assert both.logits["validation"].shape == (2, len(feats["input_ids"]), 64, 2)
    assert len(both.bucket_steps) > 1  # several buckets were used
    # The qa_outputs bias gets no gradient (a softmax is shift-invariant), so Adam turns rounding noise into
    # a shift of a whole logit column; compare what the answers depend on: logits relative to position 0.
    real = feats["attention_mask"] != 0
    both_rel, alone_rel = (x - x[..., :1, :] for x in (both.logits["validation"], alone.logits["validation"]))
    np.testing.assert_allclose(both_rel[1][real], alone_rel[0][real], atol=2e-5)
    assert not np.allclose(both_rel[0][real], both_rel[1][real], atol=1e-3)
    np.testing.assert_allclose(both.final_loss[1], alone.final_loss[0], rtol=1e-5)
    tuned = np.asarray(both.params["bert"]["encoder"]["layer_0"]["intermediate"]["dense"]["kernel"])
    assert both.masked_tensors == 1 and np.all(tuned[:, ::2] == 0) and np.any(tuned[:, 1::2] != kernel[1::2])
    assert "pooler" not in both.params["bert"] and set(both.params) == {"bert", "qa_outputs"}


def test_bad_span_labels_are_refused(tiny):
    _, config, params, _, feats = tiny
    labels = feats["labels"].copy()
    labels[3] = (5, 2)  # end before start
    train = dict(_split(feats), labels=labels)
    with pytest.raises(ValueError, match="start <= end"):
        finetune(config, params, train, {}, (0,), HP, head=SPAN)


def test_the_job_writes_scored_official_predictions(tmp_path):
    data_dir, ckpt = synthetic.make_offline_example(tmp_path, "2.0", train=24, validation=12, hidden=32, layers=1)
    config = squad_config.get_config()
    config.update(max_length=64, doc_stride=16, batch_size=8, epochs=1, learning_rate=1e-3, eval_batch_size=16)
    squad_config.validate(config)
    assert run.main(config, checkpoint=str(ckpt), seeds=2, version="2.0", data_dir=str(data_dir),
                    out=str(tmp_path / "out"), progress=False) == 0
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    rows = data.load("2.0", data_dir)["validation"]
    assert results["questions"] == len(rows) == 12 and [r["seed"] for r in results["runs"]] == [0, 1]
    for r in results["runs"]:
        preds = json.loads((out / "predictions" / f"seed{r['seed']}.json").read_text())
        na = json.loads((out / "na_scores" / f"seed{r['seed']}.json").read_text())
        assert set(preds) == {row["id"] for row in rows} and all(isinstance(t, str) for t in preds.values())
        assert r["metrics"] == pytest.approx(metrics.evaluate_v2(data.golds(rows), preds, na))
        assert r["metrics"]["answered"] == 12
    table = (out / "results.md").read_text()
    assert "mean ± std (2 of 2 seeds)" in table and "12/12" in table and "best (seed" in table
    assert (out / "results.csv").read_text().startswith("model,version,body sparsity %,row,")


@pytest.mark.parametrize("change,message", [
    (dict(doc_stride=200), "doc_stride (200) must be below half of max_length"),
    (dict(nope=1), "unknown SQuAD config keys ['nope']"),
    (dict(learning_rate=float("nan")), "learning_rate must be a finite float"),
    (dict(dtype="float16"), "dtype must be one of"),
])
def test_bad_config_is_named(change, message):
    config = squad_config.get_config()
    with config.unlocked():
        config.update(change)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        squad_config.validate(config)


def test_missing_data_is_one_line(tmp_path):
    with pytest.raises(data.SquadDataError, match="missing .*train-v1.1.json"):
        data.load("1.1", tmp_path)


def test_bfloat16_compute_gives_finite_logits_close_to_float32(tiny):
    """--config.dtype=bfloat16: the span head trains (params and loss stay float32) and its logits are those of
    float32 to bf16's precision; the answers' ranking depends on logits relative to each other."""
    _, config, params, _, feats = tiny
    train, evals = _split(feats, rows=slice(0, 16)), {"validation": _split(feats, False, rows=slice(0, 16))}
    runs = {dtype: finetune(config.replace(dtype=dtype), params, train, evals, (0,), HP, head=SPAN, length_buckets=1)
            for dtype in ("float32", "bfloat16")}
    real = feats["attention_mask"][:16] != 0
    rel = {d: (r.logits["validation"] - r.logits["validation"][..., :1, :])[0][real] for d, r in runs.items()}
    assert not runs["bfloat16"].failed.any() and np.isfinite(runs["bfloat16"].logits["validation"]).all()
    diff = np.abs(rel["bfloat16"] - rel["float32"])
    scale = np.abs(rel["float32"]).max()
    print(f"bf16 vs fp32: max |diff| {diff.max():.4f}, mean {diff.mean():.4f}, logit scale {scale:.3f}")
    assert diff.max() < 0.05 * scale and diff.mean() < 0.01 * scale
    assert not np.array_equal(rel["bfloat16"], rel["float32"])  # bf16 did compute in bf16
    np.testing.assert_allclose(runs["bfloat16"].final_loss, runs["float32"].final_loss, rtol=0.02)


def test_packed_tokens_change_no_number(tiny):
    """The span head on packed tokens (the body computes only the real tokens) trains and scores as on padded
    batches: the same losses, the same logits at every real position, at several buckets, with dropout."""
    _, config, params, _, feats = tiny
    lengths = feats["attention_mask"].sum(1)
    rows = np.sort(np.concatenate([np.flatnonzero(lengths <= 40), np.flatnonzero(lengths > 40)[:4]]))
    train, evals = _split(feats, rows=rows), {"validation": _split(feats, False)}
    runs = {packed: finetune(config, params, train, evals, (0, 1), HP, head=SPAN, length_buckets=3,
                             pack_tokens=packed, shape_min_steps=1) for packed in (True, False)}
    assert len(runs[True].bucket_steps) > 1 and not runs[True].failed.any()
    assert config.hidden_dropout_prob > 0  # the dropout masks are drawn per padded position either way
    np.testing.assert_allclose(runs[True].final_loss, runs[False].final_loss, rtol=1e-5)
    np.testing.assert_allclose([loss for _, loss in runs[True].loss_log], [loss for _, loss in runs[False].loss_log],
                               rtol=1e-5)
    real = feats["attention_mask"] != 0
    rel = {p: r.logits["validation"] - r.logits["validation"][..., :1, :] for p, r in runs.items()}
    np.testing.assert_allclose(rel[True][:, real], rel[False][:, real], atol=2e-5)
    assert np.all(runs[True].logits["validation"][:, ~real] == 0)  # padding positions are never computed
