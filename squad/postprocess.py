"""Answers from start / end logits, as Hugging Face's utils_qa.postprocess_qa_predictions (run_qa).

For each question, over all its features: the `n_best` highest start and end logits of each feature
give candidate spans (both ends in the context, end not before start, at most `max_answer_length`
tokens), scored start + end logit; the best candidate's context text is the answer. SQuAD v2.0 adds the
null answer (the least start + end logit at [CLS] over the features): the question is left unanswered
('') when the null score beats the best span's by more than `null_threshold`. That difference is the
question's "no answer" score (`na_scores`), which the official v2.0 evaluation uses to find the best
threshold.
"""
from __future__ import annotations

import collections

import numpy as np


def _spans(start_logits, end_logits, offsets, n_best: int, max_answer_length: int):
    """The candidate spans of one feature: [(score, start char, end char, start logit, end logit)]."""
    starts = np.argsort(start_logits)[-1:-n_best - 1:-1]
    ends = np.argsort(end_logits)[-1:-n_best - 1:-1]
    out = []
    for s in starts:
        if offsets[s, 0] < 0:
            continue
        for e in ends:
            if offsets[e, 0] < 0 or e < s or e - s + 1 > max_answer_length:
                continue
            out.append((start_logits[s] + end_logits[e], int(offsets[s, 0]), int(offsets[e, 1]),
                        start_logits[s], end_logits[e]))
    return out


def answers(rows: list[dict], features: dict, start_logits: np.ndarray, end_logits: np.ndarray,
            version: str = "1.1", n_best: int = 20, max_answer_length: int = 30,
            null_threshold: float = 0.0) -> tuple[dict[str, str], dict[str, float]]:
    """({question id: answer text}, {question id: null score minus best span score}) for every row.

    start_logits, end_logits: [F, length] per feature of `features` (squad.features.prepare), length up
    to the features' max_length. The no-answer scores are only computed for v2.0 (else empty)."""
    by_row = collections.defaultdict(list)
    for f, r in enumerate(features["example_index"]):
        by_row[int(r)].append(f)
    predictions, na_scores = {}, {}
    width = start_logits.shape[1]
    for r, row in enumerate(rows):
        candidates, null = [], None
        for f in by_row.get(r, ()):
            s_log, e_log = np.asarray(start_logits[f], np.float64), np.asarray(end_logits[f], np.float64)
            score = s_log[0] + e_log[0]
            if null is None or null[0] > score:
                null = (score, 0, 0, s_log[0], e_log[0])
            candidates += _spans(s_log, e_log, features["offsets"][f, :width], n_best, max_answer_length)
        if version == "2.0" and null is not None:
            candidates.append(null)
        ranked = sorted(candidates, key=lambda c: c[0], reverse=True)[:n_best]
        if version == "2.0" and null is not None and not any(c[1:3] == (0, 0) for c in ranked):
            ranked.append(null)
        texts = [row["context"][c[1]:c[2]] for c in ranked]
        if not texts or (len(texts) == 1 and texts[0] == ""):
            ranked.insert(0, (0.0, 0, 0, 0.0, 0.0))
            texts.insert(0, "empty")  # run_qa's answer when there is no candidate at all
        if version != "2.0":
            predictions[row["id"]] = texts[0]
            continue
        best = next(i for i, t in enumerate(texts) if t != "")
        diff = float(null[0] - ranked[best][3] - ranked[best][4])
        na_scores[row["id"]] = diff
        predictions[row["id"]] = "" if diff > null_threshold else texts[best]
    return predictions, na_scores
