"""BertConfig: the architecture of a BERT model, and its conversion to and from Hugging Face's config.json."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Architecture plus how to compute it. Params are always float32; `dtype` is the compute dtype."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    pad_token_id: int = 0
    num_labels: int = 2
    # How to compute (not part of the Hugging Face architecture):
    dtype: str = "float32"
    remat: bool = False
    scan_layers: bool = False
    # Dropout masks laid out for sequences of this many positions (0: the input's own length), so a
    # batch padded to fewer positions gets the same masks at its real positions and trains exactly
    # as it would padded to this length (glue/finetune.py's length buckets).
    dropout_layout_length: int = 0

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}: choose a head count that divides the hidden size."
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported; use one of {ACTIVATIONS}.")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not supported; use one of {DTYPES}.")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size", "num_labels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.dropout_layout_length < 0:
            raise ValueError(f"dropout_layout_length must be >= 0 (0: the input's length), got "
                             f"{self.dropout_layout_length}.")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def replace(self, **changes) -> "BertConfig":
        return dataclasses.replace(self, **changes)

    # --- Hugging Face config.json -------------------------------------------------------------
    _HF_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "hidden_act", "max_position_embeddings", "type_vocab_size",
                  "layer_norm_eps", "hidden_dropout_prob", "attention_probs_dropout_prob",
                  "initializer_range", "pad_token_id")

    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any], **overrides) -> "BertConfig":
        """Builds a config from a Hugging Face BERT config.json dict (extra HF keys are ignored)."""
        model_type = hf.get("model_type", "bert")
        if model_type != "bert":
            raise ValueError(f"config.json has model_type {model_type!r}; only 'bert' checkpoints are supported.")
        kwargs = {k: hf[k] for k in cls._HF_FIELDS if k in hf and hf[k] is not None}
        if "id2label" in hf and isinstance(hf["id2label"], dict):
            kwargs["num_labels"] = len(hf["id2label"])
        elif "num_labels" in hf:
            kwargs["num_labels"] = hf["num_labels"]
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def from_hf_file(cls, path: str, **overrides) -> "BertConfig":
        with open(path) as f:
            return cls.from_hf_dict(json.load(f), **overrides)

    def to_hf_dict(self) -> dict[str, Any]:
        hf = {k: getattr(self, k) for k in self._HF_FIELDS}
        hf.update(
            model_type="bert",
            position_embedding_type="absolute",
            id2label={str(i): f"LABEL_{i}" for i in range(self.num_labels)},
            label2id={f"LABEL_{i}": i for i in range(self.num_labels)},
        )
        return hf

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "bert_config.json"), "w") as f:
            json.dump(self.to_dict(), f, indent=2)
