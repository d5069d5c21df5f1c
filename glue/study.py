"""The original's whole study as one resumable job: four pretraining runs, GLUE for each, one report.

    python scripts/reproduce.py --scale tiny|small|base [--out DIR] [--glue_data_dir DIR] [--seeds N]

Stages, in order (each is the code path of scripts/pretrain.py or scripts/finetune_glue.py, nothing
else):
    teacher      the dense teacher (bert_1mi's role)
    dense_short  the dense short run (bert_100k's role)
    sparse_kd    static 80% sparsity + distillation from the teacher + one-cycle
    rigl_kd      the same with RigL
then GLUE for each model (vmapped seeds), then report.md with the tables, each row's settings, the
wall time of every stage, the training-loss curves and the per-tensor density of the sparse rows.
A rerun skips what is finished and resumes what was interrupted (pretraining from its last
checkpoint, GLUE from the first task without results).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import ml_collections

from glue import config as glue_config
from glue import report, synthetic
from glue import run as glue_run
from glue.tasks import TASK_NAMES
from jax_bert import files

STAGES = ("teacher", "dense_short", "sparse_kd", "rigl_kd")
ROW_NAMES = {"teacher": "bert_1mi (teacher)", "dense_short": "bert_100k",
             "sparse_kd": "sparse_80%_kd_onecycle_lr", "rigl_kd": "sparse_80%_kd_onecycle_lr_rigl"}
_STATE_FILE = "study_state.json"


def _load_state(out: Path) -> dict:
    path = out / _STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"seconds": {}, "done": []}


def _save_state(out: Path, state: dict) -> None:
    files.atomic_write_text(out / _STATE_FILE, json.dumps(state, indent=2) + "\n")


def stage_config(study: ml_collections.ConfigDict, stage: str, out: Path) -> ml_collections.ConfigDict:
    """The pretraining config of a stage, wired to the teacher's work directory and vocabulary."""
    config = ml_collections.ConfigDict(study.stages[stage].to_dict())
    teacher_dir = str(out / "teacher")
    if stage != "teacher" and study.share_teacher_tokenizer:
        config.tokenizer.name = os.path.join(teacher_dir, "tokenizer")
    if stage in ("sparse_kd", "rigl_kd"):
        config.distill.teachers = [{"path": teacher_dir, "weight": 1.0}]
    return config


def _pretrain_finished(workdir: Path, steps: int) -> bool:
    results = workdir / "eval_results.json"
    return results.is_file() and json.loads(results.read_text()).get("step") == steps


def run_pretraining(study, out: Path, state: dict, log) -> None:
    from jax_bert.train import loop

    for stage in STAGES:
        config = stage_config(study, stage, out)
        workdir = out / stage
        if _pretrain_finished(workdir, config.train.steps):
            log(f"[{stage}] finished earlier, skipped")
            continue
        log(f"[{stage}] pretraining {config.train.steps} steps -> {workdir}")
        t0 = time.time()
        result = loop.run(config, str(workdir))
        state["seconds"][stage] = state["seconds"].get(stage, 0.0) + time.time() - t0
        _save_state(out, state)
        if result["status"] != "finished":
            raise SystemExit(f"[{stage}] {result['status']}; rerun the same command to resume.")


def glue_data_dir(study, out: Path, given: str | None) -> tuple[str | None, bool]:
    """(data dir, synthetic?) — the given directory, the hub (base scale) or generated tasks."""
    if given:
        return given, False
    if not study.glue.synthetic:
        return None, False
    path = out / "synthetic_glue"
    if not (path / "done").is_file():
        synthetic.write_synthetic_glue(path, "hub", dict(study.glue.synthetic_sizes),
                                       tasks=list(study.glue.tasks), seed=0)
        (path / "done").write_text("ok\n")
    return str(path), True


def glue_config_of(study) -> ml_collections.ConfigDict:
    """glue.config.get_config() with the preset's glue.overrides, checked."""
    try:
        config = glue_config.with_overrides(study.glue.overrides)
        glue_config.validate(config)
    except ValueError as e:
        raise ValueError(f"study glue.overrides: {e}") from e
    return config


def run_glue(study, out: Path, data_dir: str | None, seeds: int | None, state: dict, log) -> list[Path]:
    config = glue_config_of(study)
    out_dirs = []
    for stage in STAGES:
        glue_out = out / "glue" / stage
        out_dirs.append(glue_out)
        done = set()
        if (glue_out / report.RESULTS_FILE).is_file():
            done = set(report.load_results(glue_out).get("runs", {}))
        todo = [t for t in study.glue.tasks if t not in done]
        if not todo:
            log(f"[glue {stage}] finished earlier, skipped")
            continue
        log(f"[glue {stage}] {', '.join(todo)}")
        t0 = time.time()
        status = glue_run.main(config, checkpoint=str(out / stage), tasks=todo, out=str(glue_out),
                               model_name=ROW_NAMES[stage], data_dir=data_dir, seeds=seeds, progress=False)
        state["seconds"][f"glue {stage}"] = state["seconds"].get(f"glue {stage}", 0.0) + time.time() - t0
        _save_state(out, state)
        if status != 0:
            raise SystemExit(f"[glue {stage}] failed (exit {status}); see {glue_out}/errors; rerun to resume.")
    return out_dirs


def _loss_curves_png(out: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jax_bert.train.logs import read_jsonl

    fig, ax = plt.subplots(figsize=(7, 4))
    for stage in STAGES:
        rows = [r for r in read_jsonl(str(out / stage / "metrics.jsonl")) if "train/loss" in r]
        ax.plot([r["step"] for r in rows], [r["train/loss"] for r in rows], label=ROW_NAMES[stage])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss, nats (KD rows: KD objective)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _density_png(out: Path, stage: str, path: Path) -> float:
    import sparsity
    from jax_bert.model import hf_io

    _, params = hf_io.load_hf(str(out / stage / "hf"))
    stats = sparsity.sparsity_stats(params)
    path.write_bytes(sparsity.density_chart_png(stats, only_sparse=False))
    return stats.overall.sparsity


def write_report(study, out: Path, glue_dirs: list[Path], synthetic_data: bool, state: dict) -> str:
    table = report.build_report([str(d) for d in glue_dirs], csv_path=str(out / "results.csv"))
    _loss_curves_png(out, out / "loss_curves.png")
    lines = [f"# {study.title}" + (" — GLUE numbers from SYNTHETIC tasks, not real GLUE" if synthetic_data else ""),
             "", f"Scale preset: `{study.name}`. Generated by `python scripts/reproduce.py --scale {study.name}`.", "",
             table, "", "## Settings per row", ""]
    for stage in STAGES:
        c = stage_config(study, stage, out)
        sp = (f"{c.sparsity.overall if c.sparsity.overall >= 0 else c.sparsity.level:.0%} {c.sparsity.method}"
              if c.sparsity.enabled else "dense")
        rigl = f", RigL every {c.sparsity.rigl.update_freq}" if c.sparsity.enabled and c.sparsity.rigl.enabled else ""
        kd = ", distilled from the teacher" if stage in ("sparse_kd", "rigl_kd") else ""
        m = c.model
        lines.append(f"- **{ROW_NAMES[stage]}**: {m.num_hidden_layers} layers, hidden {m.hidden_size}, "
                     f"{c.train.steps} steps x batch {c.train.global_batch_size} x length {c.train.seq_len}, "
                     f"{c.optim.schedule} lr {c.optim.learning_rate:g}, {sp}{rigl}{kd}.")
    lines += ["", "## Wall time per stage", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in state["seconds"].items()]
    lines += ["", "## Training loss", "", "![training loss](loss_curves.png)", "", "## Per-tensor density", ""]
    for stage in ("sparse_kd", "rigl_kd"):
        png = out / f"density_{stage}.png"
        overall = _density_png(out, stage, png)
        lines += [f"{ROW_NAMES[stage]}: {overall:.2%} of all parameters are zero.", "", f"![density]({png.name})", ""]
    text = "\n".join(lines) + "\n"
    files.atomic_write_text(out / "report.md", text)
    return text


def run_study(study: ml_collections.ConfigDict, out: str, *, glue_data_dir_arg: str | None = None,
              seeds: int | None = None, log=print) -> str:
    """Runs (or resumes) the whole study; returns the report's markdown."""
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    unknown = [t for t in study.glue.tasks if t not in TASK_NAMES]
    if unknown:
        raise ValueError(f"unknown GLUE tasks {unknown}; valid: {', '.join(TASK_NAMES)}.")
    if seeds is not None and seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}.")
    glue_config_of(study)  # bad GLUE settings fail now, not after the pretraining
    state = _load_state(out_path)
    run_pretraining(study, out_path, state, log)
    data_dir, synthetic_data = glue_data_dir(study, out_path, glue_data_dir_arg)
    glue_dirs = run_glue(study, out_path, data_dir, seeds, state, log)
    return write_report(study, out_path, glue_dirs, synthetic_data, state)


def base_study_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = ""
    c.title = "Sparse BERT study"
    c.share_teacher_tokenizer = True  # the other stages use the teacher's vocabulary (needed for KD)
    c.stages = ml_collections.ConfigDict()
    c.glue = ml_collections.ConfigDict({
        "tasks": list(TASK_NAMES),
        "synthetic": True,  # without --glue_data_dir: generated tasks (tiny/small) or the hub (base)
        "synthetic_sizes": {"train": 256, "validation": 64, "test": 16},
        # Changes to glue/config.py's settings, e.g. {"learning_rate": 1e-3, "tasks": {"cola": {"epochs": 3}}}
        "overrides": {},
    })
    return c
