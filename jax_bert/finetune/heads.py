"""What a task puts on the BERT body: a head's params, its logits and its loss, for the engine.

The engine (engine.py) trains and scores any `Head`; a head is a frozen (hashable) dataclass, since the
compiled steps are cached per head. Two heads:

    CLASSIFIER  BertForSequenceClassification: pooler + dropout + a [hidden, num_labels] layer on the first
                token; cross-entropy, or MSE for one label (GLUE). The default everywhere. The engine
                pads its columns to SHARED_CLASSES so that every GLUE task shares the compiled programs.
    SPAN        BertForQuestionAnswering: a [hidden, 2] layer on every token gives start and end logits
                ([batch, length, 2]); the loss is the mean of the start and end cross-entropies (SQuAD).
                Labels are [batch, 2] (start and end token). Padding positions are left out of the softmax,
                so the length bucket a batch runs at changes nothing (Hugging Face counts them in; on a batch
                without padding the two are the same, which the parity test checks). It trains and scores
                on packed tokens as the classifier does: the body computes only the real tokens.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jax_bert import model
from jax_bert.finetune.seeds import head_key, one_seed_params
from jax_bert.model.packing import to_padded

# Every GLUE task (1, 2 or 3 labels) shares one set of compiled programs: the classifier has at least this
# many columns; those past a task's labels start at zero, their logits are masked out of the loss (so they
# get no gradient and stay zero) and cut from the outputs; a regression task (1 label) reads column 0,
# chosen by an input of the step ("regression" in the batch), not by its program.
SHARED_CLASSES = 3


def classifier_width(num_labels: int) -> int:
    """The classifier's columns in the compiled programs: at least SHARED_CLASSES."""
    return max(int(num_labels), SHARED_CLASSES)


def pad_classifier(params: dict, width: int) -> dict:
    """One seed's params with the classifier padded by zero columns to `width`."""
    cls = params["classifier"]
    pad = width - cls["bias"].shape[-1]
    return dict(params, classifier={"kernel": jnp.pad(cls["kernel"], ((0, 0), (0, pad))),
                                    "bias": jnp.pad(cls["bias"], (0, pad))})


def cut_classifier(params: dict, num_labels: int) -> dict:
    """Params (any leading axes) with the classifier cut back to the task's num_labels columns."""
    cls = params["classifier"]
    return dict(params, classifier={"kernel": cls["kernel"][..., :num_labels], "bias": cls["bias"][..., :num_labels]})


def weighted_loss(logits, labels, weights, classes=None, regression=None):
    """Mean over real rows (weight 1) of CE (num_labels > 1) or MSE (1 label), as HF computes.

    With `classes` (bool [columns]: the task's labels among the classifier's columns) and `regression`
    (a bool scalar input), one program serves every task: MSE on column 0 when regression, else CE over
    the task's columns (the others' logits left out of the softmax). Without them, the logits' width
    says which (1: MSE)."""
    logits = logits.astype(jnp.float32)
    if classes is None:
        if logits.shape[-1] == 1:
            per = (logits[:, 0] - labels.astype(jnp.float32)) ** 2
        else:
            logp = jax.nn.log_softmax(logits, axis=-1)
            per = -jnp.take_along_axis(logp, labels.astype(jnp.int32)[:, None], axis=-1)[:, 0]
    else:
        mse = (logits[:, 0] - labels.astype(jnp.float32)) ** 2
        logp = jax.nn.log_softmax(jnp.where(classes, logits, -jnp.inf), axis=-1)
        # a regression target read as a class id may be out of range: clipped (that branch is unused)
        label_ids = jnp.clip(labels.astype(jnp.int32), 0, logits.shape[-1] - 1)
        ce = -jnp.take_along_axis(logp, label_ids[:, None], axis=-1)[:, 0]
        per = jnp.where(regression, mse, ce)
    return jnp.sum(per * weights) / jnp.maximum(jnp.sum(weights), 1.0)


@dataclasses.dataclass(frozen=True)
class ClassifierHead:
    packable: bool = True  # trains on packed tokens (jax_bert/model/packing.py)
    width: int = 0  # the classifier's columns in the compiled programs (0: config.num_labels); see SHARED_CLASSES

    def init(self, config, base, seed):
        """One seed's params: the body, and a classifier (and pooler) drawn from key(seed) for
        config.num_labels (as a run alone draws it), padded with zero columns to `width`."""
        params = one_seed_params(config, base, seed)
        return pad_classifier(params, self.width) if self.width > config.num_labels else params

    def apply(self, config, params, batch, dropout_rng=None, packing=None):
        return model.apply(config, params, batch["input_ids"], batch.get("attention_mask"), batch["token_type_ids"],
                           head="classifier", dropout_rng=dropout_rng, packing=packing)

    def loss(self, logits, batch):
        # the engine's batches name the task's columns of the shared classifier (classes, regression)
        return weighted_loss(logits, batch["labels"], batch["weights"], batch.get("classes"), batch.get("regression"))

    def output_shape(self, config, width: int) -> tuple[int, ...]:
        return (config.num_labels,)

    def label_problem(self, labels: np.ndarray, num_labels: int, width: int) -> str | None:
        """Why these labels cannot be trained on, or None."""
        if num_labels > 1 and (np.any(labels < 0) or np.any(labels >= num_labels)):
            return (f"labels must be class ids in [0, {num_labels}); got "
                    f"{sorted(set(np.unique(labels).tolist()))[:10]}.")
        return None


@dataclasses.dataclass(frozen=True)
class SpanHead:
    packable: bool = True  # the body runs on packed tokens; the logits move back to the padded layout

    def init(self, config, base, seed):
        """One seed's params: the body without its pooler (BertForQuestionAnswering has none) and
        qa_outputs drawn from key(seed) with HF's init (normal(initializer_range), zero bias)."""
        kernel = config.initializer_range * jax.random.normal(head_key(seed), (config.hidden_size, 2), jnp.float32)
        bert = {k: v for k, v in base["bert"].items() if k != "pooler"}
        return {"bert": bert, "qa_outputs": {"kernel": kernel, "bias": jnp.zeros((2,), jnp.float32)}}

    def apply(self, config, params, batch, dropout_rng=None, packing=None):
        """[batch, length, 2]: start and end logits of every position (float32). With `packing` the body and
        qa_outputs compute the real tokens only, and the logits of padding positions are 0 (the loss and
        the answers never read them)."""
        hidden = model.apply(config, {"bert": params["bert"]}, batch["input_ids"], batch.get("attention_mask"),
                             batch["token_type_ids"], head="none", dropout_rng=dropout_rng, packing=packing)
        out = params["qa_outputs"]
        logits = hidden.astype(jnp.float32) @ out["kernel"].astype(jnp.float32) + out["bias"].astype(jnp.float32)
        return logits if packing is None else to_padded(logits, packing)

    def loss(self, logits, batch):
        """Mean over real rows of (CE(start) + CE(end)) / 2, the softmax over the real positions."""
        if "attention_mask" in batch:
            real = batch["attention_mask"][:, :, None] != 0
        else:  # a packed batch (jax_bert/model/packing.py): a slot is real when it holds a packed token
            real = batch["slot_token"][:, :, None] < batch["input_ids"].shape[-1]
        logp = jax.nn.log_softmax(jnp.where(real, logits, -1e9), axis=1)  # [B, L, 2]
        labels = batch["labels"].astype(jnp.int32)  # [B, 2]
        picked = jnp.take_along_axis(logp, labels[:, None, :], axis=1)[:, 0, :]  # [B, 2]
        per = -picked.mean(axis=-1)
        return jnp.sum(per * batch["weights"]) / jnp.maximum(jnp.sum(batch["weights"]), 1.0)

    def output_shape(self, config, width: int) -> tuple[int, ...]:
        return (width, 2)

    def label_problem(self, labels: np.ndarray, num_labels: int, width: int) -> str | None:
        if labels.ndim != 2 or labels.shape[1] != 2:
            return f"span labels must be [examples, 2] (start, end token); got shape {labels.shape}."
        if np.any(labels < 0) or np.any(labels >= width) or np.any(labels[:, 1] < labels[:, 0]):
            return f"span labels must be token positions in [0, {width}) with start <= end."
        return None


CLASSIFIER = ClassifierHead()
SPAN = SpanHead()
