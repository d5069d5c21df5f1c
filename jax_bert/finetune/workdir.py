"""Fine-tuning a pretraining work directory that has no Hugging Face export yet (a run stopped before its
end, or still going): its newest intact checkpoint is exported to a temporary directory and read from there,
as `hf/` would be. Damaged checkpoints are skipped (named), never moved or changed: the work directory
belongs to its pretraining run."""
from __future__ import annotations

import json
import os
from pathlib import Path


def is_unexported(path: str | os.PathLike) -> bool:
    """`path` is one of our pretraining work directories without its hf/ export."""
    root = Path(path)
    return (root / "bert_config.json").is_file() and (root / "checkpoints").is_dir() and \
        not (root / "hf" / "config.json").is_file()


def checkpoint_steps(workdir: str | os.PathLike) -> list[int]:
    """The committed checkpoint steps of a work directory, newest first (steps being written, whose
    folders carry orbax's temporary suffix, and steps set aside as damaged are not among them)."""
    folder = Path(workdir) / "checkpoints"
    return sorted((int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), reverse=True)


def convert_command(workdir: str | os.PathLike, step: int | None = None) -> str:
    step_flag = "" if step is None else f" --step {step}"
    return f"python scripts/convert.py --to_hf {workdir} --out {Path(workdir) / 'hf'}{step_flag}"


def export_newest_intact(workdir: str | os.PathLike, into: str | os.PathLike) -> tuple[int, list[str]]:
    """Writes the newest checkpoint of `workdir` that reads back intact (checksums verified) as a Hugging
    Face directory `into`, with the work directory's tokenizer. Returns (its step, the damaged newer steps
    with their reasons). A ValueError says what is missing and what to do."""
    from jax_bert.train import checkpoint, convert  # orbax: imported only when a checkpoint is read

    steps = checkpoint_steps(workdir)
    if not steps:
        raise ValueError(f"{workdir} has no checkpoint yet: its pretraining run stopped before the first save; "
                         "run it on (the same command resumes it) or fine-tune another checkpoint.")
    skipped = []
    for step in steps:
        try:
            convert.workdir_to_hf(str(workdir), str(into), step)
        except checkpoint.CheckpointDamaged as e:
            skipped.append(f"step {step}: {e.reason}")
            continue
        _add_tokenizer(workdir, into)
        return step, skipped
    raise ValueError(f"{workdir} has no intact checkpoint to fine-tune ({'; '.join(skipped)}); rerun its "
                     "pretraining (the same command resumes from the newest intact one) or fine-tune another.")


def _add_tokenizer(workdir, into) -> None:
    """A run that trained its vocabulary keeps it in tokenizer/ (convert.workdir_to_hf copies it); one that
    used a named tokenizer records the name in config.json: that one is saved beside the weights."""
    into = Path(into)
    if any((into / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        return
    try:
        with open(Path(workdir) / "config.json") as f:
            name = json.load(f).get("tokenizer", {}).get("name")
    except (OSError, ValueError):
        name = None
    if not name:
        raise ValueError(f"{workdir} has neither a tokenizer/ folder nor a tokenizer name in config.json; "
                         f"export it with `{convert_command(workdir)}` and save its tokenizer into that folder.")
    from transformers import AutoTokenizer

    try:
        AutoTokenizer.from_pretrained(name).save_pretrained(str(into))
    except OSError as e:
        raise ValueError(f"{workdir} used the tokenizer {name!r}, which could not be loaded ({e}); export the "
                         f"model with `{convert_command(workdir)}` and save that tokenizer into it.") from None
