"""Shared pytest setup: CPU only, persistent compilation cache to keep the suite fast."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import jax  # noqa: E402

_CACHE_DIR = os.environ.get(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache"),
)
jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One tokenised-corpus cache (and shared tokenizer) for every pretraining test."""
    return str(tmp_path_factory.mktemp("pretrain_cache"))


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, cache_dir):
    """(workdir, result) of the uninterrupted 8-step tiny run (checkpoints at 4 and 8, the Hugging Face
    export in hf/), trained once per test run: the reference of the resume, mesh, multi-process and fault
    tests, and the teacher of the distillation tests. Tests copy it before changing anything."""
    from helpers import tiny_config
    from jax_bert.train import loop

    workdir = str(tmp_path_factory.mktemp("reference"))
    return workdir, loop.run(tiny_config(cache_dir, export_hf=True), workdir)


@pytest.fixture(scope="session")
def eight_devices(tmp_path_factory, cache_dir):
    """Everything that needs JAX on 8 CPU devices, computed in one child process (tests/eight_devices.py):
    {"mesh_runs": {name: workdir}, "sharding_costs": {recipe: {mesh: row}}}."""
    import eight_devices as child

    return child.run_child(str(tmp_path_factory.mktemp("eight_devices")), cache_dir)


# The offline GLUE example of the fine-tuning engine, GLUE job and search tests. 250 training rows: at batch
# 16 the last batch of each epoch is partial (250 = 15 * 16 + 10); 48 validation rows at eval batch 32: the
# last eval batch is padded. One model for all of them, so their compiled steps are shared.
GLUE_TASKS = ("sst2", "cola", "mrpc", "stsb")
GLUE_SIZES = {"train": 250, "validation": 48, "test": 8}


@pytest.fixture(scope="session")
def glue_example(tmp_path_factory):
    """Synthetic GLUE data (GLUE_TASKS at GLUE_SIZES) and a tiny random BERT with its tokenizer
    (glue.synthetic.make_offline_example), loaded as the GLUE job loads it, built once per test run:
    dict(root, data_dir, ckpt, config, params, tokenizer, extras, name, tasks, sizes). Tests copy it
    before changing anything."""
    from glue import run, synthetic

    root = tmp_path_factory.mktemp("glue_example")
    data_dir, ckpt = synthetic.make_offline_example(root, GLUE_TASKS, GLUE_SIZES)
    config, params, tokenizer, extras, name = run.load_checkpoint(str(ckpt))
    return dict(root=root, data_dir=data_dir, ckpt=ckpt, config=config, params=params, tokenizer=tokenizer,
                extras=extras, name=name, tasks=GLUE_TASKS, sizes=dict(GLUE_SIZES))


@pytest.fixture(scope="session")
def glue_tok(glue_example):
    """glue_tok(task, split, max_length) -> that split of glue_example tokenized to max_length, each
    tokenized once per test run (the arrays are shared: do not write into them)."""
    import functools

    from glue import data

    @functools.lru_cache(maxsize=None)
    def tok(task, split, max_length):
        return data.tokenize_task(data.load_task(task, glue_example["data_dir"])[split], task,
                                  glue_example["tokenizer"], max_length)

    return tok
