"""A Flax BERT that computes what Hugging Face's BERT computes, and the engine that pretrains it."""
from jax_bert.api import classify, encode, mlm_logits
from jax_bert.config import BertConfig
from jax_bert.hf_io import CheckpointError, load_hf, save_hf

__all__ = ["BertConfig", "CheckpointError", "classify", "encode", "load_hf", "mlm_logits", "save_hf"]
