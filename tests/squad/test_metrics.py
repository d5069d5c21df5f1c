"""squad.metrics against the official SQuAD evaluation scripts, transcribed below from their published
source (evaluate-v1.1.py and evaluate-v2.0.py; neither transformers nor evaluate in the lock file ships
them any more), on edge cases: Unicode, punctuation and articles, several gold answers, empty gold
answers (v2.0), missing predictions and the best no-answer threshold."""
import collections
import re
import string

import numpy as np
import pytest

from squad import metrics

# ---------------------------------------------------------------- the official scripts, as published


def off_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def off_v1_f1_score(prediction, ground_truth):
    prediction_tokens = off_normalize_answer(prediction).split()
    ground_truth_tokens = off_normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def off_v1_evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                ground_truths = [x["text"] for x in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_match += max(off_normalize_answer(prediction) == off_normalize_answer(g) for g in ground_truths)
                f1 += max(off_v1_f1_score(prediction, g) for g in ground_truths)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def off_get_tokens(s):
    if not s:
        return []
    return off_normalize_answer(s).split()


def off_compute_f1(a_gold, a_pred):
    gold_toks = off_get_tokens(a_gold)
    pred_toks = off_get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def off_v2_evaluate(dataset, preds, na_probs=None, na_prob_thresh=1.0):
    qid_to_has_ans = {qa["id"]: bool(qa["answers"]) for a in dataset for p in a["paragraphs"] for qa in p["qas"]}
    exact_raw, f1_raw = {}, {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid = qa["id"]
                gold_answers = [a["text"] for a in qa["answers"] if off_normalize_answer(a["text"])]
                if not gold_answers:
                    gold_answers = [""]
                if qid not in preds:
                    continue
                a_pred = preds[qid]
                exact_raw[qid] = max(int(off_normalize_answer(a) == off_normalize_answer(a_pred)) for a in gold_answers)
                f1_raw[qid] = max(off_compute_f1(a, a_pred) for a in gold_answers)
    probs = na_probs if na_probs is not None else {k: 0.0 for k in preds}

    def apply(scores):
        return {qid: (float(not qid_to_has_ans[qid]) if probs[qid] > na_prob_thresh else s)
                for qid, s in scores.items()}

    exact_t, f1_t = apply(exact_raw), apply(f1_raw)

    def make_eval_dict(qid_list=None):
        qids = qid_list or list(exact_t)
        return {"exact": 100.0 * sum(exact_t[k] for k in qids) / len(qids),
                "f1": 100.0 * sum(f1_t[k] for k in qids) / len(qids), "total": len(qids)}

    out = make_eval_dict()
    has = [k for k, v in qid_to_has_ans.items() if v and k in exact_t]
    no = [k for k, v in qid_to_has_ans.items() if not v and k in exact_t]
    if has:
        out.update({f"HasAns_{k}": v for k, v in make_eval_dict(has).items()})
    if no:
        out.update({f"NoAns_{k}": v for k, v in make_eval_dict(no).items()})

    def find_best_thresh(scores):
        num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
        cur_score = num_no_ans
        best_score = cur_score
        best_thresh = 0.0
        for qid in sorted(probs, key=lambda k: probs[k]):
            if qid not in scores:
                continue
            if qid_to_has_ans[qid]:
                diff = scores[qid]
            else:
                diff = -1 if preds[qid] else 0
            cur_score += diff
            if cur_score > best_score:
                best_score = cur_score
                best_thresh = probs[qid]
        return 100.0 * best_score / len(scores), best_thresh

    if na_probs is not None:
        out["best_exact"], out["best_exact_thresh"] = find_best_thresh(exact_raw)
        out["best_f1"], out["best_f1_thresh"] = find_best_thresh(f1_raw)
    return out


# ---------------------------------------------------------------- the cases

CASES = [  # (gold answers, prediction)
    (["Zürich"], "zürich"),
    (["Straße von Gibraltar"], "die Straße"),
    (["東京 タワー"], "東京"),
    (["Ελλάδα!"], "ελλάδα"),
    (["The Eiffel Tower"], "eiffel tower."),
    (["an apple a day"], "apple day"),
    (["the the the"], "a"),  # normalises to nothing on both sides
    (["Denver Broncos", "the Broncos", "Broncos"], "Broncos"),
    (["1,000", "one thousand"], "1000"),
    (["Saint-Étienne"], "SaintÉtienne"),
    (["café   au\tlait"], "cafe au lait"),  # an accent is not punctuation
    (["New York City"], "new york city new york"),
    (["«quoted»"], "quoted"),  # non-ASCII quotes are kept by the official normalisation
    (["x"], ""),
    (["£5"], "5"),
    (["the answer"], "answer the"),
]


@pytest.mark.parametrize("golds,prediction", CASES)
def test_one_question_matches_the_official_scripts(golds, prediction):
    data = [{"paragraphs": [{"qas": [{"id": "q", "answers": [{"text": g} for g in golds]}]}]}]
    same = off_normalize_answer(prediction) == off_normalize_answer(golds[0])
    assert metrics.exact_match(prediction, golds[0]) == same
    v1 = metrics.evaluate_v1(metrics.questions(data), {"q": prediction})
    ref = off_v1_evaluate(data, {"q": prediction})
    assert (v1["exact_match"], v1["f1"]) == (ref["exact_match"], ref["f1"])
    v2 = metrics.evaluate_v2(metrics.questions(data), {"q": prediction})
    ref2 = off_v2_evaluate(data, {"q": prediction})
    assert {k: v2[k] for k in ref2} == ref2


def test_known_values():
    assert metrics.normalize_answer("The  Quick, brown FOX!") == "quick brown fox"
    assert metrics.f1("new york city new york", "New York City") == pytest.approx(2 * 0.6 * 1 / 1.6)
    assert metrics.best_over_golds("Broncos", ["Denver Broncos", "the Broncos"]) == (1, 1.0)
    assert metrics.f1("", "") == 1.0 and metrics.f1("x", "") == 0.0
    assert metrics.f1("the", "a", "1.1") == 0.0 and metrics.exact_match("the", "a") == 1


def _random_dataset(seed, n=60):
    """Questions with 0 to 3 gold answers drawn from a small vocabulary (Unicode and punctuation
    included), predictions that overlap them by chance, some questions unanswered, random na_probs."""
    rng = np.random.default_rng(seed)
    words = ["the", "a", "an", "Zürich", "東京", "river", "River,", "stone", "café", "12", "-", "naïve", "Ωmega", "."]
    qas, preds, probs = [], {}, {}

    def text():
        return " ".join(rng.choice(words, rng.integers(0, 4)))

    for i in range(n):
        qid = f"q{i}"
        qas.append({"id": qid, "answers": [{"text": text()} for _ in range(rng.integers(0, 4))]})
        if rng.random() < 0.9:
            preds[qid] = text()
            probs[qid] = float(np.round(rng.random(), 2))  # ties in na_prob included
    return [{"paragraphs": [{"qas": qas}]}], preds, probs


@pytest.mark.parametrize("seed", range(5))
def test_random_sets_match_the_official_scripts(seed):
    data, preds, probs = _random_dataset(seed)
    golds = metrics.questions({"data": data})
    answerable = [{"paragraphs": [{"qas": [qa for qa in data[0]["paragraphs"][0]["qas"] if qa["answers"]]}]}]
    v1 = metrics.evaluate_v1(metrics.questions(answerable), preds)
    ref1 = off_v1_evaluate(answerable, preds)
    assert v1["exact_match"] == pytest.approx(ref1["exact_match"], abs=1e-12)
    assert v1["f1"] == pytest.approx(ref1["f1"], abs=1e-12)
    n_answerable = len(answerable[0]["paragraphs"][0]["qas"])
    assert v1["total"] == n_answerable < 60 and 0 < v1["answered"] < n_answerable
    with pytest.raises(ValueError, match="version 2.0"):
        metrics.evaluate_v1(golds, preds)
    for na in (None, probs):
        for thresh in (1.0, 0.5):
            ours = metrics.evaluate_v2(golds, preds, na, thresh)
            ref = off_v2_evaluate(data, preds, na, thresh)
            assert set(ref) <= set(ours)
            assert {k: ours[k] for k in ref} == pytest.approx(ref, abs=1e-12)
    assert metrics.evaluate_v2(golds, preds, probs)["NoAns_total"] > 0  # the cases include unanswerable ones


def test_unknown_version_is_one_clear_error():
    with pytest.raises(ValueError, match="'1.1' or '2.0'"):
        metrics.evaluate("3.0", {}, {})
