"""The few lines a pretraining run ends with: what it wrote and where, and the final evaluation.

The full result stays in eval_results.json (and metrics.jsonl); this is for the person at the terminal.
"""
from __future__ import annotations

import os
import re


def checkpoint_steps(workdir: str) -> list[int]:
    """The committed checkpoint steps in workdir/checkpoints (numbered folders; set-aside ones excluded)."""
    folder = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    return sorted(int(n) for n in os.listdir(folder) if re.fullmatch(r"\d+", n))


def run_summary(result: dict, workdir: str, total_steps: int) -> str:
    """What `loop.run` did, as a short text: finished or stopped, the evaluation, the files."""
    steps = checkpoint_steps(workdir)
    where = os.path.join(workdir, "checkpoints")
    saved = f"{where} (steps {', '.join(map(str, steps))})" if steps else f"{where} (none yet)"
    step = result.get("step")
    if result.get("status", "finished") != "finished":
        return "\n".join([f"{result['status']} of {total_steps}.",
                          f"  checkpoints: {saved}",
                          "  Run the same command to resume from the last checkpoint."])
    lines = [f"finished: {step} steps in {workdir}"]
    if "eval_loss" in result:
        lines.append(f"  final eval: loss {result['eval_loss']:.4f}, perplexity {result['perplexity']:.2f}, "
                     f"MLM accuracy {result['eval_mlm_accuracy']:.4f} over {result['eval_blocks']} validation "
                     f"blocks -> {os.path.join(workdir, 'eval_results.json')}")
    lines.append(f"  checkpoints: {saved}")
    hf = os.path.join(workdir, "hf")
    if os.path.isdir(hf):
        lines.append(f"  Hugging Face export (BertForMaskedLM + tokenizer): {hf}")
    lines.append(f"  logs: {os.path.join(workdir, 'metrics.jsonl')}, {os.path.join(workdir, 'tensorboard')} "
                 f"(curves: python scripts/plot.py {workdir})")
    return "\n".join(lines)
