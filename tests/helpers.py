"""A tiny pretraining config for the tests, runnable in this process or in a subprocess."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_tokenizer(cache_dir: str) -> str:
    """A WordPiece vocab trained once in `cache_dir` (the study test names it for its teacher stage)."""
    from jax_bert import data
    from jax_bert.data import corpus

    data.get_tokenizer(None, workdir=cache_dir, documents=lambda: corpus.offline_documents()[:400],
                       vocab_size=600)
    return os.path.join(cache_dir, "tokenizer")


def tiny_config(cache_dir: str, **train_overrides):
    from jax_bert.train.config import base_config

    c = base_config()
    c.model.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   max_position_embeddings=32)
    c.data.max_documents = 400
    c.data_cache_dir = cache_dir
    # Each run trains its own vocabulary in its work directory: the same one every time (tiny_tokenizer).
    c.tokenizer.update(name="", vocab_size=600)
    c.train.update(steps=8, global_batch_size=8, seq_len=32, log_every=1, eval_batch_size=16,
                   checkpoint_every=4, keep_checkpoints=3, progress_bar=False, export_hf=False)
    unknown = set(train_overrides) - set(c.train)
    assert not unknown, f"no such train keys: {unknown}"
    c.train.update(train_overrides)
    c.optim.update(learning_rate=5e-3, warmup_steps=2)
    return c


def with_overrides(config, overrides: dict):
    """`config` with {"a.b": value} changes applied (in place; returned for chaining)."""
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def tiny_tokenizer(cache_dir: str):
    """The vocabulary that every tiny_config run trains for itself, trained here once more: the training
    is deterministic, so it is the same, token for token. Its directory is tiny_tokenizer_dir(cache_dir)."""
    from jax_bert import data

    spec = tiny_config(cache_dir).data.to_dict()
    return data.get_tokenizer(None, workdir=os.path.dirname(tiny_tokenizer_dir(cache_dir)), vocab_size=600,
                              documents=lambda: data.load_documents(spec)[0])


def tiny_tokenizer_dir(cache_dir: str) -> str:
    return os.path.join(cache_dir, "tiny_vocab", "tokenizer")


def sigterm_after_step(monkeypatch, step: int) -> None:
    """Makes the pretraining loop of this process receive a real SIGTERM while step `step` runs
    (the signal is sent when that step's batch is built), so the run stops after it."""
    import signal

    from jax_bert.train import loop

    real = loop.local_batch

    def batch_and_signal(blocks, index, config, mask_kw):
        if index == step - 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(blocks, index, config, mask_kw)

    monkeypatch.setattr(loop, "local_batch", batch_and_signal)


def subprocess_env(devices: int = 1) -> dict:
    """Environment of a child process with `devices` CPU devices (set before it imports jax)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def one_error_line(stderr: str) -> str:
    """The one `error: ...` line that a script (or jax_bert.cli in this process) ends `stderr` with, after
    asserting that it is the only one and that no traceback (nor a library's background report) came."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and "Event loop is closed" not in stderr, stderr[-3000:]
    assert lines and lines[-1].startswith("error: "), stderr[-3000:]
    assert sum(line.startswith("error: ") for line in lines) == 1, stderr[-3000:]
    return lines[-1]


def script_flags(path: str, monkeypatch):
    """(module, flag_values): the script at `path` imported as a module (not run: its name is not
    "__main__"), its own absl flags defined on a FlagValues of their own instead of absl's global FLAGS, so
    that a test parses a command line with the script's own flags in this process, as often as it likes."""
    import importlib.util

    from absl import flags

    stem = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"script_{stem}", path)
    values = flags.FlagValues()

    def into_values(define):
        def define_in_script(*args, **kwargs):
            # Only the script's own flags: a module it imports (absl.app, ...) keeps its flags global.
            if sys._getframe(1).f_globals.get("__name__") == spec.name:
                kwargs.setdefault("flag_values", values)
            return define(*args, **kwargs)

        return define_in_script

    with monkeypatch.context() as m:
        # A script calls flags.DEFINE_x(...) at import: each is pointed at `values` while it is imported.
        for name in [n for n in dir(flags) if n.startswith("DEFINE")]:
            m.setattr(flags, name, into_values(getattr(flags, name)))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module, values


def stops_with_one_line(job, monkeypatch, capsys) -> tuple[int, str]:
    """(exit status, error line) of `job`, part of a script run in this process (its cli.parse_flags, its
    cli.run), which must end in SystemExit with stderr that one `error: ...` line and nothing else."""
    import logging

    import pytest

    # config_flags loads every config file as the module `config_config`, into the same module object
    # when one is left from an earlier load in this process (a script loads one file).
    monkeypatch.delitem(sys.modules, "config_config", raising=False)
    # cli.run quiets the libraries' background reports for the rest of its process, a script's whole life;
    # here that is the test session, so its log filters and unraisable hook are undone after the test.
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
    for holder in (logging.getLogger("absl"), logging.getLogger("asyncio"), *logging.getLogger().handlers):
        monkeypatch.setattr(holder, "filters", list(holder.filters))
    capsys.readouterr()  # what was printed before is not the job's
    with pytest.raises(SystemExit) as stopped:
        job()
    stderr = capsys.readouterr().err
    line = one_error_line(stderr)
    assert stderr.strip() == line, stderr[-3000:]  # in this process the log goes to pytest, not to stderr
    return stopped.value.code, line


def losses(workdir: str) -> dict[int, float]:
    """step -> training loss, from metrics.jsonl."""
    from jax_bert.train.logs import read_jsonl

    return {r["step"]: r["train/loss"] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))
            if "train/loss" in r}


def run_in_subprocess_main():
    """python tests/helpers.py WORKDIR CACHE JSON_OVERRIDES: runs pretraining, prints the result."""
    workdir, cache_dir, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sys.path.insert(0, ROOT)
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.join(ROOT, ".jax_cache"))
    from jax_bert.train import loop as pretrain

    config = with_overrides(tiny_config(cache_dir), overrides)
    from jax_bert import cli

    result = cli.run(lambda: pretrain.run(config, workdir))  # expected errors: one line, exit status 1
    print("RESULT " + json.dumps({k: v for k, v in result.items() if isinstance(v, (int, float, str))}))


# --- a BERT-shaped toy param tree for the sparsity tests -------------------------------------------

KERNEL = "enc/layers/attention/query/kernel"  # scanned: [L, in, out]
SPARSE_RULES = [(r"^enc/.*kernel$", 0.8, -2), (r"word_embeddings/embedding$", 0.8, -1)]
SOLVED_RULES = [(p, None, a) for p, _, a in SPARSE_RULES]


def tiny_params(seed=0):
    """A BERT-shaped toy: scanned kernels [L, in, out], an embedding [vocab, hidden], dense rest."""
    import jax.numpy as jnp
    import numpy as np

    r = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(r.normal(size=s), jnp.float32)
    return {
        "emb": {"word_embeddings": {"embedding": f(30, 16)},
                "position_embeddings": {"embedding": f(8, 16)},
                "LayerNorm": {"scale": f(16), "bias": f(16)}},
        "enc": {"layers": {"attention": {"query": {"kernel": f(3, 16, 16), "bias": f(3, 16)}},
                           "intermediate": {"dense": {"kernel": f(3, 16, 40), "bias": f(3, 40)}}}},
        "pooler": {"dense": {"kernel": f(16, 16), "bias": f(16)}},
    }


def leaf(tree, path):
    for k in path.split("/"):
        tree = tree[k]
    return tree


def n_params(params):
    import jax

    return sum(x.size for x in jax.tree.leaves(params))


def checkpoints_dir(workdir) -> str:
    return os.path.join(workdir, "checkpoints")


def tmp_checkpoint_folders(workdir) -> list[str]:
    """Checkpoint folders a save left half-written (a crash mid-save must leave none behind it)."""
    import glob

    from jax_bert.train import checkpoint
    return glob.glob(os.path.join(checkpoints_dir(workdir), f"*{checkpoint.TMP_MARKER}*"))


if __name__ == "__main__":
    run_in_subprocess_main()
