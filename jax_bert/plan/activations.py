"""An activation model: the bytes per device the backward pass keeps of one micro-batch, from the model's
shapes alone (a pure function; nothing compiled). It stands beside XLA:CPU's temporaries because the CPU
compiler's buffer assignment is not a GPU's, and no GPU compiler is installed here to ask.

What it counts, per device, for `rows` sequences of `seq_len` tokens (the micro-batch after the data x
fsdp split and gradient accumulation), each tensor in the compute dtype unless said:

- per layer, what JAX's autodiff saves of jax_bert/model/bert.py's scanned Layer (read with
  jax.ad_checkpoint.print_saved_residuals on a tiny model): 7 hidden-wide tensors (the layer input, each
  layernorm's input, centred input and output), query, key, value and the attention context, 4
  intermediate-wide tensors (the matmul's output, the exact GELU's two terms, its output), the attention
  probabilities [rows, heads, seq, seq] (twice with attention dropout: the softmax's output and the
  dropped probabilities), the layernorms' float32 statistics, and the dropout masks as one-byte
  predicates (two hidden-wide per layer, one probabilities-wide). Tensor parallelism splits the heads and
  the intermediate features (query, key, value, context, probabilities, GELU), not the hidden states.
- with remat (config.model.remat: each Layer under nn.remat, flax's default policy saves nothing inside
  it), a layer keeps only its input; the backward pass recomputes one layer at a time, so the kept
  bytes are every layer's input plus one layer's full set.
- the embeddings' layernorm input, and the MLM head at the `slots` predicted positions: the gathered
  hidden states, the transform's dense output and GELU terms, its 4 float32 layernorm tensors, and the
  float32 logits and their softmax [rows, slots, vocab / tensor]; with distillation, each teacher's
  float32 probabilities at those slots (the target the loss backward reads).

What it does not count: XLA's fusion (a fused elementwise chain may keep fewer intermediates than JAX
saves) and buffer reuse, the transient temporaries of each op (the gradients of the layer being
differentiated, the params' gradients, optimizer updates and RigL's scores, which scale with the params,
not the batch), and the state itself (the planner's exact state bytes). On the tiny recipe of
tests/plan/test_activations.py XLA:CPU's temporaries are 1.00 to 1.37 times this count (docs/scaling.md).
"""
from __future__ import annotations

import dataclasses

F32 = 4


@dataclasses.dataclass(frozen=True)
class Shapes:
    """What the model's activations depend on (a BertConfig and the batch, as plain numbers)."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int
    seq_len: int
    slots: int  # predicted positions per sequence (the MLM head runs only there)
    dtype_bytes: int  # the compute dtype: 4 for float32, 2 for bfloat16
    attention_dropout: bool = True
    hidden_dropout: bool = True
    teachers: int = 0  # distillation teachers whose probabilities the loss keeps


def layer_bytes(s: Shapes, rows: int, tensor: int = 1) -> int:
    """Bytes one layer keeps for the backward pass without remat."""
    tokens = rows * s.seq_len
    # As JAX's autodiff saves them (the module's docstring): 7 hidden-wide tensors the heads do not split,
    # 4 they split (query, key, value, context) and 4 intermediate-wide ones.
    hidden_states = 7 * s.hidden + (4 * s.hidden + 4 * s.intermediate) // tensor
    probs = rows * (s.heads // tensor) * s.seq_len * s.seq_len  # one [rows, heads, seq, seq]
    dropout_masks = 2 * tokens * s.hidden if s.hidden_dropout else 0  # bool, 1 byte: the select's predicate
    if s.attention_dropout:
        dropout_masks += probs  # and the dropped probabilities are kept beside the softmax's output
        probs *= 2
    layernorm_stats = 2 * 2 * tokens * F32  # two layernorms' mean and variance
    return tokens * hidden_states * s.dtype_bytes + probs * s.dtype_bytes + dropout_masks + layernorm_stats


def head_bytes(s: Shapes, rows: int, tensor: int = 1) -> int:
    """Bytes the embeddings' layernorm and the MLM head keep (the logits dominate)."""
    tokens, predicted = rows * s.seq_len, rows * s.slots
    embeddings = tokens * s.hidden * s.dtype_bytes + 2 * tokens * F32
    # the gathered input, the dense output, the GELU's two terms; the float32 layernorm's 4
    transform = predicted * s.hidden * (4 * s.dtype_bytes + 4 * F32)
    logits = predicted * (s.vocab // tensor) * F32 * (2 + s.teachers)  # logits, softmax, teachers' targets
    return embeddings + transform + logits


def kept_bytes(s: Shapes, rows: int, *, tensor: int = 1, remat: bool = False) -> dict[str, int]:
    """{layers, head, total}: bytes per device the backward pass keeps for `rows` sequences per device."""
    one_layer = layer_bytes(s, rows, tensor)
    if remat:
        layers = s.layers * rows * s.seq_len * s.hidden * s.dtype_bytes + one_layer
    else:
        layers = s.layers * one_layer
    head = head_bytes(s, rows, tensor)
    return {"layers": layers, "head": head, "total": layers + head}


def shapes_of(config, *, seq_len: int, slots: int, teachers: int = 0) -> Shapes:
    """The Shapes of a BertConfig for batches of `seq_len` tokens with `slots` predictions each."""
    return Shapes(layers=config.num_hidden_layers, hidden=config.hidden_size, heads=config.num_attention_heads,
                  intermediate=config.intermediate_size, vocab=config.vocab_size, seq_len=seq_len, slots=slots,
                  dtype_bytes=2 if config.dtype == "bfloat16" else 4,
                  attention_dropout=config.attention_probs_dropout_prob > 0,
                  hidden_dropout=config.hidden_dropout_prob > 0, teachers=teachers)
