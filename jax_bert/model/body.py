"""The one definition of a BERT's sparsity that pretraining and GLUE both report.

`body_sparsity`: the percentage of exact zeros among the parameters of the BERT body, bert/embeddings
and bert/encoder: every weight matrix, bias and LayerNorm parameter; no pooler, no MLM or classifier
head. It needs only the weights, so it is the same number for a pretraining state, its Hugging Face
export and a fine-tuned model, and it is how the original study counted its 79.58%. (The masks'
count over all parameters, which `sparsity.overall` sets as a target, includes the head and counts a
kept weight that happens to be 0 as kept; pretraining prints it in the per-tensor table.)
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import sparsity

SPARSITY_NAME = "sparsity of the BERT body (exact zeros in bert/embeddings + bert/encoder)"


def _is_body(path: str) -> bool:
    return path.startswith(("bert/embeddings/", "bert/encoder/"))


@functools.partial(jax.jit, static_argnums=1)
def _zero_counts(leaves, seed_axis: bool):
    # One compiled reduction for the whole tree (eager per-leaf ops would each compile).
    # int32 counts: BERT-base's body has 108M entries, far below 2**31.
    return sum(jnp.sum(x == 0, axis=tuple(range(1 if seed_axis else 0, x.ndim)), dtype=jnp.int32)
               for x in leaves)


def body_sparsity(params, seed_axis: bool = False):
    """Percent exact zeros over the BERT body (see the module docstring); with seed_axis (a leading
    axis of seeds on every leaf), one value per seed."""
    leaves = [x for path, x in sparsity.named_leaves(params) if _is_body(path)]
    if not leaves:
        raise ValueError("params have no bert/embeddings or bert/encoder leaves.")
    size = sum(int(np.prod(x.shape[1:] if seed_axis else x.shape)) for x in leaves)
    zeros = np.asarray(jax.device_get(_zero_counts(leaves, seed_axis)), np.float64)
    return 100.0 * zeros / size
