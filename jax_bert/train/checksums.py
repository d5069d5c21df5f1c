"""Content checksums of a train state, written with each checkpoint and verified on restore.

A checkpoint's files can be damaged after orbax committed them (a truncated copy, flipped bits on a
disk, a hand edit). Some damage makes the restore fail, some restores silently wrong values (orbax
stores incompressible chunks raw, so a flipped byte is a flipped weight). So every checkpoint carries,
per array of the state, a checksum of its bit pattern, computed on the device when the save starts
and compared with the restored arrays: damage anywhere in what is read back is found, whatever file
it sits in, and the checksums are committed atomically with the arrays (they are part of the step).

The checksum of an array is two 32-bit sums of its elements' bit patterns (as unsigned integers):
the plain sum and the sum weighted by position (Fletcher's idea), so a single flipped bit always
changes it and swapped elements change the second sum. The device version (jitted, also over arrays
sharded across processes: every process gets the same replicated value) and the numpy version (for
numpy arrays, such as `restore_params_only` returns) give the same numbers; the tests check it.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import sparsity

_MOD = 1 << 32


def _words_jax(x: jax.Array) -> jax.Array:
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    bits = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[x.dtype.itemsize]
    return jax.lax.bitcast_convert_type(x, bits).astype(jnp.uint32)


def _positions(shape) -> jax.Array:
    """1 + the row-major index of every element, without a reshape (which a sharded array may not allow)."""
    index, stride = jnp.zeros(shape, jnp.uint32), 1
    for dim in reversed(range(len(shape))):
        index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, dim) * jnp.uint32(stride % _MOD)
        stride *= shape[dim]
    return index + jnp.uint32(1)


@jax.jit
def _device_sums(leaves: list[jax.Array]) -> list[jax.Array]:
    out = []
    for x in leaves:
        w = _words_jax(x)  # uint32 arithmetic wraps mod 2**32
        out.append(jnp.stack([jnp.sum(w, dtype=jnp.uint32), jnp.sum(w * _positions(w.shape), dtype=jnp.uint32)]))
    return out


def _numpy_sums(x) -> tuple[int, int]:
    a = np.ascontiguousarray(np.asarray(x))
    if a.dtype.itemsize == 8:  # only numpy has 64-bit leaves (a python int); two words each
        w = a.view(np.uint32).reshape(-1)
    else:
        w = a.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[a.dtype.itemsize]).reshape(-1)
    w = w.astype(np.uint64)
    position = np.arange(1, w.size + 1, dtype=np.uint64)
    # uint64 sums and products wrap mod 2**64, and 2**32 divides 2**64: the same value mod 2**32.
    return int(np.sum(w, dtype=np.uint64)) % _MOD, int(np.sum(w * position, dtype=np.uint64)) % _MOD


def checksums(tree: Any) -> dict[str, str]:
    """{"/"-joined path: hex checksum} for every array leaf (python scalars count as numpy arrays).

    jax.Arrays are summed on their devices in one jitted call; every process of a multi-process run
    must call this together for arrays sharded over processes (as it calls save and restore)."""
    named = [(p, x) for p, x in sparsity.named_leaves(tree)]
    on_device = [(p, x) for p, x in named if isinstance(x, jax.Array)]
    out = {}
    if on_device:
        sums = jax.device_get(_device_sums([x for _, x in on_device]))
        out.update({p: f"{int(s[0]):08x}{int(s[1]):08x}" for (p, _), s in zip(on_device, sums)})
    for p, x in named:
        if not isinstance(x, jax.Array):
            a, b = _numpy_sums(x)
            out[p] = f"{a:08x}{b:08x}"
    return out


def mismatches(expected: dict[str, str], tree: Any, prefix: str = "") -> list[str]:
    """Paths of `tree` (the subtree at path `prefix` of the full state) whose checksum differs from
    `expected`, or that `expected` does not know."""
    found = {"/".join(p for p in (prefix, path) if p): value for path, value in checksums(tree).items()}
    return sorted(path for path, value in found.items() if expected.get(path) != value)
