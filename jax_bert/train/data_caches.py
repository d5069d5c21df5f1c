"""What `scripts/prepare_data.py` does: a config's tokenizer and block caches, built once before a run.

Built by this one process, with the progress of each step (and its ETA) on the terminal, into the run's
data_cache_dir (and its work directory's tokenizer/), exactly as the pretraining run would build them: the
run then opens them without reading a document, on one process or many (jax_bert/data/prepare.py).
"""
from __future__ import annotations

import time

from jax_bert.data import prepare as data_prepare
from jax_bert.train import sources, teachers
from jax_bert.train.config import validate
from jax_bert.train.loop import tokenizer_name


def prepare_caches(config, workdir: str) -> str:
    """Builds what is missing; returns the lines that say what is ready and where."""
    validate(config)
    sources.check_sources(config)  # a hub dataset or tokenizer that cannot be had: one line, before any work
    start = time.perf_counter()
    tokenizer, train, validation = data_prepare.build(
        config, workdir, tokenizer_name(config), check=lambda tok: teachers.check_vocabularies(config.distill, tok))
    lines = [f"data caches ready in {data_prepare.cache_dir(config)} ({time.perf_counter() - start:.1f} s):",
             f"  tokenizer: {len(tokenizer)} tokens" + ("" if config.tokenizer.name else
                                                         f", in {workdir}/tokenizer"),
             f"  train blocks: {train.shape[0]} x {train.shape[1]} ({getattr(train, 'filename', '')})"]
    if validation is not None:
        lines.append(f"  validation blocks: {validation.shape[0]} x {validation.shape[1]} "
                     f"({getattr(validation, 'filename', '')})")
    lines.append("A pretraining run with the same config and data_cache_dir now starts without tokenising, "
                 "on any number of processes.")
    return "\n".join(lines)
