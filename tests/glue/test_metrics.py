"""GLUE metrics against sklearn/scipy, and the results files and tables (glue.report)."""
import csv
import io
import json
import math
import os
import statistics
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from glue import metrics, report, tasks


def _scipy(fn, p, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(p, y)[0])


def _random_cases(rng):
    cases = []
    for n in (1, 2, 5, 50, 333):
        for k in (2, 3):
            cases.append((rng.integers(0, k, n), rng.integers(0, k, n)))
    y = rng.integers(0, 2, 40)
    cases += [
        (y, y), (1 - y, y),                                    # perfect / inverted
        (np.zeros(40, int), y), (np.ones(40, int), y),         # constant predictions
        (y, np.zeros(40, int)), (y, np.ones(40, int)),         # one class only in labels
        (np.zeros(40, int), np.zeros(40, int)),                # no positives anywhere
        (np.ones(40, int), np.ones(40, int)),
        (np.array([2, 2, 2]), np.array([0, 1, 2])),            # multiclass, constant preds
    ]
    return cases


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    for p, y in _random_cases(rng):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert metrics.matthews_corrcoef(p, y) == pytest.approx(
                skm.matthews_corrcoef(y, p), abs=1e-12)
            assert metrics.accuracy(p, y) == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
            if max(p.max(), y.max()) <= 1:
                assert metrics.f1(p, y) == pytest.approx(
                    skm.f1_score(y, p, pos_label=1, zero_division=0), abs=1e-12)


def test_correlations_match_scipy():
    rng = np.random.default_rng(1)
    cases = [(rng.normal(size=n), rng.normal(size=n)) for n in (2, 3, 10, 500)]
    cases.append((rng.integers(0, 4, 60).astype(float), rng.integers(0, 4, 60) * 1.25))  # ties
    x = rng.uniform(0, 5, 30)
    cases += [(x, 2 * x + 1), (x, -x), (np.full(30, 2.5), x), (x, np.full(30, 3.0)),
              (np.ones(5), np.ones(5))]
    for p, y in cases:
        for ours, ref in ((metrics.pearson, stats.pearsonr), (metrics.spearman, stats.spearmanr)):
            expected = _scipy(ref, p, y)
            got = ours(p, y)
            if math.isnan(expected):
                assert math.isnan(got)
            else:
                assert got == pytest.approx(expected, abs=1e-10)
    # float32 inputs are promoted to float64 (scipy's own answer on float64 is the judge)
    p32, y32 = rng.normal(size=200).astype(np.float32), rng.normal(size=200).astype(np.float32)
    assert metrics.pearson(p32, y32) == pytest.approx(
        _scipy(stats.pearsonr, p32.astype(np.float64), y32.astype(np.float64)), abs=1e-12)


def test_compute_metrics_percentages_order_and_inputs():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    logits = rng.normal(size=(100, 2))
    pred = logits.argmax(-1)
    out = metrics.compute_metrics("mrpc", logits, y)
    assert list(out) == ["f1", "accuracy"]
    assert out["f1"] == pytest.approx(100 * skm.f1_score(y, pred))
    assert out["accuracy"] == pytest.approx(100 * skm.accuracy_score(y, pred))
    assert list(metrics.compute_metrics("qqp", pred, y)) == ["accuracy", "f1"]
    assert metrics.compute_metrics("cola", pred, y)["matthews_correlation"] == pytest.approx(
        100 * skm.matthews_corrcoef(y, pred))
    s_true, s_pred = rng.uniform(0, 5, 50), rng.uniform(0, 5, (50, 1))
    out = metrics.compute_metrics("stsb", s_pred, s_true)
    assert list(out) == ["pearson", "spearmanr"]
    assert out["spearmanr"] == pytest.approx(100 * stats.spearmanr(s_pred[:, 0], s_true)[0])
    ym, ymm = rng.integers(0, 3, 30), rng.integers(0, 3, 20)
    pm, pmm = rng.integers(0, 3, 30), rng.normal(size=(20, 3))
    out = metrics.compute_metrics(
        "mnli", {"validation_matched": pm, "validation_mismatched": pmm},
        {"validation_matched": ym, "validation_mismatched": ymm})
    assert list(out) == ["accuracy_matched", "accuracy_mismatched"]
    assert out["accuracy_matched"] == pytest.approx(100 * np.mean(pm == ym))
    assert out["accuracy_mismatched"] == pytest.approx(100 * np.mean(pmm.argmax(-1) == ymm))


def test_compute_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="test split has no labels"):
        metrics.compute_metrics("rte", np.zeros(3, int), np.full(3, -1))
    with pytest.raises(ValueError, match="test split has no labels"):
        metrics.compute_metrics("stsb", np.zeros(3), np.full(3, -1.0))
    with pytest.raises(ValueError, match="equal length"):
        metrics.compute_metrics("rte", np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(ValueError, match="zero examples"):
        metrics.accuracy([], [])
    with pytest.raises(ValueError, match="mappings"):
        metrics.compute_metrics("mnli", np.zeros(3, int), np.zeros(3, int))
    with pytest.raises(ValueError, match="3 columns, expected 2"):
        metrics.compute_metrics("rte", np.zeros((3, 3)), np.zeros(3, int))


# ---------------------------------------------------------------- report

# The bert_HF row of the original's table (docs/original.md), as best-run metrics.
HF_ROW = {"cola": [56.53], "mnli": [83.91, 84.10], "mrpc": [88.85, 84.07], "qnli": [90.66],
          "qqp": [90.71, 87.49], "rte": [65.70], "sst2": [92.32], "stsb": [88.64, 88.48],
          "wnli": [56.34]}


def _metrics(task, values):
    return dict(zip(tasks.get_task(task).metric_names, values))


def _hf_results(model="bert_HF", drop=()):
    res = report.new_results(model)
    for t, vals in HF_ROW.items():
        if t in drop:
            continue
        # a worse seed before and after the best one, so selection matters
        res = report.add_run(res, t, 0, _metrics(t, [v - 5 for v in vals]))
        res = report.add_run(res, t, 1, _metrics(t, vals))
        res = report.add_run(res, t, 2, _metrics(t, [v - 1 for v in vals]))
    return res


def test_seed_table_row_reproduced():
    row = report.summarize(_hf_results())
    scores = {t: sum(v) / len(v) for t, v in HF_ROW.items()}
    bert = sum(scores[t] for t in scores if t != "wnli") / 8
    glue = sum(scores.values()) / 9
    assert row["average_bert"] == pytest.approx(bert) and round(bert, 2) == 81.67  # docs/original.md
    assert row["average_glue"] == pytest.approx(glue) and round(glue, 2) == 78.85
    assert all(info["seed"] == 1 for info in row["tasks"].values())
    table = report.format_table([row])
    assert ("| bert_HF | 81.67 | 78.85 | 56.53 | 83.91/84.10 | 88.85/84.07 | 90.66 | "
            "90.71/87.49 | 65.70 | 92.32 | 88.64/88.48 | 56.34 |") in table
    assert "perplexity" not in table


def test_best_run_by_first_metric_and_failed_or_nan_runs():
    res = report.new_results("m")
    # MRPC: best F1 (first metric) has the worse accuracy; it is still the reported run.
    res = report.add_run(res, "mrpc", 0, {"f1": 80.0, "accuracy": 85.0})
    res = report.add_run(res, "mrpc", 1, {"f1": 82.0, "accuracy": 70.0})
    res = report.add_run(res, "mrpc", 2, error="loss became nan")
    res = report.add_run(res, "mrpc", 3, {"f1": 82.0, "accuracy": 99.0})  # tie: lower seed wins
    res = report.add_run(res, "stsb", 0, {"pearson": math.nan, "spearmanr": math.nan})
    res = report.add_run(res, "stsb", 1, {"pearson": 10.0, "spearmanr": 20.0})
    res = report.add_run(res, "wnli", 0, error="diverged")
    row = report.summarize(res)
    assert row["tasks"]["mrpc"]["seed"] == 1
    assert row["tasks"]["mrpc"]["metrics"] == {"f1": 82.0, "accuracy": 70.0}
    assert row["tasks"]["mrpc"]["n_failed"] == 1 and row["tasks"]["mrpc"]["n_ok"] == 3
    assert row["tasks"]["stsb"]["seed"] == 1
    assert "wnli" not in row["tasks"]  # all runs failed -> missing
    assert row["average_bert"] == pytest.approx(((82 + 70) / 2 + (10 + 20) / 2) / 2)
    assert row["average_glue"] == pytest.approx(row["average_bert"])
    assert row["missing_bert"] == ["cola", "sst2", "qqp", "mnli", "qnli", "rte"]
    assert "wnli" in row["missing_glue"]
    table = report.format_table([row])
    assert "average_bert leaves out missing tasks cola, sst2, qqp, mnli, qnli, rte" in table
    assert "failed (diverged) runs left out: mrpc 1" in table
    # Seed statistics use ok runs only.
    st = report.seed_statistics(res)["mrpc"]
    assert st["f1"][0] == pytest.approx(statistics.mean([80, 82, 82]))
    assert st["f1"][1] == pytest.approx(statistics.stdev([80, 82, 82]))
    assert st["accuracy"][2] == 3
    with pytest.raises(ValueError, match="lack metrics.*accuracy"):
        report.add_run(res, "mrpc", 5, {"f1": 1.0})
    with pytest.raises(ValueError, match="exactly one"):
        report.add_run(res, "mrpc", 5)


def test_results_files_roundtrip_and_multi_model_report(tmp_path):
    d1, d2 = tmp_path / "hf", tmp_path / "sparse"
    report.save_results(d1, _hf_results())
    for seed, (f1, acc) in enumerate([(86.0, 80.0), (87.29, 82.55)]):
        report.record_run(d2, "mrpc", seed, {"f1": f1, "accuracy": acc}, model="sparse")
    report.record_run(d2, "stsb", 0, {"pearson": math.nan, "spearmanr": math.nan})
    report.record_run(d2, "cola", 0, error="nan loss")
    report.set_extras(d2, perplexity=9.78, eval_loss=2.28)
    raw = (d2 / "results.json").read_text()
    json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    loaded = report.load_results(d2)
    assert loaded["model"] == "sparse" and loaded["extras"]["perplexity"] == 9.78
    assert math.isnan(loaded["runs"]["stsb"][0]["metrics"]["pearson"])
    assert loaded["runs"]["cola"][0]["status"] == "failed"
    assert report.load_results(d1) == json.loads(json.dumps(_hf_results()))
    text = report.build_report([d1, d2], csv_path=tmp_path / "t.csv")
    assert "| bert_HF | 81.67 | 78.85 |" in text
    assert "| sparse | nan | nan |" in text  # the stsb run's nan propagates honestly
    assert "87.29/82.55" in text and "| 9.780 | 2.280 |" in text
    mean = statistics.mean([86.0, 87.29])
    sd = statistics.stdev([86.0, 87.29])
    assert f"{mean:.2f}±{sd:.2f}/" in text and "[n=2]" in text
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert [r["model"] for r in rows] == ["bert_HF", "sparse"]
    assert float(rows[0]["average_bert"]) == pytest.approx(report.summarize(
        _hf_results())["average_bert"])
    assert float(rows[1]["mrpc_f1"]) == 87.29 and rows[1]["mrpc_seed"] == "1"
    assert rows[1]["perplexity"] == "9.78" and rows[0]["perplexity"] == ""
    with pytest.raises(ValueError, match="No results file"):
        report.load_results(tmp_path / "none")


def test_atomic_write_keeps_old_file_on_crash(tmp_path, monkeypatch):
    report.record_run(tmp_path, "rte", 0, {"accuracy": 60.0}, model="m")
    before = (tmp_path / "results.json").read_bytes()

    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        report.record_run(tmp_path, "rte", 1, {"accuracy": 70.0})
    monkeypatch.undo()
    assert (tmp_path / "results.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temp debris


def test_write_submission(tmp_path):
    path = report.write_submission(tmp_path, "mnli", "test_mismatched", [0, 1, 2],
                                   np.array([[0.1, 2.0, 0.0], [3.0, 0, 0], [0, 0, 1.0]]))
    assert path.name == "MNLI-mm.tsv"
    assert path.read_text().splitlines() == ["index\tprediction", "0\tneutral", "1\tentailment",
                                             "2\tcontradiction"]
    lines = report.write_submission(tmp_path, "stsb", "test", [5, 6], [-0.5, 7.25]).read_text()
    assert lines.splitlines()[1:] == ["5\t0.000", "6\t5.000"]
    assert report.write_submission(tmp_path, "cola", "test", [0], [1]).read_text().endswith(
        "0\t1\n")
    with pytest.raises(ValueError, match="no test split"):
        report.write_submission(tmp_path, "cola", "validation", [0], [1])
