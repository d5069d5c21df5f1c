"""Sharding constraints on the model's activations, by logical axis names.

Params carry logical axis names (`nn.with_logical_partitioning` in bert.py); so do the activations
that decide how a sharded step computes: the hidden states between layers and blocks are
("batch", None, None), queries/keys/values ("batch", None, "heads", None), the feed-forward's inner
activations ("batch", None, "mlp"), the vocabulary logits ("batch", None, "vocab"). Without these
names XLA's sharding propagation is free to follow the params instead: a kernel sharded over fsdp
along its input dimension then yields activations gathered over the whole global batch and partial
sums all-reduced, which costs memory and FLOPs proportional to the fsdp size.

A trainer that runs the model on a mesh maps the names to mesh axes by tracing inside
`activation_sharding(to_sharding)` (jax_bert.train.sharding does, with the same rules table as the
params). Outside that context every constraint is a no-op: one device, fine-tuning, tests.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

import jax
from jax.sharding import PartitionSpec, Sharding

# (logical spec, shape) -> the sharding to constrain an activation of that shape to.
ToSharding = Callable[[PartitionSpec, tuple], Sharding]

_TO_SHARDING: contextvars.ContextVar[ToSharding | None] = contextvars.ContextVar("activation_sharding",
                                                                                 default=None)


@contextlib.contextmanager
def activation_sharding(to_sharding: ToSharding) -> Iterator[None]:
    """While tracing inside this context, `constrain` pins activations with `to_sharding`."""
    token = _TO_SHARDING.set(to_sharding)
    try:
        yield
    finally:
        _TO_SHARDING.reset(token)


def constrain(x: jax.Array, *names: str | None) -> jax.Array:
    """x with its dimensions' logical names (missing trailing names: None); a no-op outside
    `activation_sharding`."""
    to_sharding = _TO_SHARDING.get()
    if to_sharding is None:
        return x
    return jax.lax.with_sharding_constraint(x, to_sharding(PartitionSpec(*names), x.shape))
