"""Every pretraining config key with its default. Config files in configs/ start from `base_config()`
and change what their experiment needs; an override of a key not listed here is an error."""
import dataclasses
import importlib.util
import os

import ml_collections

from jax_bert import distill, optim, sparse_training
from jax_bert.config import BertConfig


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()

    # The architecture (BertConfig's fields). vocab_size 0: the tokenizer's size.
    c.model = ml_collections.ConfigDict({f.name: f.default for f in dataclasses.fields(BertConfig)})
    c.model.vocab_size = 0
    c.init_from_hf = ""  # start from a Hugging Face BERT directory (or hub name) instead of random init

    # The corpus: see jax_bert/data.py for every field.
    c.data = ml_collections.ConfigDict({
        # Tuples, so that the command line can set them: --config.data.files=/data/*.parquet (repeat the
        # flag for several globs), --config.data.datasets=wikimedia/wikipedia:20231101.en
        "source": "offline", "datasets": (), "files": (), "text_column": "text",
        "txt_documents": "paragraph", "validation_fraction": 0.05, "max_documents": 0,
    })
    c.data_cache_dir = ""  # tokenised blocks; '' = ~/.cache/jax_sparse_bert
    c.tokenizer = ml_collections.ConfigDict({"name": "", "vocab_size": 30522, "lowercase": False})
    c.masking = ml_collections.ConfigDict({"mlm_probability": 0.15, "whole_word": True})

    c.train = ml_collections.ConfigDict({
        "steps": 100_000,
        "global_batch_size": 256,
        "grad_accum_steps": 1,  # micro-batches per step: the global batch is the same, memory is not
        "seq_len": 512,
        "seed": 0,
        "log_every": 50,
        "eval_every": 0,  # 0: only at the end
        "eval_batch_size": 64,
        "checkpoint_every": 1000,
        "keep_checkpoints": 3,
        "export_hf": True,  # write workdir/hf (transformers format, with the tokenizer) at the end
        "progress_bar": True,
        "sigterm_at_step": 0,  # tests only: send this process SIGTERM after that step
    })
    c.optim = optim.default_config()
    c.optim.total_steps = -1  # the schedule length is train.steps

    c.sparsity = sparse_training.default_config()
    c.distill = distill.default_config()

    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.distributed = ml_collections.ConfigDict({
        "initialize": "auto",  # 'auto' (SLURM / Open MPI / JAX_COORDINATOR_ADDRESS), 'yes', 'no'
        "coordinator_address": "", "num_processes": 0, "process_id": 0, "cpu_collectives": "gloo",
    })
    return c


def load_config_file(path: str):
    """A config file (Python, with get_config()) as a module."""
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_sibling(config_file: str, name: str):
    """Another config file of the same folder as a module (config files build on each other)."""
    return load_config_file(os.path.join(os.path.dirname(os.path.abspath(config_file)), name + ".py"))
