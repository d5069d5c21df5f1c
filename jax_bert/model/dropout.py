"""Dropout that draws exactly flax's `nn.Dropout` masks, in a form XLA can fuse.

`nn.Dropout` draws its mask with `jax.random.bernoulli`, i.e. Threefry-2x32 bits. On the CPU, JAX
lowers Threefry to a rolled 20-round while loop (to keep compile times short), so XLA materialises
the counters, the loop state and the bits of every dropout mask as whole arrays: 7-9% of the
BERT-small pretraining step on a 2-core CPU (`scripts/benchmark.py --mode torch --preset small`).

`threefry_bits` computes the same 32-bit words with plain elementwise integer ops (the unrolled
Threefry that JAX itself uses on GPUs), so XLA fuses the generator into the select that applies the
mask and recomputes it in the backward pass instead of storing it. The bits are those of
`jax.random.bits(key, shape, jnp.uint32)` under JAX's default (partitionable) Threefry layout, and
`Dropout` turns them into the mask exactly as `jax.random.bernoulli` does, so a model using it trains
bitwise as it did with `nn.Dropout` (tests/test_dropout.py compares both). Keys of another PRNG
implementation (rbg, unsafe_rbg), the legacy Threefry layout and arrays of 2**32 elements or more
fall back to `jax.random.bernoulli`.

Padding-invariant masks: `layout` names the shape an input is the leading corner of (e.g. a batch
padded to 32 positions, laid out as the same batch padded to 128). Element (b, l, h) then draws the
bits it would draw in the layout-shaped array, so a shorter padding gives the real positions the
same masks, and a model computes the same numbers whatever the padding (glue/finetune.py's length
buckets rely on this). With `rows` as well, the input is a selection of the layout's rows (packed
tokens [T, hidden] out of [batch, length, hidden]: rows[t] = b * length + l), each drawing that row's bits.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Threefry-2x32 constants (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"), as in
# jax/_src/random/threefry2x32.py.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = 0x1BD11BDA


def _rotate_left(v, r: int):
    return (v << jnp.uint32(r)) | (v >> jnp.uint32(32 - r))


def _counters(shape: tuple[int, ...], layout: tuple[int, ...], rows=None) -> jax.Array:
    """The flat index in a `layout`-shaped array of every element of its leading `shape` corner, or
    with `rows`, of element (t, ...) of row rows[t] (rows of the layout's trailing shape[1:])."""
    if rows is not None:
        inner = shape[1:]
        offsets = jnp.asarray(rows).astype(jnp.uint32).reshape((shape[0],) + (1,) * len(inner))
        return offsets * jnp.uint32(math.prod(inner)) + lax.iota(jnp.uint32, math.prod(inner)).reshape(inner)
    if layout == shape:
        return lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    counters = jnp.zeros(shape, jnp.uint32)
    for axis in range(len(shape)):
        stride = math.prod(layout[axis + 1:])
        counters = counters + lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
    return counters


def _check_layout(shape: tuple[int, ...], layout: tuple[int, ...] | None, rows=None) -> tuple[int, ...]:
    if rows is not None:
        if layout is None or tuple(layout[-(len(shape) - 1):] if len(shape) > 1 else ()) != tuple(shape[1:]):
            raise ValueError(f"dropout rows need a layout whose trailing dimensions are the input's {shape[1:]}; "
                             f"got layout {layout}.")
        if np.shape(rows) != shape[:1]:
            raise ValueError(f"dropout rows must be one index per input row ({shape[0]}), got {np.shape(rows)}.")
        return tuple(int(d) for d in layout)
    if layout is None:
        return shape
    layout = tuple(int(d) for d in layout)
    if len(layout) != len(shape) or any(s > d for s, d in zip(shape, layout)):
        raise ValueError(f"a dropout layout must have the input's rank and be at least its size in every "
                         f"dimension; got input {shape}, layout {layout}.")
    return layout


def threefry_bits(key_words, shape: tuple[int, ...], layout: tuple[int, ...] | None = None,
                  rows=None) -> jax.Array:
    """uint32 bits of `shape` equal to `jax.random.bits(key, shape, jnp.uint32)` (partitionable layout:
    element i is Threefry-2x32 of the counter pair (0, i), its two output words XOR-ed).

    With `layout`: the leading `shape` corner of `jax.random.bits(key, layout, jnp.uint32)`; with
    `rows` too, rows `rows` of those bits viewed as [-1, *shape[1:]].
    key_words: the key's two uint32 words (`jax.random.key_data(key)`). Needs prod(layout) < 2**32.
    """
    shape = tuple(shape)
    layout = _check_layout(shape, layout, rows)
    k0, k1 = key_words[0], key_words[1]
    ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(_KEY_PARITY))
    counter_low = _counters(shape, layout, rows)
    x0 = jnp.zeros(shape, jnp.uint32) + ks[0]  # the counter's high word is 0 below 2**32 elements
    x1 = counter_low + ks[1]
    for block in range(5):
        for r in _ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, r) ^ x0
        x0 = x0 + ks[(block + 1) % 3]
        x1 = x1 + ks[(block + 2) % 3] + jnp.uint32(block + 1)
    return x0 ^ x1


def _threefry_key_words(rng):
    """The two uint32 words of a Threefry key in the default bits layout, else None (use JAX's path)."""
    # getattr: a JAX that has dropped these flags has only the defaults (partitionable Threefry).
    if not getattr(jax.config, "jax_threefry_partitionable", True):
        return None
    if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(rng)) != "threefry2x32":
            return None
        return jax.random.key_data(rng)
    if getattr(jax.config, "jax_default_prng_impl", "threefry2x32") != "threefry2x32" or rng.shape != (2,):
        return None
    return rng  # a legacy raw uint32[2] key


def keep_mask(rng, keep_prob: float, shape: tuple[int, ...], layout: tuple[int, ...] | None = None,
              rows=None) -> jax.Array:
    """`jax.random.bernoulli(rng, keep_prob, shape)`, bit for bit, fusable on every backend; with
    `layout`, the leading `shape` corner of `jax.random.bernoulli(rng, keep_prob, layout)`; with
    `rows` too, rows `rows` of that mask viewed as [-1, *shape[1:]] (see the module docstring)."""
    shape = tuple(shape)
    layout = _check_layout(shape, layout, rows)
    words = _threefry_key_words(rng)
    if words is None or math.prod(layout) >= 2**32:
        full = jax.random.bernoulli(rng, keep_prob, layout)
        if rows is not None:
            return jnp.take(full.reshape((-1,) + shape[1:]), rows, axis=0, mode="clip")
        return full[tuple(slice(0, d) for d in shape)]
    bits = threefry_bits(words, shape, layout, rows)
    # jax.random.uniform's float32 construction: 23 random mantissa bits in [1, 2), minus 1.
    one_to_two = lax.bitcast_convert_type((bits >> jnp.uint32(9)) | jnp.uint32(0x3F800000), jnp.float32)
    return (one_to_two - 1.0) < keep_prob


class Dropout(nn.Module):
    """Drop-in for `flax.linen.Dropout` (no broadcast_dims): same rng stream, same masks, same output.

    The class keeps the name `Dropout` so that auto-named instances are `Dropout_0`, ... as before,
    which keeps their rng streams (and old training runs) unchanged."""

    rate: float
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, inputs, deterministic: bool | None = None, layout: tuple[int, ...] | None = None,
                 rows=None):
        """`layout`: the shape `inputs` is the leading corner of, or with `rows` ([inputs.shape[0]] ints),
        whose rows `inputs` holds (see the module docstring); None: its own."""
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if self.rate == 0.0 or deterministic:
            return inputs
        if self.rate == 1.0:  # as flax: no division by zero, no NaN gradients
            return jnp.zeros_like(inputs)
        keep_prob = 1.0 - self.rate
        mask = keep_mask(self.make_rng(self.rng_collection), keep_prob, inputs.shape, layout, rows)
        return lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))
