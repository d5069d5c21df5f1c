"""MLM and knowledge-distillation losses over the gathered prediction slots.

Shapes: logits [B, P, V] at the P prediction slots of each sequence, labels [B, P] int,
weights [B, P] (1 for a real masked token, 0 for a padding slot). Every loss returns *sums*
(loss_sum, weight_sum, ...) in float32, so that gradient accumulation and cross-device reduction
are plain sums and the mean is one division at the end: mean loss = loss_sum / weight_sum
(natural log). Softmaxes are computed in float32 whatever the logits' dtype (bf16 logits would
lose the small probabilities).
"""
from __future__ import annotations

from typing import Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np


def _check_shapes(logits, labels, weights, what="logits"):
    if logits.ndim < 2 or logits.shape[:-1] != labels.shape or labels.shape != weights.shape:
        raise ValueError(
            f"{what} must be [..., V] with labels and weights of shape {what}.shape[:-1]; got "
            f"{what} {logits.shape}, labels {labels.shape}, weights {weights.shape}."
        )


def _safe_labels(labels, weights):
    # Padding slots may hold -100 or other junk; a gather out of range gives NaN, and 0 * NaN is
    # NaN, so point those slots at class 0 (their weight zeroes them anyway). An out-of-range
    # label in a real slot is left alone so that it shows up as NaN instead of a silent class 0.
    return jnp.where(weights > 0, labels, 0)


def _label_is_top(logits, labels):
    """1.0 where the label's logit is the largest: the argmax, but without XLA's slow fused
    (value, index) reduction over the vocabulary (a tie at the top counts as correct)."""
    label_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return (label_logit >= jnp.max(logits, axis=-1)).astype(jnp.float32)


def mlm_loss(logits, labels, weights) -> dict[str, jax.Array]:
    """Cross-entropy sums: {'loss_sum', 'weight_sum', 'correct_sum'} (float32 scalars)."""
    _check_shapes(logits, labels, weights)
    weights = weights.astype(jnp.float32)
    logits32 = logits.astype(jnp.float32)
    labels = _safe_labels(labels, weights)
    # -log softmax at the label = logsumexp - label logit: fewer passes over [B, P, vocab] (and in
    # the backward pass) than indexing a full log_softmax; the vocabulary head dominates small models.
    label_logit = jnp.take_along_axis(logits32, labels[..., None], axis=-1)[..., 0]
    nll = jax.nn.logsumexp(logits32, axis=-1) - label_logit
    correct = _label_is_top(logits, labels)
    return {
        "loss_sum": jnp.sum(nll * weights),
        "weight_sum": jnp.sum(weights),
        "correct_sum": jnp.sum(correct * weights),
    }


def linear_decay(start, end, step, total):
    """start -> end linearly over `total` steps, then end (for a decaying KD factor or temperature).

    jit-friendly: `step` may be traced; `total` must be a positive Python number.
    """
    if not isinstance(total, (int, float, np.integer, np.floating)) or total <= 0:
        raise ValueError(f"total (the decay length in steps) must be a number > 0, got {total!r}.")
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / float(total), 0.0, 1.0)
    return start + (end - start) * frac


def _check_number(name, value, low, high=None, low_open=False):
    # Traced values (a decaying factor inside jit) cannot be checked here; Python numbers can.
    if isinstance(value, (int, float, np.integer, np.floating)):
        bad = value <= low if low_open else value < low
        if bad or (high is not None and value > high):
            rng = f"({low}, ...)" if low_open else f"[{low}, {high}]"
            raise ValueError(f"{name} must be in {rng}, got {value}.")


def teacher_distribution(teacher_logits, temperature=1.0):
    """softmax(teacher_logits / T) in float32."""
    _check_number("temperature", temperature, 0.0, low_open=True)
    return jax.nn.softmax(teacher_logits.astype(jnp.float32) / temperature, axis=-1)


def combine_teachers(teacher_logits: Sequence, weights=None, *, temperature=1.0):
    """The weighted average of several teachers' softmax(logits / T); weights are normalised.

    weights=None averages uniformly.
    """
    if not isinstance(teacher_logits, (list, tuple)) or not teacher_logits:
        raise ValueError("combine_teachers needs a non-empty list of teacher logits.")
    if weights is None:
        weights = [1.0] * len(teacher_logits)
    weights = [float(w) for w in weights]
    if len(weights) != len(teacher_logits):
        raise ValueError(
            f"got {len(teacher_logits)} teachers but {len(weights)} teacher weights; give one weight each."
        )
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"teacher weights must be >= 0 with a positive sum, got {weights}.")
    shapes = {t.shape for t in teacher_logits}
    if len(shapes) != 1:
        raise ValueError(f"all teachers' logits must have one shape, got {sorted(shapes)}.")
    total = sum(weights)
    return sum((w / total) * teacher_distribution(t, temperature) for w, t in zip(weights, teacher_logits))


def distillation_loss(
    student_logits,
    teacher_logits: Union[jax.Array, Sequence[jax.Array]],
    labels,
    weights,
    *,
    factor,
    temperature,
    scale_by_t2: bool = False,
    student_temperature: bool = False,
    teacher_weights=None,
) -> dict[str, jax.Array]:
    """Soft cross-entropy against the mixed target, summed over the real prediction slots.

    target = factor * softmax(teacher / T) + (1 - factor) * one_hot(label), and
    loss = -sum_v target_v * log_softmax(student)_v. As in the original project the student's logits
    are *not* divided by T (`student_temperature=True` divides them, as in Hinton et al.);
    `scale_by_t2` multiplies the loss by T² (Hinton's gradient-scale correction). A list of teacher
    logits is combined with `combine_teachers(teacher_logits, teacher_weights)`. factor and
    temperature may be traced scalars (e.g. from `linear_decay`).

    Returns {'loss_sum', 'weight_sum', 'correct_sum'} (correct: the student's argmax == label);
    with factor 0 the loss equals `mlm_loss`.
    """
    _check_shapes(student_logits, labels, weights, "student_logits")
    _check_number("factor", factor, 0.0, 1.0)
    _check_number("temperature", temperature, 0.0, low_open=True)
    if isinstance(teacher_logits, (list, tuple)):
        teacher_probs = combine_teachers(teacher_logits, teacher_weights, temperature=temperature)
    else:
        teacher_probs = teacher_distribution(teacher_logits, temperature)
    teacher_probs = jax.lax.stop_gradient(teacher_probs)  # the teacher is frozen
    if teacher_probs.shape != student_logits.shape:
        raise ValueError(
            f"teacher logits {teacher_probs.shape} and student logits {student_logits.shape} differ in shape."
        )
    weights = weights.astype(jnp.float32)
    vocab = student_logits.shape[-1]
    labels = _safe_labels(labels, weights)
    target = factor * teacher_probs + (1.0 - factor) * jax.nn.one_hot(labels, vocab, dtype=jnp.float32)
    student = student_logits.astype(jnp.float32)
    if student_temperature:
        student = student / temperature
    per_slot = -jnp.sum(target * jax.nn.log_softmax(student, axis=-1), axis=-1)
    if scale_by_t2:
        per_slot = per_slot * jnp.square(jnp.asarray(temperature, jnp.float32))
    correct = _label_is_top(student_logits, labels)
    return {
        "loss_sum": jnp.sum(per_slot * weights),
        "weight_sum": jnp.sum(weights),
        "correct_sum": jnp.sum(correct * weights),
    }
