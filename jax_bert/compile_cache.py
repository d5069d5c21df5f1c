"""JAX's persistent compilation cache for the commands (scripts/pretrain.py, scripts/glue.py): a second
run of the same command loads its compiled programs from disk instead of compiling them again.

Where: `--compile_cache DIR`; by default $JAX_BERT_COMPILE_CACHE, else $XDG_CACHE_HOME/jax_sparse_bert/xla
(~/.cache/jax_sparse_bert/xla, beside the tokenised-data cache). `--compile_cache=off` turns it off. A cache
directory set for JAX itself (JAX_COMPILATION_CACHE_DIR, or jax.config before the command runs, as the tests
do) is kept as it is. An entry is keyed by the program, the compiler version and the device, so a stale or
foreign entry is never used; deleting the directory only costs compile time.
"""
from __future__ import annotations

import os

from absl import flags

FLAG = flags.DEFINE_string(
    "compile_cache", None, "Directory of the persistent compilation cache (default $JAX_BERT_COMPILE_CACHE, else "
    "~/.cache/jax_sparse_bert/xla); 'off' turns it off.")

OFF = ("off", "none", "no", "0", "")

# Programs that compile faster than this are not worth a disk write (JAX's default is 1 s; the
# fine-tuning evaluation programs take about half that on a small CPU).
MIN_COMPILE_SECONDS = 0.5


def default_dir() -> str:
    if os.environ.get("JAX_BERT_COMPILE_CACHE"):
        return os.environ["JAX_BERT_COMPILE_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jax_sparse_bert", "xla")


def enable(setting: str | None) -> str | None:
    """Turns the cache on at `setting` (None: `default_dir()`), or off for "off"; returns the directory
    in use (None when off). Call before the first compilation."""
    import jax

    if setting is not None and setting.strip().lower() in OFF:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    current = jax.config.jax_compilation_cache_dir
    if current and setting is None:
        return current  # set for JAX by whoever runs us: theirs
    path = os.path.abspath(os.path.expanduser(setting or default_dir()))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--compile_cache {path}: cannot create it ({e.strerror}); give a writable directory "
                         "or --compile_cache=off.") from None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path
