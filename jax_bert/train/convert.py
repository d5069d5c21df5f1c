"""Checkpoints between Hugging Face directories and our work directories.

Our side is a work-directory layout (what scripts/pretrain.py writes): `bert_config.json`, an orbax
checkpoint under `checkpoints/` whose state holds `params`, and the tokenizer under `tokenizer/`.
Such a directory serves as a teacher (distill.teachers) and as a pretraining start.
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np

from jax_bert.model import BertConfig, hf_io
from jax_bert.train import checkpoint


def hf_to_workdir(source: str, out_dir: str) -> str:
    """Reads a Hugging Face BERT (directory or hub name) and writes it as a work directory."""
    config, params = hf_io.load_hf(source)
    os.makedirs(out_dir, exist_ok=True)
    if checkpoint.latest_step(os.path.join(out_dir, "checkpoints")) is not None:
        raise ValueError(f"{out_dir} already holds a checkpoint; choose an empty output directory.")
    config.save(out_dir)
    manager = checkpoint.make_manager(os.path.join(out_dir, "checkpoints"), save_every=1, keep=1)
    state = {"params": jax.tree.map(np.asarray, params)}
    checkpoint.save(manager, 0, state, data_position={"step": 0}, config={"converted_from": source}, force=True)
    checkpoint.wait(manager)
    manager.close()
    _copy_tokenizer(hf_io.resolve_hf_dir(source), os.path.join(out_dir, "tokenizer"))
    return out_dir


def workdir_to_hf(workdir: str, out_dir: str, step: int | None = None) -> str:
    """Writes a work directory's params (latest checkpoint, or `step`) as a transformers directory."""
    config_file = os.path.join(workdir, "bert_config.json")
    if not os.path.exists(config_file):
        raise ValueError(f"{workdir} has no bert_config.json: it is not a work directory of ours.")
    with open(config_file) as f:
        config = BertConfig(**json.load(f))
    params = _params_or_the_intact_ones(os.path.join(workdir, "checkpoints"), step)
    tokenizer = None
    if os.path.isdir(os.path.join(workdir, "tokenizer")):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(os.path.join(workdir, "tokenizer"))
    return hf_io.save_hf(config, params, out_dir, tokenizer=tokenizer)


def _params_or_the_intact_ones(directory: str, step: int | None):
    """The params of checkpoint `step` (default the latest). When that checkpoint is damaged, the error
    names the damage and the intact checkpoints that --step could use instead (nothing is moved: a
    conversion only reads)."""
    try:
        return checkpoint.restore_params_only(directory, step)
    except checkpoint.CheckpointDamaged as damaged:
        intact = []
        for other in sorted((s for s in checkpoint.all_steps(directory) if s != damaged.step), reverse=True):
            try:
                checkpoint.restore_params_only(directory, other)
                intact.append(other)
            except checkpoint.CheckpointDamaged:
                continue
        if intact:
            advice = (f"intact: {', '.join(map(str, intact))}; rerun with --step {intact[0]} to convert the newest "
                      f"intact one")
        else:
            advice = "no other checkpoint is intact: nothing here can be converted"
        raise checkpoint.CheckpointDamaged(damaged.directory, damaged.step, f"{damaged.reason}; {advice}") from None


def _copy_tokenizer(hf_dir: str, out_dir: str) -> None:
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    except (OSError, ValueError):  # a checkpoint without tokenizer files: nothing to copy
        return
    tokenizer.save_pretrained(out_dir)
