"""squad.features and squad.postprocess against Hugging Face's run_qa, transcribed below from its
prepare_train_features / prepare_validation_features and utils_qa.postprocess_qa_predictions, on
synthetic SQuAD data with contexts longer than a window (several features, answers at window edges),
Unicode, and v2.0 unanswerable questions."""
import collections
import functools

import numpy as np
import pytest

from squad import data, features, postprocess, synthetic

MAX_LENGTH, STRIDE = 48, 16


@functools.lru_cache(maxsize=None)
def _tokenizer():
    return synthetic.tokenizer()


def _rows(version, n=40, seed=0):
    return data.flatten(synthetic.make_dataset(n, seed, version, long_share=0.3), "synthetic")


# ---------------------------------------------------------------- run_qa, as published

def hf_train_labels(tokenizer, rows):
    enc = tokenizer([r["question"].lstrip() for r in rows], [r["context"] for r in rows], truncation="only_second",
                    max_length=MAX_LENGTH, stride=STRIDE, return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding="max_length")
    starts, ends = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        input_ids = enc["input_ids"][i]
        cls_index = input_ids.index(tokenizer.cls_token_id)
        sequence_ids = enc.sequence_ids(i)
        answers = rows[enc["overflow_to_sample_mapping"][i]]["answers"]
        if len(answers["answer_start"]) == 0:
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        token_start_index = 0
        while sequence_ids[token_start_index] != 1:
            token_start_index += 1
        token_end_index = len(input_ids) - 1
        while sequence_ids[token_end_index] != 1:
            token_end_index -= 1
        if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
            starts.append(cls_index)
            ends.append(cls_index)
        else:
            while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                token_start_index += 1
            starts.append(token_start_index - 1)
            while offsets[token_end_index][1] >= end_char:
                token_end_index -= 1
            ends.append(token_end_index + 1)
    return enc, np.stack([starts, ends], axis=1)


def hf_postprocess(rows, enc, all_start_logits, all_end_logits, version_2_with_negative, n_best_size=20,
                   max_answer_length=30, null_score_diff_threshold=0.0):
    offset_maps = [[o if enc.sequence_ids(i)[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])]
                   for i in range(len(enc["input_ids"]))]
    features_per_example = collections.defaultdict(list)
    for i, r in enumerate(enc["overflow_to_sample_mapping"]):
        features_per_example[r].append(i)
    all_predictions, scores_diff_json = {}, {}
    for example_index, example in enumerate(rows):
        min_null_prediction = None
        prelim_predictions = []
        for feature_index in features_per_example[example_index]:
            start_logits = all_start_logits[feature_index]
            end_logits = all_end_logits[feature_index]
            offset_mapping = offset_maps[feature_index]
            feature_null_score = start_logits[0] + end_logits[0]
            if min_null_prediction is None or min_null_prediction["score"] > feature_null_score:
                min_null_prediction = {"offsets": (0, 0), "score": feature_null_score,
                                       "start_logit": start_logits[0], "end_logit": end_logits[0]}
            start_indexes = np.argsort(start_logits)[-1: -n_best_size - 1: -1].tolist()
            end_indexes = np.argsort(end_logits)[-1: -n_best_size - 1: -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if (start_index >= len(offset_mapping) or end_index >= len(offset_mapping)
                            or offset_mapping[start_index] is None or len(offset_mapping[start_index]) < 2
                            or offset_mapping[end_index] is None or len(offset_mapping[end_index]) < 2):
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    prelim_predictions.append({
                        "offsets": (offset_mapping[start_index][0], offset_mapping[end_index][1]),
                        "score": start_logits[start_index] + end_logits[end_index],
                        "start_logit": start_logits[start_index], "end_logit": end_logits[end_index]})
        if version_2_with_negative and min_null_prediction is not None:
            prelim_predictions.append(min_null_prediction)
            null_score = min_null_prediction["score"]
        predictions = sorted(prelim_predictions, key=lambda x: x["score"], reverse=True)[:n_best_size]
        if (version_2_with_negative and min_null_prediction is not None
                and not any(p["offsets"] == (0, 0) for p in predictions)):
            predictions.append(min_null_prediction)
        context = example["context"]
        for pred in predictions:
            offsets = pred.pop("offsets")
            pred["text"] = context[offsets[0]: offsets[1]]
        if len(predictions) == 0 or (len(predictions) == 1 and predictions[0]["text"] == ""):
            predictions.insert(0, {"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0})
        if not version_2_with_negative:
            all_predictions[example["id"]] = predictions[0]["text"]
        else:
            i = 0
            while predictions[i]["text"] == "":
                i += 1
            best_non_null_pred = predictions[i]
            score_diff = null_score - best_non_null_pred["start_logit"] - best_non_null_pred["end_logit"]
            scores_diff_json[example["id"]] = float(score_diff)
            null_wins = score_diff > null_score_diff_threshold
            all_predictions[example["id"]] = "" if null_wins else best_non_null_pred["text"]
    return all_predictions, scores_diff_json


# ---------------------------------------------------------------- the tests

@pytest.mark.parametrize("version", ["1.1", "2.0"])
def test_features_match_run_qa(version):
    tok, rows = _tokenizer(), _rows(version)
    ours = features.prepare(tok, rows, MAX_LENGTH, STRIDE, chunk=7)  # chunks: the example index carries over
    enc, labels = hf_train_labels(tok, rows)
    np.testing.assert_array_equal(ours["input_ids"], np.asarray(enc["input_ids"]))
    np.testing.assert_array_equal(ours["example_index"], np.asarray(enc["overflow_to_sample_mapping"]))
    assert len(ours["input_ids"]) > len(rows)  # some questions span several features
    # run_qa's start loop runs past the context when the answer starts at its last token (the [SEP] and
    # padding offsets (0, 0) pass its test); there we label the last context token, elsewhere as run_qa.
    last_context = [np.flatnonzero(ours["offsets"][i, :, 0] >= 0).max() for i in range(len(labels))]
    overshoot = labels[:, 0] > np.asarray(last_context)
    np.testing.assert_array_equal(ours["labels"][~overshoot], labels[~overshoot])
    np.testing.assert_array_equal(ours["labels"][overshoot, 0], np.asarray(last_context)[overshoot])
    # Every answer labelled inside a feature is exactly the answer text; [CLS] labels are 0.
    inside = ours["labels"][:, 0] > 0
    assert inside.any() and (~inside).any()
    for i in np.flatnonzero(inside):
        row = rows[ours["example_index"][i]]
        s, e = ours["labels"][i]
        assert row["context"][ours["offsets"][i, s, 0]:ours["offsets"][i, e, 1]] == row["answers"]["text"][0]
    # Every answerable question is labelled in at least one feature (the stride covers every fact).
    answered = {int(ours["example_index"][i]) for i in np.flatnonzero(inside)}
    assert answered == {r for r, row in enumerate(rows) if row["answers"]["text"]}


@pytest.mark.parametrize("version", ["1.1", "2.0"])
def test_postprocessing_matches_run_qa(version):
    tok, rows = _tokenizer(), _rows(version, seed=3)
    feats = features.prepare(tok, rows, MAX_LENGTH, STRIDE)
    enc, _ = hf_train_labels(tok, rows)
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=(2, len(feats["input_ids"]), MAX_LENGTH)).astype(np.float32)
    start[:, 0] += 1.5 if version == "2.0" else 0  # some questions then abstain
    for n_best, max_len in ((20, 30), (3, 2)):
        ours, na = postprocess.answers(rows, feats, start, end, version, n_best, max_len)
        ref, ref_na = hf_postprocess(rows, enc, start, end, version == "2.0", n_best, max_len)
        assert ours == ref
        assert na == pytest.approx(ref_na, abs=1e-6)  # ours sums in float64, run_qa in float32
    if version == "2.0":
        assert 0 < sum(a == "" for a in ours.values()) < len(rows)


def test_an_answer_that_ends_the_window():
    """A one-token answer at the context's last token: run_qa's loop labels a padding position (its
    offsets (0, 0) pass the test); ours labels the answer's token, and the text maps back."""
    context = "quick slow music the cat is green"
    rows = [{"id": "a", "question": "what is the cat ?", "context": context,
             "answers": {"text": ["green"], "answer_start": [context.index("green")]}}]
    ours = features.prepare(_tokenizer(), rows, MAX_LENGTH, STRIDE)
    _, hf = hf_train_labels(_tokenizer(), rows)
    last = int(ours["attention_mask"][0].sum()) - 2  # [SEP] follows the context
    assert hf[0, 0] == MAX_LENGTH - 1 and hf[0, 1] == last
    assert tuple(ours["labels"][0]) == (last, last)
    assert context[ours["offsets"][0, last, 0]:ours["offsets"][0, last, 1]] == "green"


def test_postprocessing_recovers_the_labelled_spans():
    """Logits that peak at the labels give back every answer text (with several windows per question)."""
    tok, rows = _tokenizer(), _rows("1.1", seed=5)
    feats = features.prepare(tok, rows, MAX_LENGTH, STRIDE)
    start = np.zeros((len(feats["input_ids"]), MAX_LENGTH), np.float32)
    end = start.copy()
    for i, (s, e) in enumerate(feats["labels"]):
        start[i, s] += 10.0
        end[i, e] += 10.0
    got, _ = postprocess.answers(rows, feats, start, end, "1.1")
    assert got == {row["id"]: row["answers"]["text"][0] for row in rows}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="doc_stride"):
        features.prepare(_tokenizer(), _rows("1.1", n=2), 32, 16)
    broken = synthetic.make_dataset(2, 0)
    broken["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 1
    with pytest.raises(data.SquadDataError, match="is not at character"):
        data.flatten(broken, "f.json")
    with pytest.raises(data.SquadDataError, match="not a SQuAD file"):
        data.flatten({"version": "1.1"}, "f.json")
