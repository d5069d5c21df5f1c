"""The commands' persistent compilation cache: where it goes, how it is turned off, and that a second
process reads what the first wrote."""
import os
import subprocess
import sys
import textwrap

import jax
import pytest

from jax_bert import compile_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def jax_cache_settings():
    """The test process's cache settings (conftest's), restored after the test changes them."""
    names = ("jax_compilation_cache_dir", "jax_enable_compilation_cache", "jax_persistent_cache_min_compile_time_secs")
    saved = {name: getattr(jax.config, name) for name in names}
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


def test_the_default_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("JAX_BERT_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.default_dir() == str(tmp_path / "xdg" / "jax_sparse_bert" / "xla")
    monkeypatch.setenv("JAX_BERT_COMPILE_CACHE", str(tmp_path / "mine"))
    assert compile_cache.default_dir() == str(tmp_path / "mine")


def test_a_directory_set_for_jax_is_kept_and_off_turns_it_off(tmp_path, jax_cache_settings):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "theirs"))
    assert compile_cache.enable(None) == str(tmp_path / "theirs")
    assert compile_cache.enable(str(tmp_path / "flag")) == str(tmp_path / "flag")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "flag") and (tmp_path / "flag").is_dir()
    assert compile_cache.enable("off") is None
    assert jax.config.jax_enable_compilation_cache is False


def test_an_unwritable_directory_is_one_line(tmp_path, jax_cache_settings):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"--compile_cache .*file/xla: cannot create it .*--compile_cache=off"):
        compile_cache.enable(str(tmp_path / "file" / "xla"))


_CHILD = textwrap.dedent("""
    import jax, jax.numpy as jnp
    from jax._src import monitoring
    from jax_bert import compile_cache
    hits = []
    monitoring.register_event_listener(lambda event, **kw: hits.append(event) if "cache_hits" in event else None)
    print(compile_cache.enable(None))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # this program compiles in milliseconds
    print(float(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))).sum()))
    print(len(hits))
""")


def test_a_second_process_reads_the_programs_the_first_compiled(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_BERT_COMPILE_CACHE")}
    env.update(XDG_CACHE_HOME=str(tmp_path), JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    runs = [subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    (where, value, hits_first), (_, value_again, hits_second) = (r.stdout.split() for r in runs)
    assert where == str(tmp_path / "jax_sparse_bert" / "xla") and os.listdir(where)
    assert value == value_again and int(hits_first) == 0 and int(hits_second) >= 1
