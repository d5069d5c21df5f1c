"""The small functional API: eval-mode forward passes that return float32 numpy-friendly arrays."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jax_bert.model import bert
from jax_bert.model.config import BertConfig
from jax_bert.model.layers import match_layout


@functools.partial(jax.jit, static_argnames=("config", "head"))
def _forward(config, head, params, input_ids, attention_mask, token_type_ids, masked_positions):
    out = bert.apply(config, params, input_ids, attention_mask, token_type_ids, head=head,
                      masked_positions=masked_positions)
    return out.astype(jnp.float32)


def _run(config: BertConfig, params, head, input_ids, attention_mask, token_type_ids, masked_positions=None):
    input_ids = jnp.asarray(input_ids, jnp.int32)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [batch, length], got shape {input_ids.shape}.")
    if input_ids.shape[1] > config.max_position_embeddings:
        raise ValueError(f"sequence length {input_ids.shape[1]} exceeds max_position_embeddings "
                         f"{config.max_position_embeddings}; truncate the input.")
    attention_mask = jnp.ones_like(input_ids) if attention_mask is None else jnp.asarray(attention_mask, jnp.int32)
    token_type_ids = jnp.zeros_like(input_ids) if token_type_ids is None else jnp.asarray(token_type_ids, jnp.int32)
    params = match_layout(params, config.scan_layers, config.num_hidden_layers)
    return _forward(config, head, params, input_ids, attention_mask, token_type_ids, masked_positions)


def encode(config: BertConfig, params, input_ids, attention_mask=None, token_type_ids=None):
    """Last hidden state [batch, length, hidden] (Hugging Face BertModel's last_hidden_state)."""
    return _run(config, params, "none", input_ids, attention_mask, token_type_ids)


def mlm_logits(config: BertConfig, params, input_ids, attention_mask=None, token_type_ids=None,
               masked_positions=None):
    """MLM logits [batch, length, vocab], or [batch, slots, vocab] at `masked_positions` [batch, slots]."""
    if masked_positions is not None:
        masked_positions = jnp.asarray(masked_positions, jnp.int32)
    return _run(config, params, "mlm", input_ids, attention_mask, token_type_ids, masked_positions)


def classify(config: BertConfig, params, input_ids, attention_mask=None, token_type_ids=None):
    """Sequence-classification logits [batch, num_labels] (one label: the regression output)."""
    return _run(config, params, "classifier", input_ids, attention_mask, token_type_ids)
