"""What `sparse` (transform.py) asks of a mask schedule, and when a schedule's update steps fall.

A schedule (RiglSchedule in rigl.py, GmpSchedule in gmp.py, or any object with these methods) says
whether the update after optimizer step `count` changes the masks (`is_update`) and, on such a step,
what the masks become (`update`). `sparse` calls `update` only under `lax.cond(is_update(count))`, so
other steps pay nothing and `update` itself is unconditional; it sees the weights as they are after
this step's inner update, the dense gradient, and the inner optimizer's state, and returns a
`MaskUpdate`. `check` validates the settings once, when the optimizer is built.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp


class MaskUpdate(NamedTuple):
    """The result of a schedule's update.

    masks: the new mask tree. keep: bool tree shaped like it, True where a weight keeps the value this
    step's update gives it; every other weight becomes exactly 0 (pruned ones, and for RigL the
    regrown ones, which start again from 0). inner_state: the inner optimizer's state (RigL may zero
    the Adam moments of regrown weights).
    """

    masks: Any
    keep: Any
    inner_state: Any


class MaskSchedule(Protocol):
    def check(self) -> None:
        """ValueError naming the bad setting."""

    def is_update(self, count) -> jax.Array:
        """jnp bool: does the update after optimizer step `count` (1-based) change the masks?"""

    def update(self, count, weights, masks, grads, inner_state) -> MaskUpdate:
        """The masks after update `count`: `weights` are the params after this update with the old
        masks applied, `grads` the dense gradient it received, `inner_state` the inner optimizer's
        state after it."""


def is_update_step(step, *, freq: int, start: int, end: int | None = None):
    """jnp bool: start <= step <= end (inclusive, as the RigL code) and (step - start) % freq == 0.

    end=None: no last step. With freq=start=100 the updates are at 100, 200, ...
    """
    if freq <= 0:
        raise ValueError(f"mask update frequency must be > 0, got {freq}")
    step = jnp.asarray(step, jnp.int32)
    ok = (step >= start) & ((step - start) % freq == 0)
    if end is not None:
        ok = ok & (step <= end)
    return ok
