"""Packed (unpadded) tokens: a padded batch's real tokens as rows [T, hidden] instead of [batch, length, hidden].

BERT's dense layers (embeddings, projections, feed-forward, LayerNorm, dropout) treat every position
on its own, so they need to run only on real tokens; attention needs each example's tokens together,
so its queries, keys and values move into the padded layout [batch, length] and its output moves
back. A batch of right-padded rows holding lengths[b] real tokens packs into T >= sum(lengths) rows,
in row-major order; the rows past sum(lengths) are dummies (token 0 at position 0) that nothing reads.

Two index arrays describe it (built on the host with numpy, `pack_indices`):
    slot_token [batch, length]: the packed row of each padded slot; T (a zero row) for padding
    token_slot [T]:             the padded slot b * length + l of each packed row; batch * length for dummies
Each move is a gather forward and backward (`move_rows`: real tokens and real slots correspond one
to one, so the transposed gather is a gather too), which XLA runs faster than a scatter.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def pack_indices(lengths: np.ndarray, length: int, tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """(slot_token [batch, length], token_slot [tokens]) int32 for rows of `lengths` real tokens
    (each cut to `length`), packed into `tokens` rows (at least their sum)."""
    lengths = np.minimum(np.asarray(lengths), length)
    batch = len(lengths)
    real = np.arange(length)[None, :] < lengths[:, None]
    token_slot = np.flatnonzero(real.ravel())
    if len(token_slot) > tokens:
        raise ValueError(f"{len(token_slot)} real tokens do not fit a packed budget of {tokens}.")
    slot_token = np.full(batch * length, tokens, np.int32)
    slot_token[token_slot] = np.arange(len(token_slot), dtype=np.int32)
    token_slot = np.concatenate([token_slot, np.full(tokens - len(token_slot), batch * length)]).astype(np.int32)
    return slot_token.reshape(batch, length), token_slot


def packed_values(x: np.ndarray, token_slot: np.ndarray) -> np.ndarray:
    """numpy: x [batch, length, ...] at the packed rows (0 for dummies): [T, ...]."""
    flat = x.reshape((-1,) + x.shape[2:])
    flat = np.concatenate([flat, np.zeros((1,) + flat.shape[1:], flat.dtype)])
    return flat[token_slot]


@jax.custom_vjp
def move_rows(x, index, inverse):
    """Rows of x [N, ...] at `index` (an int array of any shape I; N means a zero row): [*I, ...].

    `inverse` [N] is the position in the flattened I of each row of x (prod(I) where there is none):
    `index` restricted to the rows it uses must be one to one, so the gradient is `inverse`'s gather."""
    del inverse
    return _take_with_zero_row(x, index)


def _take_with_zero_row(x, index):
    ext = jnp.concatenate([x, jnp.zeros((1,) + x.shape[1:], x.dtype)])
    return jnp.take(ext, index, axis=0, mode="clip")


def _move_rows_fwd(x, index, inverse):
    return _take_with_zero_row(x, index), (index, inverse)


def _move_rows_bwd(residuals, g):
    index, inverse = residuals
    flat = g.reshape((-1,) + g.shape[index.ndim:])
    return _take_with_zero_row(flat, inverse), None, None


move_rows.defvjp(_move_rows_fwd, _move_rows_bwd)


def to_padded(x, packing: dict):
    """Packed rows [T, ...] -> the padded layout [batch, length, ...] (zeros at padding)."""
    return move_rows(x, packing["slot_token"], packing["token_slot"])


def to_packed(y, packing: dict):
    """The padded layout [batch, length, ...] -> packed rows [T, ...] (zeros at dummies)."""
    return move_rows(y.reshape((-1,) + y.shape[2:]), packing["token_slot"], packing["slot_token"].reshape(-1))
