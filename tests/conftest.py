"""Shared pytest setup: CPU only, the persistent compilation cache, and the expensive runs that many tests
share, each made once per test run: also when pytest-xdist runs the suite in several worker processes
(pyproject.toml's addopts), where the first worker to need one makes it under a file lock, in a folder all
workers share, and the others read it (`once`)."""
import json
import os
from pathlib import Path

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
from filelock import FileLock  # noqa: E402


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory) -> Path:
    """A folder of this test run that every pytest-xdist worker sees (the workers' own temporary folders
    are popen-gwN/ inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once(shared_tmp: Path, name: str, make):
    """make(folder) -> a JSON-able result, called once per test run whatever the number of workers: the
    first caller makes it under a file lock in shared_tmp/name and writes the result; later callers, in
    this process or another, read it."""
    done = shared_tmp / f"{name}.json"
    with FileLock(str(shared_tmp / f"{name}.lock")):
        if not done.exists():
            folder = shared_tmp / name
            folder.mkdir(exist_ok=True)
            done.write_text(json.dumps(make(str(folder))))
    return json.loads(done.read_text())


@pytest.fixture(scope="session")
def cache_dir(shared_tmp):
    """One tokenised-corpus cache (and trained vocabulary) for every pretraining test; its writes are
    atomic, so the workers share it."""
    path = shared_tmp / "pretrain_cache"
    path.mkdir(exist_ok=True)
    return str(path)


@pytest.fixture(scope="session")
def reference_run(shared_tmp, cache_dir):
    """(workdir, result) of the uninterrupted 8-step tiny run (checkpoints at 4 and 8, the Hugging Face
    export in hf/), trained once per test run: the reference of the resume, mesh, multi-process and fault
    tests, and the teacher of the distillation tests. Tests copy it before changing anything."""
    from helpers import tiny_config
    from jax_bert.train import loop

    def train(workdir):
        result = loop.run(tiny_config(cache_dir, export_hf=True), workdir)
        return [workdir, {k: v for k, v in result.items() if isinstance(v, (int, float, str))}]

    return tuple(once(shared_tmp, "reference", train))


@pytest.fixture(scope="session")
def eight_devices(shared_tmp, cache_dir):
    """Everything that needs JAX on 8 CPU devices, computed in one child process (tests/eight_devices.py):
    {"mesh_runs": {name: workdir}, "sharding_costs": {recipe: {mesh: row}}}. Its tests share the xdist
    group "eight_devices", so one worker runs them while the other goes on."""
    import eight_devices as child

    return once(shared_tmp, "eight_devices", lambda folder: child.run_child(folder, cache_dir))


# The offline GLUE example of the fine-tuning engine, GLUE job and search tests. 250 training rows: at batch
# 16 the last batch of each epoch is partial (250 = 15 * 16 + 10); 48 validation rows at eval batch 32: the
# last eval batch is padded. One model for all of them, so their compiled steps are shared.
GLUE_TASKS = ("sst2", "cola", "mrpc", "stsb")
GLUE_SIZES = {"train": 250, "validation": 48, "test": 8}


@pytest.fixture(scope="session")
def glue_example(shared_tmp):
    """Synthetic GLUE data (GLUE_TASKS at GLUE_SIZES) and a tiny random BERT with its tokenizer
    (glue.synthetic.make_offline_example), loaded as the GLUE job loads it, built once per test run:
    dict(root, data_dir, ckpt, config, params, tokenizer, extras, name, tasks, sizes). Tests copy it
    before changing anything."""
    from glue import run, synthetic

    def make(folder):
        return [str(p) for p in synthetic.make_offline_example(folder, GLUE_TASKS, GLUE_SIZES)]

    data_dir, ckpt = map(Path, once(shared_tmp, "glue_example", make))
    root = data_dir.parent
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
