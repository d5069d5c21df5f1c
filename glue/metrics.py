"""GLUE metrics in numpy/scipy, returned as percentages (x100) like the original's table.

The single-metric functions return fractions in [-1, 1] / [0, 1]; `compute_metrics` multiplies by
100. Degenerate cases follow the reference libraries (the tests check against them):
  * matthews_corrcoef: 0.0 when either the labels or the predictions are a single class
    (sklearn's behaviour).
  * f1 (binary, positive class 1): 0.0 when there are no true or predicted positives
    (sklearn's `zero_division=0`).
  * pearson / spearman of a constant input: nan (scipy's behaviour; scipy also warns, we do not).
    A nan metric sorts below every number when the report picks the best seed.
"""
from __future__ import annotations

import collections
from typing import Mapping

import numpy as np
from scipy import stats

from glue.tasks import get_task


def _pair(predictions, labels):
    p, y = np.asarray(predictions), np.asarray(labels)
    if p.ndim != 1 or y.ndim != 1 or p.shape != y.shape:
        raise ValueError(
            f"predictions and labels must be 1-D of equal length, got shapes {p.shape} and "
            f"{y.shape}.")
    if p.size == 0:
        raise ValueError("Cannot compute a metric on zero examples.")
    return p, y


def accuracy(predictions, labels) -> float:
    p, y = _pair(predictions, labels)
    return float(np.mean(p == y))


def f1(predictions, labels) -> float:
    """Binary F1 of the positive class 1; 0.0 when undefined (sklearn zero_division=0)."""
    p, y = _pair(predictions, labels)
    tp = float(np.sum((p == 1) & (y == 1)))
    fp = float(np.sum((p == 1) & (y != 1)))
    fn = float(np.sum((p != 1) & (y == 1)))
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 else 2 * tp / denom


def matthews_corrcoef(predictions, labels) -> float:
    """Multiclass MCC (Gorodkin's R_K, as sklearn computes it) from the confusion matrix."""
    p, y = _pair(predictions, labels)
    classes, inv = np.unique(np.concatenate([y, p]), return_inverse=True)
    k, n = len(classes), len(y)
    conf = np.zeros((k, k), dtype=np.float64)
    np.add.at(conf, (inv[:n], inv[n:]), 1.0)
    t_sum, p_sum = conf.sum(axis=1), conf.sum(axis=0)
    correct, total = np.trace(conf), conf.sum()
    cov_tp = correct * total - t_sum @ p_sum
    cov_pp = total ** 2 - p_sum @ p_sum
    cov_tt = total ** 2 - t_sum @ t_sum
    denom = cov_pp * cov_tt
    return 0.0 if denom == 0 else float(cov_tp / np.sqrt(denom))


def _constant(x) -> bool:
    return bool(np.all(x == x[0]))


def _correlation(statistic, predictions, labels) -> float:
    p, y = _pair(predictions, labels)
    p, y = p.astype(np.float64), y.astype(np.float64)
    if len(p) < 2 or _constant(p) or _constant(y):
        return float("nan")
    return float(statistic(p, y)[0])


def pearson(predictions, labels) -> float:
    """Pearson r in float64; nan if either input is constant (as scipy.stats.pearsonr)."""
    return _correlation(stats.pearsonr, predictions, labels)


def spearman(predictions, labels) -> float:
    """Spearman rho (average ranks for ties); nan if either input is constant (as scipy)."""
    return _correlation(stats.spearmanr, predictions, labels)


_FUNCTIONS = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews_correlation": matthews_corrcoef,
    "pearson": pearson,
    "spearmanr": spearman,
}


def _as_predictions(task, predictions):
    """Class ids from ids or [N, num_labels] logits; STS-B scores from [N] or [N, 1]."""
    p = np.asarray(predictions)
    if task.is_regression:
        if p.ndim == 2 and p.shape[1] == 1:
            p = p[:, 0]
        return p.astype(np.float64)
    if p.ndim == 2:
        if p.shape[1] != task.num_labels:
            raise ValueError(
                f"{task.name}: logits have {p.shape[1]} columns, expected {task.num_labels}.")
        return np.argmax(p, axis=-1)
    return p


def _check_labels(task, labels, split=""):
    y = np.asarray(labels)
    where = f" ({split})" if split else ""
    if task.is_regression:
        if y.size and (np.any(~np.isfinite(y)) or np.any(y < 0)):
            raise ValueError(
                f"{task.name}{where}: labels must be finite scores >= 0; a test split has no "
                "labels (they are -1) and cannot be scored.")
    elif y.size and (np.any(y < 0) or np.any(y >= task.num_labels)):
        raise ValueError(
            f"{task.name}{where}: labels must lie in [0, {task.num_labels}); a test split has no "
            "labels (they are -1) and cannot be scored.")
    return y


def compute_split_metrics(task, predictions, labels) -> "collections.OrderedDict[str, float]":
    """Metrics of one validation split, as percentages, in Task.metrics_per_split order."""
    task = get_task(task) if isinstance(task, str) else task
    y = _check_labels(task, labels)
    p = _as_predictions(task, predictions)
    return collections.OrderedDict(
        (name, 100.0 * _FUNCTIONS[name](p, y)) for name in task.metrics_per_split)


def compute_metrics(task, predictions, labels) -> "collections.OrderedDict[str, float]":
    """The task's metrics (Task.metric_names order) as percentages (x100, like the original's table).

    predictions: class ids [N], logits [N, num_labels], or STS-B scores [N] / [N, 1].
    For MNLI pass mappings split -> array for both validation splits, e.g.
    {"validation_matched": ..., "validation_mismatched": ...}; the result is
    {"accuracy_matched": ..., "accuracy_mismatched": ...}.
    """
    task = get_task(task) if isinstance(task, str) else task
    if len(task.validation_splits) == 1:
        if isinstance(predictions, Mapping) or isinstance(labels, Mapping):
            raise ValueError(f"{task.name} has one validation split: pass arrays, not mappings.")
        return compute_split_metrics(task, predictions, labels)
    if not (isinstance(predictions, Mapping) and isinstance(labels, Mapping)):
        raise ValueError(
            f"{task.name} has validation splits {task.validation_splits}: pass predictions and "
            "labels as mappings split -> array.")
    out = collections.OrderedDict()
    for split, name in zip(task.validation_splits, task.metric_names):
        if split not in predictions or split not in labels:
            raise ValueError(f"{task.name}: missing validation split {split!r} in the inputs.")
        _check_labels(task, labels[split], split)
        out[name] = compute_split_metrics(task, predictions[split], labels[split])["accuracy"]
    return out


def validation_metrics(task, predictions: Mapping, labels: Mapping) -> "collections.OrderedDict[str, float]":
    """`compute_metrics` from mappings split -> array that hold (at least) every validation split."""
    task = get_task(task) if isinstance(task, str) else task
    if len(task.validation_splits) == 1:
        (split,) = task.validation_splits
        return compute_metrics(task, predictions[split], labels[split])
    return compute_metrics(task, {s: predictions[s] for s in task.validation_splits},
                           {s: labels[s] for s in task.validation_splits})
