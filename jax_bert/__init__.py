"""A Flax BERT that computes what Hugging Face's BERT computes, and the engine that pretrains it.

    jax_bert.model   the model library (BertConfig, the Flax modules, Hugging Face import/export)
    jax_bert.data    the pretraining data pipeline (documents, tokenizer, packed blocks, MLM batches)
    jax_bert.train   the pretraining engine (config, optimizer, the step, the loop, checkpoints)
"""
from jax_bert.model.api import classify, encode, mlm_logits
from jax_bert.model.config import BertConfig
from jax_bert.model.hf_io import CheckpointError, load_hf, save_hf

__all__ = ["BertConfig", "CheckpointError", "classify", "encode", "load_hf", "mlm_logits", "save_hf"]
