"""Masked-language-model batches from packed blocks, in numpy on the host.

Shapes are static so the jitted train step never recompiles: every row has
`max_predictions(seq_len, p)` prediction slots; real slots have weight 1, unused ones have
position 0, label 0 and weight 0 (count only weighted slots in the loss and in eval).

Selection follows the original BERT create_pretraining_data: a row with n non-[PAD] tokens
predicts num_to_predict = max(1, round(n * p)) tokens chosen among its non-special tokens.
With whole-word masking the candidates are words (a token plus the '##' continuation
tokens that follow it) taken in random order; a word that would overflow the budget is
skipped and the next one tried (as Hugging Face's DataCollatorForWholeWordMask does), so a
row can end below num_to_predict only when no remaining word fits. Each chosen token is then
replaced by [MASK] (80%), a random non-special token (10%) or left unchanged (10%).

Reproducibility: the batch of a training step is a pure function of (seed, step, process
index). Rows come from a per-epoch permutation of the blocks, and the masking of a row uses
its own generator seeded with (seed, step, global row), so one process and N processes
build exactly the same global batch.
"""
from __future__ import annotations

import functools
from typing import Iterator, Sequence

import numpy as np

# Stream tags, last in each seed tuple. numpy's SeedSequence pads entropy with zeros, so
# (seed, a) and (seed, a, 0) give the same stream; a distinct nonzero tag last keeps the
# permutation, training-masking and eval-masking streams apart.
_TRAIN_MASK_TAG = 1
_EVAL_MASK_TAG = 2


def max_predictions(seq_len: int, mlm_probability: float) -> int:
    """The fixed number of prediction slots per sequence: max(1, round(seq_len * p)).

    Enough for every row: a row has at most seq_len real tokens, so it never asks for more.
    """
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    return max(1, int(round(seq_len * mlm_probability)))


def continuation_table(tokenizer) -> np.ndarray:
    """Bool [vocab] array: True for WordPiece continuation tokens ('##ing')."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    model = getattr(backend, "model", None)
    prefix = getattr(model, "continuing_subword_prefix", None)
    if type(model).__name__ != "WordPiece" or not prefix:
        raise ValueError("whole-word masking needs a fast WordPiece tokenizer (BERT); "
                         f"got model {type(model).__name__}: use whole_word=False")
    vocab = tokenizer.get_vocab()
    table = np.zeros(max(len(tokenizer), max(vocab.values()) + 1), dtype=bool)
    for token, index in vocab.items():
        table[index] = token.startswith(prefix) and len(token) > len(prefix)
    return table


def masking_kwargs(tokenizer, seq_len: int, *, mlm_probability: float = 0.15,
                   whole_word: bool = True) -> dict:
    """The keyword arguments of mask_batch / batch_for_step / eval_batches for a tokenizer."""
    ids = tokenizer.all_special_ids
    return dict(vocab_size=len(tokenizer), special_ids=tuple(sorted(set(ids))),
                mask_id=int(tokenizer.mask_token_id), pad_id=int(tokenizer.pad_token_id),
                mlm_probability=mlm_probability, whole_word=whole_word,
                is_continuation=continuation_table(tokenizer) if whole_word else None,
                max_predictions=max_predictions(seq_len, mlm_probability))


def _choose_words(lengths: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the words chosen: random order, skip any word that would overflow."""
    order = rng.permutation(lengths.size)
    ordered = lengths[order]
    cum = np.cumsum(ordered)
    # Every word of the leading run that fits is taken at once; only the tail, where the
    # budget has at most a few tokens left, is walked word by word.
    k = int(np.searchsorted(cum, budget, side="right"))
    chosen = list(order[:k])
    left = budget - (int(cum[k - 1]) if k else 0)
    i = k + 1  # word k (if any) overflowed
    while left > 0 and i < ordered.size:
        fits = np.flatnonzero(ordered[i:] <= left)
        if fits.size == 0:
            break
        j = i + int(fits[0])
        chosen.append(order[j])
        left -= int(ordered[j])
        i = j + 1
    return np.asarray(chosen, dtype=np.int64)


def mask_batch(blocks: np.ndarray, rng: np.random.Generator | Sequence[np.random.Generator],
               *, vocab_size: int, special_ids: Sequence[int], mask_id: int, pad_id: int,
               mlm_probability: float = 0.15, whole_word: bool = True,
               is_continuation: np.ndarray | None = None,
               max_predictions: int) -> dict[str, np.ndarray]:
    """Masks a batch of token blocks [B, L] for MLM (see the module docstring).

    `rng` is one Generator for the whole batch, or a sequence of B Generators, one per row
    (used by batch_for_step so a row's masking does not depend on its neighbours). [PAD] and
    [MASK] always count as special. Returns int32 input_ids, attention_mask (0 at [PAD]),
    token_type_ids (zeros) [B, L] and masked_positions, masked_labels (int32) and
    masked_weights (float32) [B, max_predictions].
    """
    blocks = np.asarray(blocks)
    if blocks.ndim != 2 or not np.issubdtype(blocks.dtype, np.integer):
        raise ValueError(f"blocks must be an integer array [batch, seq_len], got "
                         f"{blocks.dtype} {blocks.shape}")
    b, length = blocks.shape
    if max_predictions < 1:
        raise ValueError(f"max_predictions must be positive, got {max_predictions}")
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
    if blocks.size and (blocks.min() < 0 or blocks.max() >= vocab_size):
        raise ValueError(f"token ids must be in [0, vocab_size={vocab_size}), got "
                         f"[{blocks.min()}, {blocks.max()}]: the blocks were not tokenized with this tokenizer, or "
                         "their cache is damaged (python scripts/check_data_cache.py checks it).")
    if whole_word:
        if is_continuation is None:
            raise ValueError("whole_word=True needs is_continuation (build it with "
                             "continuation_table(tokenizer)), or pass whole_word=False")
        is_continuation = np.asarray(is_continuation, dtype=bool)
        if is_continuation.shape[0] < vocab_size:
            raise ValueError(f"is_continuation covers {is_continuation.shape[0]} ids, fewer "
                             f"than vocab_size={vocab_size}")
    rngs = list(rng) if not isinstance(rng, np.random.Generator) else [rng] * b
    if len(rngs) != b:
        raise ValueError(f"got {len(rngs)} generators for {b} rows")

    special = np.zeros(vocab_size, dtype=bool)
    special[np.asarray(list(special_ids) + [mask_id, pad_id], dtype=np.int64)] = True
    replacements = np.flatnonzero(~special)  # random tokens are never special
    if replacements.size == 0:
        raise ValueError("every token id is special: nothing can be masked")

    candidate = ~special[blocks]  # [B, L]
    if whole_word:
        # A continuation token belongs to the word of the token before it, unless that one
        # is special (or it starts the row): then it starts a word of its own.
        follows = np.zeros_like(candidate)
        follows[:, 1:] = candidate[:, :-1]
        attached = candidate & is_continuation[blocks] & follows
    else:
        attached = np.zeros_like(candidate)
    starts = candidate & ~attached
    word_id = np.cumsum(starts, axis=1) - 1  # valid where candidate
    n_real = (blocks != pad_id).sum(axis=1)

    input_ids = blocks.astype(np.int32, copy=True)
    positions = np.zeros((b, max_predictions), dtype=np.int32)
    labels = np.zeros((b, max_predictions), dtype=np.int32)
    weights = np.zeros((b, max_predictions), dtype=np.float32)
    for row in range(b):
        n_words = int(starts[row].sum())
        if n_words == 0:
            continue
        budget = min(max_predictions, max(1, int(round(n_real[row] * mlm_probability))))
        members = np.flatnonzero(candidate[row])
        lengths = np.bincount(word_id[row, members], minlength=n_words)
        chosen = _choose_words(lengths, budget, rngs[row])
        picked = np.zeros(n_words, dtype=bool)
        picked[chosen] = True
        pos = members[picked[word_id[row, members]]]  # sorted, as in the original
        n = pos.size
        r = rngs[row]
        action = r.random(n)
        random_tokens = replacements[r.integers(0, replacements.size, size=n)]
        original = blocks[row, pos]
        new = np.where(action < 0.8, mask_id, np.where(action < 0.9, random_tokens, original))
        input_ids[row, pos] = new
        positions[row, :n] = pos
        labels[row, :n] = original
        weights[row, :n] = 1.0
    return {
        "input_ids": input_ids,
        "attention_mask": (blocks != pad_id).astype(np.int32),
        "token_type_ids": np.zeros((b, length), dtype=np.int32),
        "masked_positions": positions,
        "masked_labels": labels,
        "masked_weights": weights,
    }


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    perm = np.random.default_rng((seed, epoch)).permutation(n)
    perm.setflags(write=False)
    return perm


def _check_processes(batch_size: int, process_index: int, process_count: int) -> int:
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, process_count="
                         f"{process_count})")
    if batch_size % process_count:
        raise ValueError(f"global batch size {batch_size} is not divisible by the process "
                         f"count {process_count}; choose a multiple of {process_count}")
    return batch_size // process_count


def batch_for_step(blocks: np.ndarray, step: int, *, seed: int, global_batch_size: int,
                   process_index: int = 0, process_count: int = 1,
                   **mask_kwargs) -> dict[str, np.ndarray]:
    """This process's slice of the global MLM batch of training step `step`.

    Global row g of step s is sample a = s * global_batch_size + g of an endless stream;
    epoch = a // N, and the block is default_rng((seed, epoch)).permutation(N)[a % N], so a
    batch straddling an epoch boundary takes its first rows from one epoch and the rest from
    the next. Process i builds global rows [i * local, (i + 1) * local) only, local =
    global_batch_size // process_count, and masks row g with default_rng((seed, step, g, 1)):
    the concatenation of all processes' slices equals the one-process batch.
    `mask_kwargs` are mask_batch's keyword arguments (see masking_kwargs).
    """
    n = len(blocks)
    if n == 0:
        raise ValueError("no training blocks: the training split is empty")
    if seed < 0 or step < 0:
        raise ValueError(f"seed and step must be non-negative, got seed={seed}, step={step}")
    local = _check_processes(global_batch_size, process_index, process_count)
    rows = np.arange(process_index * local, (process_index + 1) * local, dtype=np.int64)
    sample = int(step) * int(global_batch_size) + rows
    epochs, offsets = np.divmod(sample, n)
    index = np.empty(local, dtype=np.int64)
    for epoch in np.unique(epochs):
        sel = epochs == epoch
        index[sel] = _epoch_permutation(int(seed), int(epoch), n)[offsets[sel]]
    rngs = [np.random.default_rng((seed, step, int(g), _TRAIN_MASK_TAG)) for g in rows]
    return mask_batch(np.asarray(blocks[index]), rngs, **mask_kwargs)


def num_eval_batches(num_blocks: int, batch_size: int) -> int:
    """How many batches eval_batches yields: ceil(num_blocks / batch_size)."""
    return -(-num_blocks // batch_size)


def eval_batches(blocks: np.ndarray, batch_size: int, *, seed: int = 0,
                 process_index: int = 0, process_count: int = 1, pad_id: int,
                 **mask_kwargs) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """Yields (batch, n_real_rows): every validation block exactly once, in order.

    Masking is fixed: block r uses default_rng((seed, r, 2)), whatever the batch size or
    process count. Every batch has batch_size // process_count rows (this process's slice
    of global batch rows, as in batch_for_step); rows past the last block are all [PAD]
    with zero weights, and n_real_rows counts the real ones in this slice.
    """
    n = len(blocks)
    local = _check_processes(batch_size, process_index, process_count)
    _, length = np.shape(blocks)
    for k in range(num_eval_batches(n, batch_size)):
        rows = np.arange(k * batch_size + process_index * local,
                         k * batch_size + (process_index + 1) * local, dtype=np.int64)
        real = rows[rows < n]
        chunk = np.full((local, length), pad_id, dtype=np.int32)
        chunk[: real.size] = blocks[real[0]: real[-1] + 1] if real.size else chunk[:0]
        rngs = [np.random.default_rng((seed, int(r), _EVAL_MASK_TAG)) for r in rows]
        yield mask_batch(chunk, rngs, pad_id=pad_id, **mask_kwargs), int(real.size)
