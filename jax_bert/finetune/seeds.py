"""The seed axis: every seed (or search member) of a task in one compiled step.

The train state (params, AdamW state) has a leading seed axis. `over_seeds` runs a per-seed function
over it, vmapped or as a `lax.map` loop inside the same step (`resolve_seed_loop` says which), and
`seed_sharding` splits the axis over the devices when their count divides it. Each seed is a pure
function of its seed number, whatever other seeds share the step: its own classifier head (and
pooler, when the checkpoint has none) drawn from key(seed) with Hugging Face's init (`seed_heads`),
and its own dropout stream (key(seed) folded with the step number; `dropout_key`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jax_bert.model import BertConfig

_HEAD_KEY, _DROPOUT_KEY = 0, 1  # fold_in tags: one per-seed stream for init, one for dropout
SEED_AXIS = "seeds"
SEED_LOOPS = ("auto", "vmap", "map")


def resolve_seed_loop(seed_loop: str, sharding) -> str:
    """'vmap' or 'map' for a `seed_loop` setting ('auto' picks per backend).

    'vmap' batches the seeds' matrix multiplies: 7.3x faster than seeds one after another on an
    H100 (docs/benchmarks.md). On XLA:CPU a vmapped seed costs ~1.4x a lone one (the batched small
    matmuls are slower there), while 'map' (`lax.map` over the seed axis inside the same compiled
    step) costs what a lone seed does and keeps one dispatch per step for all seeds. So 'auto' is
    'map' on a single CPU device and 'vmap' elsewhere, and always 'vmap' when the seed axis is
    sharded over devices (a loop over a sharded axis would gather it)."""
    if seed_loop not in SEED_LOOPS:
        raise ValueError(f"seed_loop must be one of {SEED_LOOPS}, got {seed_loop!r}.")
    if seed_loop == "auto":
        return "map" if jax.default_backend() == "cpu" and sharding is None else "vmap"
    return seed_loop


def over_seeds(fn, in_axes: tuple, seed_loop: str):
    """`jax.vmap(fn, in_axes)` (seed_loop 'vmap') or the same mapping as a `lax.map` loop ('map');
    in_axes entries are 0 (the argument has a leading seed axis) or None (shared by every seed)."""
    if seed_loop == "vmap":
        return jax.vmap(fn, in_axes=in_axes)

    def looped(*args):
        per_seed = [a if axis == 0 else None for a, axis in zip(args, in_axes)]

        def one(xs):
            return fn(*(x if axis == 0 else a for x, a, axis in zip(xs, args, in_axes)))

        return jax.lax.map(one, per_seed)

    return looped


def _normal(key, shape, std):
    return std * jax.random.normal(key, shape, jnp.float32)


def head_key(seed):
    """This seed's key for its new head params (any head draws them from it)."""
    return jax.random.fold_in(jax.random.key(seed), _HEAD_KEY)


def seed_heads(config: BertConfig, seed, with_pooler: bool) -> dict:
    """One seed's new params: classifier (and pooler) with HF's init, from key(seed)."""
    key = head_key(seed)
    k_cls, k_pool = jax.random.split(key)
    H, std = config.hidden_size, config.initializer_range
    heads = {"classifier": {"kernel": _normal(k_cls, (H, config.num_labels), std),
                            "bias": jnp.zeros((config.num_labels,), jnp.float32)}}
    if with_pooler:
        heads["pooler"] = {"dense": {"kernel": _normal(k_pool, (H, H), std),
                                     "bias": jnp.zeros((H,), jnp.float32)}}
    return heads


def dropout_key(seed, step):
    """This seed's dropout key at `step`."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _DROPOUT_KEY), step)


def one_seed_params(config, base, seed):
    heads = seed_heads(config, seed, "pooler" not in base["bert"])
    bert = dict(base["bert"])
    if "pooler" in heads:
        bert["pooler"] = heads["pooler"]
    return {"bert": bert, "classifier": heads["classifier"]}


def seed_sharding(n_seeds: int, devices=None) -> NamedSharding | None:
    """Seed axis split over a 1-D mesh when the device count divides the seeds; else None."""
    devices = list(devices if devices is not None else jax.devices())
    if len(devices) <= 1 or n_seeds % len(devices):
        return None
    return NamedSharding(Mesh(np.asarray(devices), (SEED_AXIS,)), P(SEED_AXIS))


def place(tree, sharding):
    return tree if sharding is None else jax.device_put(tree, sharding)
