"""The hyper-parameters of a fine-tuning run and the learning rate of every step, per member.

`HParams` holds one task's settings (a task family's config fills them: glue/config.py for GLUE). The
learning-rate schedule is computed on the host, once, as a table: linear warm-up, then linear decay to
0 (Hugging Face's `get_linear_schedule_with_warmup`, in float64, rounded as torch rounds it). A
hyper-parameter search trains several members in one program, each with its own learning rate,
warm-up and epochs: `member_learning_rates` is the [steps, members] table, 0 after a member's end.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

from jax_bert.train import schedules


@dataclasses.dataclass(frozen=True)
class HParams:
    """Fine-tuning hyperparameters of one task (a task family's config fills them: `from_values`)."""

    learning_rate: float
    batch_size: int
    epochs: int
    weight_decay: float
    warmup_steps: int
    clip: float  # global gradient norm (HF Trainer's max_grad_norm)
    b1: float
    b2: float
    eps: float
    eval_batch_size: int
    sparse_threshold: float  # a kernel/embedding with more exact zeros than this is masked
    # Drop each epoch's last partial training batch (Hugging Face's dataloader_drop_last, as the original's
    # GLUE runs); False trains on it too, its missing rows padded with weight 0.
    drop_last: bool = False

    @classmethod
    def from_values(cls, values: Mapping, **changes) -> "HParams":
        """HParams from a mapping that holds every field (other keys are ignored), then `changes`."""
        fields = dataclasses.fields(cls)
        unknown = sorted(set(changes) - {f.name for f in fields})
        if unknown:
            raise TypeError(f"HParams has no fields {unknown}.")
        values = dict(values) | changes
        cast = {"float": float, "int": int, "bool": bool}  # the annotations are strings (postponed evaluation)
        missing = [f.name for f in fields if f.name not in values and f.default is dataclasses.MISSING]
        if missing:
            raise TypeError(f"HParams needs the fields {missing}.")
        return cls(**{f.name: cast[f.type](values[f.name]) for f in fields if f.name in values})

    def __post_init__(self):
        for name in ("batch_size", "epochs", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if not 0.0 <= self.sparse_threshold < 1.0:
            raise ValueError(f"sparse_threshold must be in [0, 1), got {self.sparse_threshold}.")


def steps_per_epoch(n_train: int, batch_size: int, drop_last: bool = False) -> int:
    """Batches per epoch: every example (the last batch partial), or with `drop_last` only full batches; a
    training set smaller than one batch is still one (partial) batch, where the original would train 0 steps."""
    if drop_last and n_train >= batch_size:
        return n_train // batch_size
    return math.ceil(n_train / batch_size)


def total_steps(n_train: int, hp: HParams) -> int:
    return hp.epochs * steps_per_epoch(n_train, hp.batch_size, hp.drop_last)


def learning_rates(hp: HParams, steps: int) -> np.ndarray:
    """float32 [steps]: the learning rate of every step (linear warm-up, then linear decay to 0),
    computed on the host in float64 as torch's scheduler does, then rounded as torch rounds it."""
    schedule = schedules.warmup_linear(hp.learning_rate, hp.warmup_steps, steps)
    return np.asarray(schedule(np.arange(steps)), np.float32)


def member_learning_rates(member_hps: Sequence[HParams], steps_per_epoch: int) -> np.ndarray:
    """float32 [steps, members]: each member's own schedule (`learning_rates` over its epochs), 0 after
    its last step; steps = the most of any member."""
    lengths = [m.epochs * steps_per_epoch for m in member_hps]
    table = np.zeros((max(lengths), len(member_hps)), np.float32)
    for i, (m, n) in enumerate(zip(member_hps, lengths)):
        table[:n, i] = learning_rates(m, n)
    return table
