"""Flax BERT that computes exactly what Hugging Face's PyTorch BERT computes.

Param tree (names mirror Hugging Face's so conversion is a rename plus a transpose):

    bert/embeddings/{word,position,token_type}_embeddings/embedding, bert/embeddings/LayerNorm/{scale,bias}
    bert/encoder/layer_N/...   or, with scan_layers, bert/encoder/layers/... with a leading layer axis
        attention/self/{query,key,value}/{kernel,bias}, attention/output/dense, attention/output/LayerNorm,
        intermediate/dense, output/dense, output/LayerNorm
    bert/pooler/dense                       (classifier models only; HF's BertForMaskedLM has no pooler)
    mlm/transform/dense, mlm/transform/LayerNorm, mlm/bias   (decoder tied to word_embeddings)
    classifier/{kernel,bias}

Every Dense kernel is [in, out]. Params carry logical axis names (see jax_bert/train/sharding.py), and so
do the activations that decide how a sharded step computes (partitioning.py).
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_bert.model.config import BertConfig
from jax_bert.model.dropout import Dropout
from jax_bert.model.packing import to_packed, to_padded
from jax_bert.model.partitioning import constrain

HEADS = ("mlm", "classifier", "none")


def gelu_exact(x):
    """Exact (erf) GELU written as PyTorch's `F.gelu` computes it: x * (1 + erf(x / sqrt 2)) / 2.

    jax.nn.gelu(approximate=False) uses erfc instead, which XLA:CPU evaluates with two polynomial
    branches and an exp: 2-3% of the BERT-base training step on a 2-core CPU. The two forms differ
    by float32 rounding only (erfc is more accurate far in the negative tail, where GELU is ~0)."""
    return x * (0.5 + 0.5 * jax.lax.erf(x * np.sqrt(0.5).astype(x.dtype)))


def _act(name: str):
    if name == "gelu":
        return gelu_exact
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: jax.nn.gelu(x, approximate=True)
    if name == "relu":
        return jax.nn.relu
    raise ValueError(f"unknown activation {name!r}")


def _dtype(config: BertConfig):
    return jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32


def _dense(config: BertConfig, features: int, axes: tuple, name: str) -> nn.Dense:
    init = nn.initializers.normal(stddev=config.initializer_range)
    return nn.Dense(
        features,
        dtype=_dtype(config),
        param_dtype=jnp.float32,
        kernel_init=nn.with_logical_partitioning(init, axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (axes[1],)),
        name=name,
    )


def _layer_norm(config: BertConfig, name: str = "LayerNorm", dtype=None) -> nn.LayerNorm:
    return nn.LayerNorm(
        epsilon=config.layer_norm_eps,
        dtype=dtype or _dtype(config),
        param_dtype=jnp.float32,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("norm",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("norm",)),
        name=name,
    )


def _layout_length(config: BertConfig, length: int) -> int:
    """The sequence length dropout masks are laid out for (BertConfig.dropout_layout_length)."""
    if not config.dropout_layout_length:
        return length
    if length > config.dropout_layout_length:
        raise ValueError(f"sequence length {length} exceeds dropout_layout_length "
                         f"{config.dropout_layout_length}: pad to at most that length.")
    return config.dropout_layout_length


def _embed(config: BertConfig, num: int, axes: tuple, name: str) -> nn.Embed:
    init = nn.initializers.normal(stddev=config.initializer_range)
    return nn.Embed(num, config.hidden_size, dtype=_dtype(config), param_dtype=jnp.float32,
                    embedding_init=nn.with_logical_partitioning(init, axes), name=name)


def _hidden_dropout(config: BertConfig, deterministic: bool, h, length: int, packing=None):
    """Hidden-state dropout: h is [batch, positions, hidden] cut from a sequence of `length`, or packed
    tokens [T, hidden] (see packing.py); either way each real position draws the mask it draws in
    the [batch, dropout layout length, hidden] layout, so packing and padding change nothing."""
    if packing is not None and h.ndim == 2:
        layout = (packing["slot_token"].shape[0], _layout_length(config, length), h.shape[1])
        return Dropout(config.hidden_dropout_prob)(h, deterministic=deterministic, layout=layout,
                                                   rows=packing["dropout_rows"])
    layout = (h.shape[0], _layout_length(config, length), h.shape[2])
    return Dropout(config.hidden_dropout_prob)(h, deterministic=deterministic, layout=layout)


def _first_tokens(x, packing=None):
    """The first position of every row, [batch, 1, hidden], from padded [batch, length, hidden] or packed x."""
    if packing is None:
        return x[:, :1]
    return jnp.take(x, packing["slot_token"][:, :1], axis=0)


class Embeddings(nn.Module):
    config: BertConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, input_ids, token_type_ids, packing=None):
        """input_ids, token_type_ids: [batch, length], or packed [T] with `packing` (packing.py)."""
        cfg = self.config
        word = _embed(cfg, cfg.vocab_size, ("vocab", "embed"), "word_embeddings")
        position = _embed(cfg, cfg.max_position_embeddings, (None, "embed"), "position_embeddings")
        token_type = _embed(cfg, cfg.type_vocab_size, (None, "embed"), "token_type_embeddings")
        if packing is None:
            length = input_ids.shape[-1]
            positions = jnp.arange(length)[None, :]
        else:
            length = packing["slot_token"].shape[1]
            positions = packing["token_slot"] % length  # dummies: position 0
        # Split over the batch, whole along the hidden axis: the table may be sharded along it (fsdp).
        x = constrain(word(input_ids) + position(positions) + token_type(token_type_ids), "batch")
        x = _layer_norm(cfg)(x)
        return _hidden_dropout(cfg, self.deterministic, x, length, packing)


class SelfAttention(nn.Module):
    """Multi-head self-attention; with first_token_only, only the first position's query (all keys)."""

    config: BertConfig
    deterministic: bool = True
    first_token_only: bool = False

    @nn.compact
    def __call__(self, x, attention_mask, packing=None):
        """x: [batch, length, hidden], or packed [T, hidden] with `packing`; returns the padded layout
        [batch, length (1 with first_token_only), hidden]: the projections run on x as it is, the
        attention itself on [batch, length]."""
        cfg = self.config
        batch, length = attention_mask.shape
        padded = (lambda t: t) if packing is None else (lambda t: to_padded(t, packing))
        split = lambda t: constrain(t.reshape(batch, t.shape[1], cfg.num_attention_heads, cfg.head_dim),
                                    "batch", None, "heads")
        query = _dense(cfg, cfg.hidden_size, ("embed", "heads"), "query")
        if self.first_token_only:
            q = split(query(_first_tokens(x, packing)))
        else:
            q = split(padded(query(x)))
        queries = q.shape[1]
        k = split(padded(_dense(cfg, cfg.hidden_size, ("embed", "heads"), "key")(x)))
        v = split(padded(_dense(cfg, cfg.hidden_size, ("embed", "heads"), "value")(x)))
        mask = attention_mask[:, None, None, :].astype(bool)  # [batch, heads, q, k]: padding keys off
        dropout = cfg.attention_probs_dropout_prob
        if self.deterministic or dropout == 0.0:
            # jax.nn.dot_product_attention: JAX picks the implementation (XLA today; cuDNN may be requested).
            out = jax.nn.dot_product_attention(q, k, v, mask=mask)
        else:
            # jax.nn.dot_product_attention has no dropout on the probabilities, which BERT trains with.
            scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(cfg.head_dim).astype(q.dtype)
            scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
            probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(q.dtype)
            full = _layout_length(cfg, length)
            probs = Dropout(dropout)(probs, deterministic=False, layout=probs.shape[:2] + (full, full))
            out = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
        return constrain(out.reshape(batch, queries, cfg.hidden_size), "batch", None, "heads")


class AttentionBlock(nn.Module):
    config: BertConfig
    deterministic: bool = True
    first_token_only: bool = False

    @nn.compact
    def __call__(self, x, attention_mask, packing=None):
        cfg = self.config
        h = SelfAttention(cfg, self.deterministic, self.first_token_only, name="self")(x, attention_mask, packing)
        if self.first_token_only:
            residual = _first_tokens(x, packing)
        else:
            residual = x
            if packing is not None:
                h = to_packed(h, packing)
        return AttentionOutput(cfg, self.deterministic, name="output")(h, residual, attention_mask.shape[1], packing)


class AttentionOutput(nn.Module):
    config: BertConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, h, residual, length: int, packing=None):
        cfg = self.config
        h = _dense(cfg, cfg.hidden_size, ("heads", "embed"), "dense")(h)
        h = _hidden_dropout(cfg, self.deterministic, h, length, packing)
        return constrain(_layer_norm(cfg)(h + residual), "batch")


class Intermediate(nn.Module):
    config: BertConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        h = _dense(cfg, cfg.intermediate_size, ("embed", "mlp"), "dense")(x)
        return _act(cfg.hidden_act)(constrain(h, "batch", *[None] * (h.ndim - 2), "mlp"))


class Output(nn.Module):
    config: BertConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, h, residual, length: int, packing=None):
        cfg = self.config
        h = _dense(cfg, cfg.hidden_size, ("mlp", "embed"), "dense")(h)
        h = _hidden_dropout(cfg, self.deterministic, h, length, packing)
        return constrain(_layer_norm(cfg)(h + residual), "batch")


class Layer(nn.Module):
    """One transformer layer; with first_token_only it returns only the first position ([batch, 1,
    hidden]), which is all a classifier reads of the last layer (the other positions' queries,
    attention outputs and feed-forward are never computed; keys and values still see every position)."""

    config: BertConfig
    deterministic: bool = True
    first_token_only: bool = False

    @nn.compact
    def __call__(self, x, attention_mask, packing=None):
        cfg = self.config
        a = AttentionBlock(cfg, self.deterministic, self.first_token_only, name="attention")(
            x, attention_mask, packing)
        h = Intermediate(cfg, name="intermediate")(a)
        out = Output(cfg, self.deterministic, name="output")(h, a, attention_mask.shape[1], packing)
        if cfg.scan_layers:
            return out, None
        return out


class Encoder(nn.Module):
    """The layers. first_token_only: the last layer computes only the first position (see Layer);
    not with scan_layers, whose layers are one scanned body."""

    config: BertConfig
    deterministic: bool = True
    first_token_only: bool = False

    @nn.compact
    def __call__(self, x, attention_mask, packing=None):
        cfg = self.config
        layer_cls = Layer
        if cfg.remat:
            # Recompute activations in the backward pass: memory for FLOPs.
            layer_cls = nn.remat(Layer, prevent_cse=not cfg.scan_layers)
        if cfg.scan_layers:
            # One compiled layer body applied L times: compile time independent of depth.
            stack = nn.scan(
                layer_cls,
                variable_axes={"params": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=nn.broadcast,
                length=cfg.num_hidden_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )
            x, _ = stack(cfg, self.deterministic, name="layers")(x, attention_mask, packing)
            return x
        last = cfg.num_hidden_layers - 1
        for i in range(cfg.num_hidden_layers):
            x = layer_cls(cfg, self.deterministic, self.first_token_only and i == last, name=f"layer_{i}")(
                x, attention_mask, packing)
        return x


class Pooler(nn.Module):
    config: BertConfig

    @nn.compact
    def __call__(self, sequence_output):
        cfg = self.config
        return jnp.tanh(_dense(cfg, cfg.hidden_size, ("embed", None), "dense")(sequence_output[:, 0]))


class BertEncoder(nn.Module):
    """Embeddings + encoder (+ pooler): the `bert/` subtree. With first_token_only (classifiers) the
    sequence output is the first position only, [batch, 1, hidden], unless the layers are scanned.
    With `packing` (see packing.py) the inputs are packed tokens and so is the sequence output, except for
    first_token_only's [batch, 1, hidden]."""

    config: BertConfig
    add_pooler: bool = False
    deterministic: bool = True
    first_token_only: bool = False

    def setup(self):
        self.embeddings = Embeddings(self.config, self.deterministic)
        self.encoder = Encoder(self.config, self.deterministic, self.first_token_only)
        if self.add_pooler:
            self.pooler = Pooler(self.config)

    def __call__(self, input_ids, attention_mask, token_type_ids, packing=None):
        if packing is not None:
            # Each packed token's row in the [batch, dropout layout length] layout, for its dropout masks.
            length = attention_mask.shape[1]
            slot = packing["token_slot"]
            packing = dict(packing, dropout_rows=slot // length * _layout_length(self.config, length) + slot % length)
        x = self.embeddings(input_ids, token_type_ids, packing)
        x = self.encoder(x, attention_mask, packing)
        pooled = None
        if self.add_pooler:
            pooled = self.pooler(x if packing is None or x.ndim == 3 else _first_tokens(x, packing))
        return x, pooled


class MlmHead(nn.Module):
    config: BertConfig

    @nn.compact
    def __call__(self, x, word_embeddings):
        cfg = self.config
        t = MlmTransform(cfg, name="transform")(x)
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros_init(), ("vocab",)),
                          (cfg.vocab_size,), jnp.float32)
        # The vocabulary projection and everything after it run in float32 whatever the compute
        # dtype: bf16 logits over tens of thousands of tokens would round away the small
        # probabilities the MLM and distillation losses (and a teacher's targets) depend on. The
        # transform's LayerNorm already returns float32 (no rounding to bf16 before the projection),
        # and HIGHEST keeps a GPU from running this float32 matmul in TF32 or bf16 passes.
        t = constrain(t, "batch")
        logits = jnp.einsum("...h,vh->...v", t.astype(jnp.float32), word_embeddings.astype(jnp.float32),
                            precision=jax.lax.Precision.HIGHEST)
        return constrain(logits + bias, "batch", *[None] * (logits.ndim - 2), "vocab")


class MlmTransform(nn.Module):
    config: BertConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        x = _act(cfg.hidden_act)(_dense(cfg, cfg.hidden_size, ("embed", None), "dense")(x))
        # float32 output whatever the compute dtype: it feeds the float32 vocabulary projection.
        return _layer_norm(cfg, dtype=jnp.float32)(x)


class Bert(nn.Module):
    """BERT with one head: 'mlm' (BertForMaskedLM), 'classifier' (BertForSequenceClassification,
    one label = regression) or 'none' (BertModel without pooler; returns the last hidden state)."""

    config: BertConfig
    head: str = "mlm"
    deterministic: bool = True

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, masked_positions=None, packing=None):
        """packing (the classifier, or no head): input_ids and token_type_ids are packed tokens [T] and packing
        holds their index arrays (packing.py); attention_mask [batch, length] defaults to their real slots.
        With no head the output is packed too: [T, hidden]."""
        cfg = self.config
        if packing is not None:
            if self.head not in ("classifier", "none"):
                raise ValueError(f"packed tokens are for the classifier head or none, not {self.head!r}.")
            if attention_mask is None:
                attention_mask = (packing["slot_token"] < input_ids.shape[0]).astype(jnp.int32)
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        # A classifier reads only the first position: the last layer computes nothing else.
        classifier = self.head == "classifier"
        bert = BertEncoder(cfg, add_pooler=classifier, deterministic=self.deterministic,
                           first_token_only=classifier and not cfg.scan_layers, name="bert")
        sequence_output, pooled = bert(input_ids, attention_mask, token_type_ids, packing)
        if self.head == "none":
            return sequence_output
        if self.head == "mlm":
            if masked_positions is not None:
                # Gather before the head: the vocabulary projection runs only at the predicted slots.
                sequence_output = jnp.take_along_axis(sequence_output, masked_positions[..., None], axis=1)
            # Tied decoder. (During init the variable is still boxed with its logical axes.)
            embedding = nn.meta.unbox(bert.variables["params"]["embeddings"]["word_embeddings"]["embedding"])
            return MlmHead(cfg, name="mlm")(sequence_output, embedding)
        if self.head == "classifier":
            pooled = Dropout(cfg.hidden_dropout_prob)(pooled, deterministic=self.deterministic)
            return _dense(cfg, cfg.num_labels, ("embed", None), "classifier")(pooled)
        raise ValueError(f"unknown head {self.head!r}; use one of {HEADS}")


def mlm_params(params: dict, source: str) -> dict:
    """The params a masked-LM model uses (`bert/` without the pooler, and `mlm/`) out of any
    checkpoint's tree; a checkpoint without an MLM head is refused, naming `source`."""
    if "mlm" not in params:
        raise ValueError(f"{source} has no MLM head; a BertForMaskedLM or BertForPreTraining checkpoint is needed.")
    return {"bert": {k: v for k, v in params["bert"].items() if k != "pooler"}, "mlm": params["mlm"]}


def _dummy_inputs(config: BertConfig):
    ids = jnp.zeros((1, min(8, config.max_position_embeddings)), jnp.int32)
    return ids, jnp.ones_like(ids), jnp.zeros_like(ids)


@functools.partial(jax.jit, static_argnums=(0, 2))
def init_params(config: BertConfig, rng: jax.Array, head: str = "mlm") -> dict[str, Any]:
    """Random params (Hugging Face's init: normal(0.02) weights, zero biases, unit LayerNorm). Compiled
    as one program: run op by op, the init of a BERT is hundreds of small compilations."""
    boxed = Bert(config, head).init({"params": rng}, *_dummy_inputs(config))["params"]
    return nn.meta.unbox(boxed)


def abstract_params(config: BertConfig, head: str = "mlm") -> dict[str, Any]:
    """The params' shapes and dtypes (jax.ShapeDtypeStruct leaves); nothing is computed or allocated."""
    return jax.eval_shape(lambda: init_params(config, jax.random.key(0), head))


def logical_axes(config: BertConfig, head: str = "mlm") -> dict[str, Any]:
    """The logical axis names of every param, as a tree of PartitionSpec (no params are computed)."""
    boxed = jax.eval_shape(lambda: Bert(config, head).init({"params": jax.random.key(0)},
                                                          *_dummy_inputs(config))["params"])
    return nn.get_partition_spec(boxed)


def apply(config: BertConfig, params, input_ids, attention_mask=None, token_type_ids=None, *,
          head: str = "mlm", masked_positions=None, dropout_rng=None, packing=None):
    """Runs the model; dropout is on exactly when `dropout_rng` is given (training). packing: the
    classifier, or the body alone (head="none", whose output is then [T, hidden]), on packed tokens
    (packing.py), which computes what the padded batch computes."""
    deterministic = dropout_rng is None
    rngs = None if deterministic else {"dropout": dropout_rng}
    return Bert(config, head, deterministic).apply(
        {"params": params}, input_ids, attention_mask, token_type_ids, masked_positions, packing, rngs=rngs)
