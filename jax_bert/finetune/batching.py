"""The host side of fine-tuning: each seed's data order, the length buckets and packed tokens of every
step, and the plan of the step shapes to compile (numpy only; nothing here touches a device).

Data order: every seed draws a fresh permutation of the training set each epoch,
numpy default_rng([seed, epoch]); a step's batch is gathered on the host into [seeds, batch, length]
arrays. The last partial batch of an epoch is filled with zero-weight rows (no example is dropped).

Length buckets: each step's batch is padded only to the shortest of a few lengths (`bucket_lengths`:
32, 64, 96, 128 at max_length 128) that holds its longest row over all seeds. Packed tokens: the dense
layers of a training step compute only its real tokens, packed into [seeds, T] rows (T: the most real
tokens of any seed, rounded up to 8 per row; `pack_batch`, jax_bert/model/packing.py), and attention
moves them into the bucket's padded layout and back. Every distinct (bucket, tokens) shape is one
compilation, so `plan_shapes` runs the shapes few steps need at a larger one. Evaluation batches are
packed too (`pack_eval_batch`), at a few coarse shapes (`eval_shape`) that every task shares.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from jax_bert.model import packing

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
PACKING_KEYS = ("slot_token", "token_slot")  # a packed training batch's index arrays


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """This seed's permutation of the n training examples in this epoch."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def batch_indices(orders: np.ndarray, step_in_epoch: int, batch_size: int):
    """(rows [S, B], weights [S, B]) of one step; past the end: row 0 with weight 0 (padding)."""
    lo, hi = step_in_epoch * batch_size, (step_in_epoch + 1) * batch_size
    rows = orders[:, lo:hi]
    weights = np.ones(rows.shape, np.float32)
    pad = batch_size - rows.shape[1]
    if pad:
        rows = np.concatenate([rows, np.zeros((len(rows), pad), rows.dtype)], axis=1)
        weights = np.concatenate([weights, np.zeros((len(weights), pad), np.float32)], axis=1)
    return rows, weights


def bucket_lengths(max_length: int, buckets: int) -> tuple[int, ...]:
    """`buckets` evenly spaced padded lengths up to max_length, rounded up to multiples of 8
    (128 and 4 buckets: 32, 64, 96, 128; 1 bucket: max_length only, every batch fully padded)."""
    if buckets < 1:
        raise ValueError(f"length_buckets must be >= 1, got {buckets}.")
    return tuple(sorted({min(max_length, 8 * math.ceil(max_length * k / buckets / 8))
                         for k in range(1, buckets + 1)}))


def real_lengths(attention_mask: np.ndarray) -> np.ndarray:
    """Positions up to and including each row's last real token (tokenize_task pads on the right)."""
    mask = np.asarray(attention_mask) != 0
    return np.where(mask.any(axis=1), mask.shape[1] - np.argmax(mask[:, ::-1], axis=1), 0)


def bucket_for(lengths: np.ndarray, buckets: Sequence[int]) -> int:
    """The shortest bucket that holds every one of `lengths` (rows of one step, all seeds)."""
    longest = int(np.max(lengths, initial=1))
    i = int(np.searchsorted(buckets, longest))
    if i == len(buckets):
        raise ValueError(f"a row has {longest} positions, more than the longest bucket {buckets[-1]}.")
    return int(buckets[i])


def gather_batch(data: Mapping[str, np.ndarray], rows: np.ndarray, weights: np.ndarray,
                 length: int | None = None) -> dict:
    """Host-side numpy gather: {input_ids, attention_mask, token_type_ids, labels, weights}, the
    inputs cut to their first `length` positions (None: all of them)."""
    cols = slice(None) if length is None else slice(0, length)
    batch = {k: np.asarray(data[k])[rows, cols] for k in INPUT_KEYS}
    batch["labels"] = np.asarray(data["labels"])[rows]
    batch["weights"] = weights
    return batch


def token_budget(tokens: int, batch_size: int, length: int) -> int:
    """The packed token count of a step: `tokens` rounded up to a multiple of 8 per row (256 at batch
    32), at most batch_size x length."""
    unit = 8 * batch_size
    return min(batch_size * length, unit * math.ceil(tokens / unit))


def packed_lengths(lengths: np.ndarray, rows: np.ndarray, weights: np.ndarray, length: int) -> np.ndarray:
    """Real tokens of each row [S, B] in a packed batch: rows of weight 0 (the last batch's filling)
    keep only their first token, since nothing reads their logits."""
    real = np.minimum(lengths[rows], length)
    real[weights == 0] = 1
    return real


def step_shape(lengths: np.ndarray, rows: np.ndarray, weights: np.ndarray, buckets: Sequence[int],
               pack_tokens: bool) -> tuple[int, int]:
    """(bucket, tokens) a step needs: the bucket of its longest real row over all seeds, and the packed
    token budget of the seed with the most real tokens (batch x bucket when not packing)."""
    length = bucket_for(lengths[rows[weights > 0]], buckets)
    if not pack_tokens:
        return length, rows.shape[1] * length
    real = packed_lengths(lengths, rows, weights, length)
    return length, token_budget(int(real.sum(axis=1).max()), rows.shape[1], length)


# A step shape fewer steps than this need runs at a larger one: about a compilation's cost of extra steps
# (10-20 s to compile BERT-small on a 2-core CPU against about 0.3 s a step).
SHAPE_MIN_STEPS = 64


def plan_shapes(needs: Sequence[tuple[int, int]], compiled=(), rare: float = 0.05, few: int = SHAPE_MIN_STEPS,
                batch_size: int | None = None) -> dict:
    """{needed shape: the shape it runs at}. Every distinct (bucket, tokens) shape is one compilation
    (10-20 s for BERT-small on a 2-core CPU), so a shape that fewer than `few` steps or `rare` of the
    steps need runs at a larger one (padding more changes no result), rarest first:
      1. the cheapest shape that holds it (bucket and tokens at least as large) among those `compiled`
         before whose extra tokens are within the bound below, else among all that hold it;
      2. else, given `batch_size`, its bucket's full shape (bucket, batch_size x bucket), which holds
         every step of that bucket of any task, so later tasks with rare shapes reuse it (1.), when
         running there wastes no more tokens than `few` steps of that shape hold;
      3. else the smallest shape holding it and another needed shape, under the same bound on waste."""
    counts = {}
    for need in needs:
        counts[need] = counts.get(need, 0) + 1
    kept, plan = set(counts) | set(compiled), {}

    def merge(partners, target):
        kept.add(target)
        for k in partners:
            kept.discard(k)
            plan[k] = target
            counts[target] = counts.get(target, 0) + counts[k]

    def is_rare(k):
        return counts[k] < max(few, rare * len(needs))

    def rare_shapes():  # each still rare when its turn comes (merges add to their targets' counts)
        for k in sorted(counts, key=lambda k: (counts[k], k)):
            if k not in plan and is_rare(k):
                yield k

    def holder(shape):
        holders = [k for k in kept if k != shape and k[0] >= shape[0] and k[1] >= shape[1]]
        # one compiled before costs nothing more (a needed one may yet move to a larger shape itself), so it
        # comes first when running there wastes no more tokens than `few` steps of it hold; else the cheapest
        cheap = [k for k in holders if k in compiled and counts[shape] * (k[1] - shape[1]) <= few * k[1]]
        return min(cheap or holders, key=lambda k: (k[1], k[0])) if holders else None

    for shape in list(rare_shapes()):
        if is_rare(shape) and holder(shape) is not None:
            merge([shape], holder(shape))
    for shape in list(rare_shapes()):
        if shape in plan or shape in compiled or not is_rare(shape):
            continue  # (a shape compiled before costs nothing more)
        near = holder(shape)  # e.g. a full shape chosen for an earlier one, within the bound below
        if near is not None and counts[shape] * (near[1] - shape[1]) <= few * near[1]:
            merge([shape], near)
            continue
        full = None if batch_size is None else (shape[0], batch_size * shape[0])
        if full is not None and full != shape:
            if counts[shape] * (full[1] - shape[1]) <= few * full[1]:
                merge([shape], full)
                continue
        joint = {other: (max(shape[0], other[0]), max(shape[1], other[1])) for other in kept
                 if other != shape and other in counts and other not in plan and other not in compiled}
        waste = {other: sum(counts[k] * (new[1] - k[1]) for k in (shape, other)) for other, new in joint.items()}
        fits = [other for other in joint if waste[other] <= few * joint[other][1]]
        if fits:
            other = min(fits, key=lambda k: (waste[k], joint[k]))
            merge([shape, other], joint[other])
    for shape in counts:  # follow merges of merged shapes to the end
        while plan.get(shape, shape) in plan and plan[plan[shape]] != plan[shape]:
            plan[shape] = plan[plan[shape]]
    return {need: plan.get(need, need) for need in set(needs)}


def pack_batch(data: Mapping[str, np.ndarray], lengths: np.ndarray, rows: np.ndarray, weights: np.ndarray,
               length: int, tokens: int) -> dict:
    """The step's batch as packed tokens (jax_bert/model/packing.py): input_ids and token_type_ids
    [S, tokens], their index arrays slot_token [S, B, length] and token_slot [S, tokens], labels,
    weights. lengths: real tokens of every example of `data`; tokens: one budget for all seeds."""
    real = packed_lengths(lengths, rows, weights, length)
    out = {k: [] for k in ("input_ids", "token_type_ids", "slot_token", "token_slot")}
    for s in range(len(rows)):
        slot_token, token_slot = packing.pack_indices(real[s], length, tokens)
        out["slot_token"].append(slot_token)
        out["token_slot"].append(token_slot)
        for k in ("input_ids", "token_type_ids"):
            out[k].append(packing.packed_values(np.asarray(data[k])[rows[s], :length], token_slot))
    batch = {k: np.stack(v) for k, v in out.items()}
    batch["labels"] = np.asarray(data["labels"])[rows]
    batch["weights"] = weights
    return batch


def eval_shape(n_rows: int, real_tokens: int, batch_size: int, length: int) -> tuple[int, int]:
    """(rows, tokens) of a packed evaluation batch holding n_rows examples of real_tokens tokens in all:
    batch_size rows, or for the last batch of a split the power of two (at least 8) that holds what is
    left; the tokens rounded up to a quarter of rows x length. Coarse on purpose: an evaluation batch
    runs once per split, so its shapes should be few and shared by every task (each is a compilation)."""
    rows = min(batch_size, max(8, 1 << max(0, n_rows - 1).bit_length()))
    quarter = max(8, rows * length // 4)
    return rows, min(rows * length, quarter * math.ceil(max(real_tokens + rows - n_rows, 1) / quarter))


def pack_eval_batch(data: Mapping[str, np.ndarray], lengths: np.ndarray, rows: np.ndarray, n_rows: int,
                    length: int, tokens: int) -> dict:
    """An evaluation batch as packed tokens, the same for every seed: input_ids and token_type_ids [tokens],
    slot_token [n_rows, length], token_slot [tokens]. `rows` are the examples; the n_rows - len(rows) filler
    rows hold one token each (nothing reads their logits)."""
    real = np.concatenate([np.minimum(lengths[rows], length), np.ones(n_rows - len(rows), lengths.dtype)])
    padded = np.concatenate([rows, np.full(n_rows - len(rows), rows[0], rows.dtype)])
    slot_token, token_slot = packing.pack_indices(real, length, tokens)
    batch = {k: packing.packed_values(np.asarray(data[k])[padded, :length], token_slot)
             for k in ("input_ids", "token_type_ids")}
    return dict(batch, slot_token=slot_token, token_slot=token_slot)
