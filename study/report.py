"""The study's reports: report.md (pretraining mean ± std over seeds, the original's claims, GLUE, each
row's settings, wall times, loss curves, densities) and ablation.md (the RigL ablation's table).
"""
from __future__ import annotations

from pathlib import Path

import ml_collections

from glue import report as glue_report
from jax_bert import files
from study import stats
from study.rows import (
    eval_losses,
    glue_stage,
    glue_stages,
    pretraining_stages,
    row_config,
    rows_of,
    seeds_of,
    summaries,
    workdir,
)


def settings_text(config: ml_collections.ConfigDict, distill: bool) -> str:
    """One row's settings in words, RigL's schedule both relative to the run and in steps."""
    from jax_bert.train import sparse_config

    c, m = config, config.model
    sp = "dense"
    if c.sparsity.enabled:
        sp = (f"{c.sparsity.overall:.0%} of all params" if c.sparsity.overall >= 0
              else f"{c.sparsity.level:.0%} per tensor") + f" ({c.sparsity.method})"
    text = (f"{m.num_hidden_layers} layers, hidden {m.hidden_size}, {c.train.steps} steps x batch "
            f"{c.train.global_batch_size} x length {c.train.seq_len}, {c.optim.schedule} lr {c.optim.learning_rate:g}, "
            f"{sp}")
    if c.sparsity.enabled and c.sparsity.rigl.enabled:
        text += ", " + rigl_text(sparse_config.rigl_schedule(c.sparsity, c.train.steps), c.train.steps)
    return text + (", distilled from the teacher" if distill else "") + "."


def rigl_text(s, steps: int) -> str:
    """E.g. 'RigL 6 updates every 25 steps, 25 .. 150, end 100% of the run, drop 0.3 cosine, global ranking'
    (a cosine drop fraction reaches 0 at the end, so an update there changes nothing)."""
    updates = (s.end - s.start) // s.update_freq + 1
    last = s.start + (updates - 1) * s.update_freq
    return (f"RigL {updates} updates every {s.update_freq} steps, {s.start} .. {last}, end {s.end / steps:.0%} of "
            f"the run, drop {s.drop_fraction:g} {s.schedule}, {s.mode.replace('_', '-')} ranking")


def _row_table(study, out: Path, keys: list[str], sums: dict) -> str:
    return stats.summary_table([(study.rows[k].label, k, sums[k], eval_losses(study, out, k)) for k in keys])


def _wall_times(state: dict, stages: list[str]) -> list[str]:
    """The measured seconds of `stages` (those run in this study directory), the share of the CPUs other
    processes used meanwhile, and the totals."""
    seconds = {k: state["seconds"][k] for k in stages if k in state["seconds"]}
    shares = state.get("other_cpu_share", {})

    def share(value):
        return "" if value is None else f"{value:.0%}"

    lines = ["| stage | seconds | other processes' CPU share |", "|---|---|---|"]
    lines += [f"| {k} | {v:.0f} | {share(shares.get(k))} |" for k, v in seconds.items()]
    known = {k: v for k, v in seconds.items() if k in shares}
    mean = sum(shares[k] * v for k, v in known.items()) / sum(known.values()) if known else None
    return lines + [f"| **total** | **{sum(seconds.values()):.0f}** ({sum(seconds.values()) / 60:.1f} min) | "
                    f"{share(mean)} |"]


def _loss_curves_png(study, out: Path, keys: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jax_bert.train.logs import read_jsonl

    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        rows = [r for r in read_jsonl(str(workdir(out, key, 0) / "metrics.jsonl")) if "train/loss" in r]
        ax.plot([r["step"] for r in rows], [r["train/loss"] for r in rows], label=study.rows[key].label)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss, nats (KD rows: KD objective)")
    ax.set_title("pretraining seed 0")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _density_png(wd: Path, path: Path) -> float:
    import sparsity
    from jax_bert.model import hf_io

    _, params = hf_io.load_hf(str(wd / "hf"))
    stats = sparsity.sparsity_stats(params)
    path.write_bytes(sparsity.density_chart_png(stats, only_sparse=False))
    return stats.overall.sparsity


def _masks_text(study) -> str:
    """What the GLUE table's "sparse masks" column means, for the settings this study ran."""
    words = {True: "kept (a sparse model's zeros stay zero while fine-tuning)",
             False: "may regrow (pruned weights are trained like the others, as the original's table was made)"}
    return "Sparse masks during fine-tuning: " + "; ".join(words[bool(m)] for m in study.glue.keep_masks) + "."


def write_report(study, out: Path, glue_dirs: list[Path], synthetic_data: bool, state: dict) -> str:
    keys = rows_of(study, "study")
    sums = summaries(study, out, keys)
    labels = {k: study.rows[k].label for k in keys}
    glue_seeds = ", ".join(str(s) for s in range(study.glue.pretrain_seeds))
    glue_title = "## GLUE" + (" — SYNTHETIC tasks, not real GLUE" if synthetic_data else "")
    table = glue_report.build_report([str(d) for d in glue_dirs], csv_path=str(out / "results.csv"))
    _loss_curves_png(study, out, keys, out / "loss_curves.png")
    lines = [f"# {study.title}" + (" — GLUE numbers from SYNTHETIC tasks, not real GLUE" if synthetic_data else ""),
             "", f"Scale preset: `{study.name}`. Generated by `python scripts/reproduce.py --scale {study.name}`.", "",
             "## Pretraining: eval loss and perplexity over seeds", "",
             "Mean ± sample std over the pretraining seeds (train.seed = sparsity.seed = 0, 1, ...); one teacher "
             "(seed 0) for every distilled row.", "",
             _row_table(study, out, keys, sums), "## The original's claims", "",
             stats.claims_section(sums, labels, study.name),
             glue_title, "", f"Fine-tuned from the models of pretraining seed(s) {glue_seeds} only"
             + (" on generated tasks: they test the pipeline, not the models' language skills." if synthetic_data
                else "."), "", _masks_text(study), "", table, "", "## Settings per row", ""]
    for key in keys:
        row = study.rows[key]
        seeds = len(seeds_of(study, key))
        lines.append(f"- **{row.label}** (`{key}`, {seeds} seed{'s' * (seeds > 1)}): "
                     + settings_text(row_config(study, key, 0, out), row.distill))
    stages = pretraining_stages(study, keys) + [glue_stage(*g) for g in glue_stages(study)]
    lines += ["", "## Wall time per stage", ""] + _wall_times(state, stages)
    lines += ["", "## Training loss", "", "![training loss](loss_curves.png)", "", "## Per-tensor density", ""]
    for key in keys:
        if study.rows[key].config.sparsity.enabled:
            png = out / f"density_{key}.png"
            overall = _density_png(workdir(out, key, 0), png)
            lines += [f"{study.rows[key].label} (seed 0): {overall:.2%} of all parameters are zero.", "",
                      f"![density]({png.name})", ""]
    text = "\n".join(lines) + "\n"
    files.atomic_write_text(out / "report.md", text)
    return text


def write_ablation_report(study, out: Path, state: dict) -> str:
    from jax_bert.train import sparse_config

    keys = [k for k in rows_of(study, "ablation") if k != study.teacher]
    sums = summaries(study, out, keys)
    refs = [r for r in study.ablation_references if r in sums]
    lines = [f"# RigL ablation — {study.title}", "",
             f"Generated by `python scripts/reproduce.py --scale {study.name} --ablation`. Every row distils from "
             f"the same teacher (`{study.teacher}`, seed 0); eval loss and perplexity are mean ± sample std over "
             f"the pretraining seeds. The last columns give each row's mean eval loss minus that of "
             f"{' and '.join(f'`{r}`' for r in refs)}, with the two rows' spread (sum of stds) and the verdict.", "",
             f"Rule: {stats.RULE}", "",
             "| row | key | RigL schedule | seeds | eval loss | perplexity | " + " | ".join(f"vs `{r}`" for r in refs)
             + " |", "|---|---|---|---|---|---|" + "---|" * len(refs)]
    for key in keys:
        config = row_config(study, key, 0, out)
        schedule = sparse_config.rigl_schedule(config.sparsity, config.train.steps) if config.sparsity.enabled else None
        rigl = (rigl_text(schedule, config.train.steps) if schedule
                else "none (GMP)" if config.sparsity.enabled and config.sparsity.gmp.enabled
                else "static" if config.sparsity.enabled else "dense")
        s = sums[key]
        cells = ["" if r == key else stats.versus(s, sums[r]) for r in refs]
        cells = [study.rows[key].label, f"`{key}`", rigl, str(s.n), stats.pm(s.loss_mean, s.loss_std, 3),
                 stats.pm(s.ppl_mean, s.ppl_std, 1)] + cells
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per seed:", "", _row_table(study, out, keys, sums), "## Wall time per stage", ""]
    lines += _wall_times(state, pretraining_stages(study, rows_of(study, "ablation")))
    text = "\n".join(lines) + "\n"
    files.atomic_write_text(out / "ablation.md", text)
    return text
