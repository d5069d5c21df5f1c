"""The study's reports: report.md (pretraining mean ± std over seeds, the original's claims, GLUE, each
row's settings, wall times, loss curves, densities) and ablation.md (the RigL ablation's table).
"""
from __future__ import annotations

from pathlib import Path

import ml_collections
import numpy as np

from glue import report as glue_report
from jax_bert import files
from study import stats
from study.rows import (
    eval_losses,
    finished,
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


def horizon(study, keys) -> str:
    """'150 steps': the training length of the rows `keys`, the horizon their claims are judged at (the
    horizon pairs' longer rows are not among them)."""
    steps = sorted({study.rows[k].config.train.steps for k in keys if k != study.teacher})
    return "/".join(f"{n:,}" for n in steps) + f" steps ({study.name or 'this'} preset)"


def _claim_losses(study, out: Path, keys: list[str]) -> dict[str, list[float]]:
    """The per-seed losses of the study's rows, and of the optional claims' rows of other parts (the fair
    dense baseline) where they have all finished."""
    losses = {k: eval_losses(study, out, k) for k in keys}
    for claim in stats.CLAIMS:
        for key in (claim.row, claim.against):
            if claim.optional and key not in losses and key in study.rows and finished(study, out, key):
                losses[key] = eval_losses(study, out, key)
    return losses


def _row_table(study, out: Path, keys: list[str], sums: dict) -> str:
    return stats.summary_table([(study.rows[k].label, k, sums[k], eval_losses(study, out, k)) for k in keys])


def _wall_times(state: dict, stages: list[str]) -> list[str]:
    """The measured seconds of `stages` (those run in this study directory), the share of the CPUs other
    processes used meanwhile, and the totals."""
    seconds = {k: state["seconds"][k] for k in stages if k in state["seconds"]}
    shares = state.get("other_cpu_share", {})
    commits = state.get("commit", {})

    def share(value):
        return "" if value is None else f"{value:.0%}"

    lines = ["| stage | seconds | other processes' CPU share | commit |", "|---|---|---|---|"]
    lines += [f"| {k} | {v:.0f} | {share(shares.get(k))} | {commits.get(k, '')} |" for k, v in seconds.items()]
    known = {k: v for k, v in seconds.items() if k in shares}
    mean = sum(shares[k] * v for k, v in known.items()) / sum(known.values()) if known else None
    return lines + [f"| **total** | **{sum(seconds.values()):.0f}** ({sum(seconds.values()) / 60:.1f} min) | "
                    f"{share(mean)} | |"]


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


def _train_losses(out: Path, key: str, seed: int) -> dict[int, float]:
    from jax_bert.train.logs import read_jsonl

    return {r["step"]: r["train/loss"] for r in read_jsonl(str(workdir(out, key, seed) / "metrics.jsonl"))
            if "train/loss" in r}


def _loss_around_updates(study, out: Path, keys: list[str], reference: str = "static_kd",
                         shown: int = 6) -> list[str]:
    """For each RigL row, the training loss (mean over seeds) at the step before each update, the update
    step (its loss is computed before the masks change) and the 10 steps after; below it the same row minus
    `reference` at the same steps and seeds, where the reference logged them. The first `shown` updates."""
    from jax_bert.train import sparse_config

    offsets = list(range(-1, sparse_config.AROUND_UPDATE + 1))
    head = ["| row | update after step | " + " | ".join(f"u{o:+d}" if o else "u" for o in offsets) + " |",
            "|---|---|" + "---|" * len(offsets)]
    lines = []
    for key in keys:
        config = study.rows[key].config
        if not (config.sparsity.enabled and config.sparsity.rigl.enabled):
            continue
        seeds = seeds_of(study, key)
        own = [_train_losses(out, key, s) for s in seeds]
        ref = ([_train_losses(out, reference, s) for s in seeds]
               if reference in study.rows and reference != key and reference in keys else None)
        for u in sparse_config.rigl_update_steps(config.sparsity, config.train.steps)[:shown]:
            steps = [u + o for o in offsets]

            def mean(tables, n):
                values = [t.get(n) for t in tables]
                return None if any(v is None for v in values) else float(np.mean(values))

            def row(values, signed=False):
                return " | ".join("" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}") for v in values)

            values = [mean(own, n) for n in steps]
            lines.append(f"| {study.rows[key].label} | {u} | {row(values)} |")
            if ref is not None:
                diffs = [None if (a is None or b is None) else a - b
                         for a, b in zip(values, [mean(ref, n) for n in steps])]
                if any(d is not None for d in diffs):
                    lines.append(f"| minus `{reference}` | {u} | {row(diffs, signed=True)} |")
    if not lines:
        return []
    return ["## Training loss around each RigL update", "",
            "Mean over seeds of the training loss (the KD objective for KD rows) at the step before the update "
            "after step u, at u (computed before the masks change) and the 10 steps after; the next line is "
            f"the row minus `{reference}` at the same steps and seeds (empty where it did not log them). First "
            f"{shown} updates of each row.", ""] + head + lines + [""]


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


def squad_section(study, out: Path, squad_results: list[str]) -> list[str]:
    """The report's SQuAD v1.1 lines: EM and F1 of each results file (scripts/squad.py runs), a run of a row's
    seed-0 model named by the row's label."""
    import os

    from squad import report as squad_report

    labels = {os.path.abspath(workdir(out, key, 0)): study.rows[key].label for key in rows_of(study, "study")}
    results = [squad_report.load_v11(path) for path in squad_results]
    table = squad_report.v11_table(results, lambda r: labels.get(os.path.abspath(r["checkpoint"]), r["model"]))
    return ["## SQuAD v1.1", "", "Dev set, exact match and F1 as the official script scores them: the best seed "
            "(by F1) and mean ± std over seeds (scripts/squad.py; files: "
            + ", ".join(f"`{r['file']}`" for r in results) + ").", "", table]


def write_report(study, out: Path, glue_dirs: list[Path], synthetic_data: bool, state: dict,
                 squad_results: list[str] | None = None) -> str:
    """report.md; `squad_results`: SQuAD v1.1 results (--out folders or results.json files) whose EM and F1
    the report shows after GLUE."""
    keys = rows_of(study, "study")
    sums = summaries(study, out, keys)
    labels = {k: study.rows[k].label for k in study.order}
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
             stats.claims_section(_claim_losses(study, out, keys), labels, horizon(study, keys)),
             glue_title, "", f"Fine-tuned from the models of pretraining seed(s) {glue_seeds} only"
             + (" on generated tasks: they test the pipeline, not the models' language skills." if synthetic_data
                else "."), "", _masks_text(study), "", table, ""]
    if squad_results:
        lines += squad_section(study, out, squad_results) + [""]
    lines += ["## Settings per row", ""]
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
             f"Generated by `python scripts/reproduce.py --scale {study.name} --ablation`. Rows marked KD distil "
             f"from the same teacher (`{study.teacher}`, seed 0); eval loss and perplexity are mean ± sample std "
             f"over the pretraining seeds, at {horizon(study, keys)}. The last columns give each row's eval loss minus "
             f"that of {' and '.join(f'`{r}`' for r in refs)}, paired by seed: mean difference, 95% t interval, "
             f"paired t-test p and the verdict of \"lower\".", "",
             f"Rule: {stats.RULE}", "",
             "| row | key | RigL schedule | seeds | eval loss | perplexity | " + " | ".join(f"vs `{r}`" for r in refs)
             + " |", "|---|---|---|---|---|---|" + "---|" * len(refs)]
    losses = {k: eval_losses(study, out, k) for k in keys}
    for key in keys:
        config = row_config(study, key, 0, out)
        schedule = sparse_config.rigl_schedule(config.sparsity, config.train.steps) if config.sparsity.enabled else None
        rigl = (rigl_text(schedule, config.train.steps) if schedule
                else "none (GMP)" if config.sparsity.enabled and config.sparsity.gmp.enabled
                else "static" if config.sparsity.enabled else "dense")
        s = sums[key]
        cells = ["" if r == key else stats.cell(stats.paired(losses[key], losses[r])) for r in refs]
        cells = [study.rows[key].label, f"`{key}`", rigl, str(s.n), stats.pm(s.loss_mean, s.loss_std, 3),
                 stats.pm(s.ppl_mean, s.ppl_std, 1)] + cells
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Comparisons that separate causes", "",
              stats.claims_section(losses, {k: study.rows[k].label for k in keys}, horizon(study, keys),
                                   claims=stats.CONTROLS, numbered=False)]
    lines += ["", "Per seed:", "", _row_table(study, out, keys, sums)]
    lines += _loss_around_updates(study, out, keys)
    lines += ["## Wall time per stage", ""]
    lines += _wall_times(state, pretraining_stages(study, rows_of(study, "ablation")))
    text = "\n".join(lines) + "\n"
    files.atomic_write_text(out / "ablation.md", text)
    return text


def _horizon_png(points: list[tuple[int, "stats.Paired"]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [h for h, _ in points]
    diffs = [c.diff for _, c in points]
    low = [c.diff - c.low if not np.isnan(c.low) else 0 for _, c in points]
    high = [c.high - c.diff if not np.isnan(c.high) else 0 for _, c in points]
    ax.errorbar(steps, diffs, yerr=[low, high], fmt="o-", capsize=4, label="mean, 95% t interval (paired by seed)")
    ax.axhline(0.0, color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(steps, [f"{h:,}" for h in steps])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # only the horizons are labelled
    ax.set_xlabel("pretraining steps (horizon)")
    ax.set_ylabel("eval loss, RigL + KD minus static + KD (nats)")
    ax.set_title("below 0: RigL better")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_horizon_report(study, out: Path, state: dict) -> str:
    """horizon.md and horizon.png: static + KD against RigL + KD at each horizon, paired by seed."""
    from jax_bert.train import sparse_config

    pairs = sorted((int(h), a, b) for h, a, b in study.horizon_pairs)
    lines = [f"# The horizon — {study.title}", "",
             f"Generated by `python scripts/reproduce.py --scale {study.name} --horizon`. At each length, static "
             f"80% + KD against RigL 80% + KD, both distilled from the same teacher (`{study.teacher}`, seed 0), "
             f"on the same seeds; the difference is RigL's eval loss minus static's, paired by seed.", "",
             f"Rule: {stats.RULE}", "",
             "| steps | RigL schedule | seeds | static + KD | RigL + KD | RigL minus static: mean [95% t interval] | "
             "bootstrap interval | paired t-test p | verdict: RigL lower |", "|---|---|---|---|---|---|---|---|---|"]
    points = []
    for steps, static, rigl in pairs:
        a, b = eval_losses(study, out, rigl), eval_losses(study, out, static)
        c, sa, sb = stats.paired(a, b), stats.summarize(a), stats.summarize(b)
        config = row_config(study, rigl, 0, out)
        schedule = rigl_text(sparse_config.rigl_schedule(config.sparsity, steps), steps)
        p = "" if np.isnan(c.p) else f"{c.p:.3g}"
        lines.append(f"| {steps:,} | {schedule} | {c.n} | {stats.pm(sb.loss_mean, sb.loss_std, 3)} | "
                     f"{stats.pm(sa.loss_mean, sa.loss_std, 3)} | {c.diff:+.3f} "
                     f"{stats.interval(c.low, c.high, signed=True)} | "
                     f"{stats.interval(c.boot_low, c.boot_high, signed=True)} | {p} | {stats.verdict(c)} |")
        points.append((steps, c))
    _horizon_png(points, out / "horizon.png")
    keys = list(dict.fromkeys(k for _, a, b in pairs for k in (a, b)))
    lines += ["", "![RigL minus static against the horizon](horizon.png)", "", "Per seed:", "",
              _row_table(study, out, keys, summaries(study, out, keys)), "## Wall time per stage", ""]
    lines += _wall_times(state, pretraining_stages(study, [study.teacher] + keys))
    text = "\n".join(lines) + "\n"
    files.atomic_write_text(out / "horizon.md", text)
    return text
