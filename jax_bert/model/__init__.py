"""The model library: a Flax BERT that computes what Hugging Face's BERT computes, its config, and
Hugging Face checkpoints in and out."""
from jax_bert.model.bert import abstract_params, apply, init_params, logical_axes, mlm_params
from jax_bert.model.config import BertConfig
from jax_bert.model.hf_io import CheckpointError, load_hf, save_hf
from jax_bert.model.layers import match_layout

__all__ = ["BertConfig", "CheckpointError", "abstract_params", "apply", "init_params", "load_hf", "logical_axes",
           "match_layout", "mlm_params", "save_hf"]
