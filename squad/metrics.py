"""SQuAD scores exactly as the official evaluation scripts compute them (v1.1 and v2.0).

Answer normalisation: lower case, drop ASCII punctuation (string.punctuation), drop the articles
a / an / the as whole words, collapse whitespace. EM: the normalised prediction equals a normalised
gold answer; F1: the bag-of-tokens F1 of the normalised texts; both take the max over the gold answers
and are averaged over questions, in percent.

v1.1 (`evaluate_v1`): every question of the data set counts; one without a prediction scores 0.
v2.0 (`evaluate_v2`): a question whose gold answers all normalise to nothing is unanswerable and its
only gold answer is ''; an empty prediction abstains. A question without a prediction is left out of
the totals (the official script skips it). With `na_probs` (the model's "no answer" score per
question) it also finds the best threshold, as the official script's --na-prob-file does: the EM / F1
reached if every question scoring above the threshold abstained.
"""
from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Mapping

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the official order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def exact_match(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str, version: str = "2.0") -> float:
    """Token F1. When either side has no tokens, v2.0 gives 1 if both have none, else 0 (empty answers
    are v2.0's abstentions); v1.1 gives 0 (its script has no such case: 'the' against 'a' is EM 1, F1 0)."""
    pred, ref = _tokens(prediction), _tokens(gold)
    if not pred or not ref:
        return float(pred == ref) if version == "2.0" else 0.0
    same = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(prediction: str, golds: Iterable[str], version: str = "2.0") -> tuple[int, float]:
    """(EM, F1) of one prediction: each the max over the gold answers."""
    golds = list(golds)
    return max(exact_match(prediction, g) for g in golds), max(f1(prediction, g, version) for g in golds)


def questions(dataset) -> dict[str, list[str]]:
    """{question id: gold answer texts} of a data set in the official format (the list under "data")."""
    articles = dataset["data"] if isinstance(dataset, Mapping) else dataset
    return {qa["id"]: [a["text"] for a in qa["answers"]]
            for article in articles for paragraph in article["paragraphs"] for qa in paragraph["qas"]}


def evaluate_v1(golds: Mapping[str, list[str]], predictions: Mapping[str, str]) -> dict:
    """{'exact_match', 'f1', 'total', 'answered'} in percent over every question of `golds`."""
    em = f = 0.0
    unanswerable = [q for q, answers in golds.items() if not answers]
    if unanswerable:
        raise ValueError(f"SQuAD v1.1 scores questions with gold answers only; {len(unanswerable)} have none "
                         f"(e.g. {unanswerable[0]!r}): score this data as version 2.0.")
    for qid, answers in golds.items():
        if qid in predictions:
            e, s = best_over_golds(predictions[qid], answers, "1.1")
            em, f = em + e, f + s
    total = len(golds)
    return {"exact_match": 100.0 * em / total, "f1": 100.0 * f / total, "total": total,
            "answered": sum(q in predictions for q in golds)}


def _mean(scores: Mapping[str, float], qids) -> float:
    return 100.0 * sum(scores[q] for q in qids) / len(qids)


def best_threshold(predictions, scores, na_probs, has_answer) -> tuple[float, float]:
    """(best score in percent, its threshold): abstaining on every question whose na_prob is above the
    threshold, scanned over the na_probs in increasing order (the official find_best_thresh)."""
    score = best = sum(not has_answer[q] for q in has_answer)
    thresh = 0.0
    for qid in sorted(na_probs, key=lambda q: na_probs[q]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            score += scores[qid]
        elif predictions[qid]:
            score -= 1
        if score > best:
            best, thresh = score, na_probs[qid]
    return 100.0 * best / len(scores), thresh


def evaluate_v2(golds: Mapping[str, list[str]], predictions: Mapping[str, str],
                na_probs: Mapping[str, float] | None = None, na_prob_thresh: float = 1.0) -> dict:
    """The official v2.0 numbers: exact, f1, total, HasAns_* and NoAns_* (when there are such questions)
    and, with na_probs, best_exact / best_f1 and their thresholds. A question whose na_prob is above
    na_prob_thresh counts as abstaining."""
    has_answer = {q: bool(a) for q, a in golds.items()}
    exact, f1s = {}, {}
    for qid, answers in golds.items():
        if qid not in predictions:
            continue  # the official script skips it: it counts nowhere
        answers = [a for a in answers if normalize_answer(a)] or [""]
        exact[qid], f1s[qid] = best_over_golds(predictions[qid], answers)
    probs = {q: 0.0 for q in predictions} if na_probs is None else na_probs

    def thresholded(scores):
        return {q: float(not has_answer[q]) if probs[q] > na_prob_thresh else s for q, s in scores.items()}

    exact_t, f1_t = thresholded(exact), thresholded(f1s)
    out = {"exact": _mean(exact_t, list(exact_t)), "f1": _mean(f1_t, list(f1_t)), "total": len(exact_t)}
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [q for q in exact_t if has_answer[q] is wanted]
        if qids:
            out.update({f"{name}_exact": _mean(exact_t, qids), f"{name}_f1": _mean(f1_t, qids),
                        f"{name}_total": len(qids)})
    if na_probs is not None:
        out["best_exact"], out["best_exact_thresh"] = best_threshold(predictions, exact, na_probs, has_answer)
        out["best_f1"], out["best_f1_thresh"] = best_threshold(predictions, f1s, na_probs, has_answer)
    out["answered"] = len(exact)
    return out


def evaluate(version: str, golds, predictions, na_probs=None) -> dict:
    """evaluate_v1 or evaluate_v2 by version ('1.1' or '2.0'); golds as `questions` returns them."""
    if version == "1.1":
        return evaluate_v1(golds, predictions)
    if version == "2.0":
        return evaluate_v2(golds, predictions, na_probs)
    raise ValueError(f"SQuAD version must be '1.1' or '2.0', got {version!r}.")
