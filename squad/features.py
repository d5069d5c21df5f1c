"""SQuAD examples as model features, as Hugging Face's run_qa prepares them (the original used it).

The question comes first and keeps all its tokens (leading whitespace stripped); the context is
truncated ("only_second") into as many features as it needs, each window overlapping the previous one
by `stride` tokens; every feature is padded to max_length. Each feature keeps the character offsets of
its context tokens (-1 elsewhere: question, special tokens, padding), so a token span maps back to
context text. Training labels (`labels`: start and end token [F, 2]) point at the first answer's
tokens when it lies wholly inside the feature's context window, else both at the [CLS] token
(unanswerable questions too).
"""
from __future__ import annotations

import numpy as np

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def _encode(tokenizer, rows, max_length: int, stride: int):
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("SQuAD features need a Hugging Face fast tokenizer (is_fast=True) for offset mappings.")
    if stride >= max_length // 2:  # the tokenizer would loop forever or fail on a long question
        raise ValueError(f"doc_stride ({stride}) must be below half of max_length ({max_length}).")
    return tokenizer([r["question"].lstrip() for r in rows], [r["context"] for r in rows],
                     truncation="only_second", max_length=max_length, stride=stride,
                     return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length",
                     return_token_type_ids=True, return_attention_mask=True)


def prepare(tokenizer, rows: list[dict], max_length: int = 384, stride: int = 128, chunk: int = 1000) -> dict:
    """Features of `rows` (squad.data's flat questions): numpy arrays
        input_ids, attention_mask, token_type_ids  int32 [F, max_length]
        offsets        int32 [F, max_length, 2]  (start, end) character of each context token; -1 elsewhere
        example_index  int32 [F]                 the row each feature comes from
        labels         int32 [F, 2]              start and end token of the answer ([CLS] if outside)"""
    parts = []
    for lo in range(0, len(rows), chunk):
        part = rows[lo:lo + chunk]
        enc = _encode(tokenizer, part, max_length, stride)
        n = len(enc["input_ids"])
        out = {k: np.asarray(enc[k], np.int32) for k in INPUT_KEYS}
        offsets = np.full((n, max_length, 2), -1, np.int32)
        labels = np.zeros((n, 2), np.int32)
        example = np.asarray(enc["overflow_to_sample_mapping"], np.int32) + lo
        for i in range(n):
            seq = np.asarray([-1 if s is None else s for s in enc.sequence_ids(i)])
            context = np.flatnonzero(seq == 1)
            offsets[i, context] = np.asarray(enc["offset_mapping"][i], np.int32)[context]
            labels[i] = _answer_tokens(rows[example[i]], offsets[i], context, out["input_ids"][i],
                                       tokenizer.cls_token_id)
        out.update(offsets=offsets, example_index=example, labels=labels)
        parts.append(out)
    if not parts:
        raise ValueError("no SQuAD questions to prepare.")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _answer_tokens(row, offsets, context, input_ids, cls_token_id) -> tuple[int, int]:
    """(start token, end token) of the row's first answer in this feature, or [CLS] twice."""
    ids = list(input_ids)
    cls = ids.index(cls_token_id) if cls_token_id in ids else 0
    answers = row["answers"]
    if not answers["answer_start"] or len(context) == 0:
        return cls, cls
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    first, last = context[0], context[-1]
    if not (offsets[first, 0] <= start_char and offsets[last, 1] >= end_char):
        return cls, cls  # not (wholly) in this window
    # The last token starting at or before the answer, and the first token ending at or after it.
    start = first + int(np.searchsorted(offsets[first:last + 1, 0], start_char, side="right")) - 1
    end = last - int(np.searchsorted(-offsets[first:last + 1, 1][::-1], -end_char, side="right")) + 1
    return start, end
