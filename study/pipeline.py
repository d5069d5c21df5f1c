"""The original's study as one resumable job: a table of pretraining rows, each over several pretraining
seeds, GLUE for the study's rows, one report; and the RigL ablation on the same machinery.

    python scripts/reproduce.py --scale tiny|small|base [--out DIR] [--glue_data_dir DIR] [--seeds N]
        [--pretrain_seeds N] [--ablation]

A preset (configs/study_*.py) is a table of rows (study/rows.py), each added with `add_row`: a
key, the table's label, a pretraining config (run by scripts/pretrain.py's code path, nothing else),
whether it distils from the teacher row, how many seeds it runs and which parts ('study', 'ablation')
it belongs to. The study's rows, in order:
    teacher      the dense teacher (bert_1mi's role); one seed, so every student distils from the same one
    dense_short  the dense short run (bert_100k's role)
    static       static 80% sparsity + one-cycle, no distillation (claim 1's control; not in the original)
    static_kd    static 80% + distillation from the teacher + one-cycle (sparse_80%_kd_onecycle_lr)
    rigl_kd      the same with RigL (sparse_80%_kd_onecycle_lr_rigl)
A new row (another sparsity method, say) is one more `add_row` in the preset.

Each row runs for seeds 0 .. n-1 (train.seed = sparsity.seed = the seed: batches, dropout, evaluation
masks and initial masks all change) in OUT/KEY/seedN. Then GLUE for the study's rows on the models of
the first `glue.pretrain_seeds` seeds (OUT/glue/KEY/seedN), then OUT/report.md (study/report.py):
eval loss and perplexity as mean ± std (and a 95% interval) over seeds, the original's three claims judged
on the paired per-seed differences (study/stats.py), the GLUE tables, each row's settings, the wall time of every stage,
training-loss curves and the per-tensor density of the sparse rows. `--ablation` runs the rows of the
'ablation' part instead (the teacher and the rows it shares with the study are the same work
directories) and writes OUT/ablation.md. A rerun skips what is finished and resumes what was
interrupted (pretraining from its last checkpoint, GLUE from the first task without results); a work
directory holding a run of another config is an error, never silently reused.
"""
from __future__ import annotations

import contextlib
import copy
import json
import time
from pathlib import Path

import ml_collections

from glue import config as glue_config
from glue import report, synthetic
from glue import run as glue_run
from glue.tasks import TASK_NAMES
from jax_bert import files
from jax_bert.cpu_load import CpuMonitor
from jax_bert.train import recipe
from study.report import write_ablation_report, write_horizon_report, write_report  # noqa: F401 (the API)
from study.rows import glue_dir, glue_stage, glue_stages, row_config, rows_of, seeds_of, workdir

_STATE_FILE = "study_state.json"


# ------------------------------------------------------------------------------------ the preset


def check(study, seeds: int | None = None) -> None:
    """Errors in the preset, before anything runs."""
    if seeds is not None and seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}.")
    if study.seeds < 1:
        raise ValueError(f"--pretrain_seeds must be >= 1, got {study.seeds}.")
    unknown = [t for t in study.glue.tasks if t not in TASK_NAMES]
    if unknown:
        raise ValueError(f"unknown GLUE tasks {unknown}; valid: {', '.join(TASK_NAMES)}.")
    if study.teacher not in study.rows or study.rows[study.teacher].distill:
        raise ValueError(f"the teacher row {study.teacher!r} is missing or distils itself; add it with add_row.")
    settings = list(study.glue.keep_masks)
    if not settings or any(not isinstance(m, bool) for m in settings) or len(set(settings)) != len(settings):
        raise ValueError(f"study glue.keep_masks must list True and/or False once each, got {settings}.")
    missing = [k for k in study.order if k not in study.rows] + [k for k in study.rows if k not in study.order]
    if missing:
        raise ValueError(f"rows {missing} are not in both study.rows and study.order; add rows with add_row.")
    bad = [k for _, a, b in study.horizon_pairs for k in (a, b)
           if k not in study.rows or "horizon" not in study.rows[k].parts]
    if bad:
        raise ValueError(f"horizon_pairs name rows {bad} that are not rows of the 'horizon' part; add them with "
                         f"add_row.")
    glue_config_of(study)  # bad GLUE settings fail now, not after the pretraining


def with_seeds(study, pretrain_seeds: int | None):
    """The preset with `pretrain_seeds` seeds per row (the preset's own when None)."""
    study = copy.deepcopy(study)
    if pretrain_seeds is not None:
        study.seeds = pretrain_seeds
    return study


# ------------------------------------------------------------------------------------ state


def _load_state(out: Path) -> dict:
    path = out / _STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"seconds": {}}


def _save_state(out: Path, state: dict) -> None:
    files.atomic_write_text(out / _STATE_FILE, json.dumps(state, indent=2) + "\n")


def code_version() -> str:
    """The commit of the code this process runs ('-dirty' with uncommitted changes), or 'unknown' outside git."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=30, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


@contextlib.contextmanager
def _timed(out: Path, state: dict, stage: str):
    """Adds the block's wall time to the stage's seconds (a resumed stage adds up) and records the share of
    the CPUs that other processes used meanwhile (seconds-weighted over resumes): timings from a busy
    machine say so in the report. Records the commit each stage ran (several when resumed across commits)."""
    commits = state.setdefault("commit", {})
    version = code_version()
    if version not in commits.get(stage, "").split(", "):
        commits[stage] = ", ".join(c for c in (commits.get(stage), version) if c)
    t0 = time.time()
    with CpuMonitor() as monitor:
        yield
    seconds, before = time.time() - t0, state["seconds"].get(stage, 0.0)
    shares = state.setdefault("other_cpu_share", {})
    if monitor.other_share is not None:
        old = shares.get(stage, monitor.other_share)
        shares[stage] = (old * before + monitor.other_share * seconds) / max(before + seconds, 1e-9)
    state["seconds"][stage] = before + seconds
    _save_state(out, state)


# ------------------------------------------------------------------------------------ pretraining


def _comparable(config: dict, wired: bool) -> dict:
    """A config as JSON, without what the study wires from the study directory's path (the teacher's
    directory and vocabulary) when `wired`: `--out runs/x` and `--out /abs/runs/x` are the same study."""
    d = json.loads(json.dumps(config, default=str))
    if wired:
        d["distill"]["teachers"] = [t.get("weight") if isinstance(t, dict) else 1.0 for t in d["distill"]["teachers"]]
        d["tokenizer"]["name"] = None
    return d


def _changed(written: dict, ours: dict, wired: bool) -> list[str]:
    """The recipe keys in which the written config and ours differ, by the pretraining loop's own rule for
    a resume (jax_bert/train/recipe.py): a key the written config lacks, added to the project after the run,
    is not compared (a key is added with a default that keeps the old behaviour)."""
    return [key for key, _, _ in recipe.changed_recipe(_comparable(written, wired), _comparable(ours, wired))]


def _pretrain_finished(wd: Path, config: ml_collections.ConfigDict, wired: bool) -> bool:
    """Finished: its final evaluation is written. A work directory with another config is an error."""
    if (wd.parent / "checkpoints").is_dir() or (wd.parent / "eval_results.json").is_file():
        raise ValueError(f"{wd.parent} holds a run of the study's older one-seed layout; use a new --out.")
    written = wd / "config.json"
    changed = _changed(json.loads(written.read_text()), config.to_dict(), wired) if written.is_file() else []
    if changed:
        raise ValueError(f"{wd} holds a run of another config ({', '.join(changed[:5])} changed: did the preset "
                         f"change?); delete that directory or use another --out.")
    results = wd / "eval_results.json"
    return results.is_file() and json.loads(results.read_text()).get("step") == config.train.steps


def run_pretraining(study, out: Path, keys: list[str], state: dict, log) -> None:
    from jax_bert.train import loop

    for key in keys:
        for seed in seeds_of(study, key):
            config = row_config(study, key, seed, out)
            wd = workdir(out, key, seed)
            if _pretrain_finished(wd, config, wired=key != study.teacher):
                log(f"[{key} seed{seed}] finished earlier, skipped")
                continue
            log(f"[{key} seed{seed}] pretraining {config.train.steps} steps -> {wd}")
            with _timed(out, state, f"{key} seed{seed}"):
                result = loop.run(config, str(wd))
            if result["status"] != "finished":
                raise SystemExit(f"[{key} seed{seed}] {result['status']}; rerun the same command to resume.")


# ------------------------------------------------------------------------------------ GLUE


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
    out_dirs = []
    for key, seed, keep_masks in glue_stages(study):
        config = glue_config_of(study)
        config.keep_masks = keep_masks
        glue_out = glue_dir(out, key, seed, keep_masks)
        stage = glue_stage(key, seed, keep_masks)
        out_dirs.append(glue_out)
        done = set()
        if (glue_out / report.RESULTS_FILE).is_file():
            done = set(report.load_results(glue_out).get("runs", {}))
        todo = [t for t in study.glue.tasks if t not in done]
        if not todo:
            log(f"[{stage}] finished earlier, skipped")
            continue
        log(f"[{stage}] {', '.join(todo)}")
        with _timed(out, state, stage):
            status = glue_run.main(config, checkpoint=str(workdir(out, key, seed)), tasks=todo, out=str(glue_out),
                                   model_name=study.rows[key].label, data_dir=data_dir, seeds=seeds, progress=False)
        if status != 0:
            raise SystemExit(f"[{stage}] failed (exit {status}); see {glue_out}/errors; rerun to resume.")
    return out_dirs


# ------------------------------------------------------------------------------------ entry points


def with_glue_masks(study, keep_masks: tuple[bool, ...] | None):
    """The preset with GLUE's keep_masks settings `keep_masks` (the preset's own when None)."""
    if keep_masks is None:
        return study
    study = copy.deepcopy(study)
    study.glue.keep_masks = tuple(keep_masks)
    return study


def run_study(study: ml_collections.ConfigDict, out: str, *, glue_data_dir_arg: str | None = None,
              seeds: int | None = None, pretrain_seeds: int | None = None,
              glue_keep_masks: tuple[bool, ...] | None = None, squad_results: list[str] | None = None,
              log=print) -> str:
    """Runs (or resumes) the study's rows over their seeds, then GLUE; returns the report's markdown.
    `seeds`: runs per GLUE task (default: the protocol's); `pretrain_seeds`: instead of the preset's;
    `glue_keep_masks`: GLUE's keep_masks settings instead of the preset's; `squad_results`: SQuAD v1.1
    results (scripts/squad.py --out folders or their results.json) whose EM / F1 the report shows."""
    study = with_glue_masks(with_seeds(study, pretrain_seeds), glue_keep_masks)
    check(study, seeds)
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    state = _load_state(out_path)
    run_pretraining(study, out_path, rows_of(study, "study"), state, log)
    data_dir, synthetic_data = glue_data_dir(study, out_path, glue_data_dir_arg)
    glue_dirs = run_glue(study, out_path, data_dir, seeds, state, log)
    return write_report(study, out_path, glue_dirs, synthetic_data, state, squad_results)


def with_ablation_rows(study, rows: list[str] | None):
    """The preset whose ablation part is only `rows` (and the rows it is compared with); all of it when None."""
    if rows is None:
        return study
    ablation = [k for k in rows_of(study, "ablation") if k != study.teacher]
    unknown = [k for k in rows if k not in ablation]
    if unknown:
        raise ValueError(f"--rows {','.join(unknown)}: not ablation rows of the {study.name or 'given'} preset; "
                         f"choose from {','.join(ablation)}.")
    study = copy.deepcopy(study)
    for key in ablation:
        if key not in rows and key not in study.ablation_references:
            study.rows[key].parts = tuple(p for p in study.rows[key].parts if p != "ablation")
    return study


def run_ablation(study: ml_collections.ConfigDict, out: str, *, pretrain_seeds: int | None = None,
                 rows: list[str] | None = None, log=print) -> str:
    """Runs (or resumes) the rows of the 'ablation' part (only `rows` and the reference rows, when given);
    returns ablation.md's markdown."""
    study = with_ablation_rows(with_seeds(study, pretrain_seeds), rows)
    check(study)
    keys = rows_of(study, "ablation")
    if len(keys) < 2:
        raise ValueError(f"the {study.name or 'given'} preset has no ablation rows (parts=('ablation',)).")
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    state = _load_state(out_path)
    run_pretraining(study, out_path, keys, state, log)
    return write_ablation_report(study, out_path, state)


def with_horizons(study, horizons: list[int] | None):
    """The preset whose horizon part is only the pairs at `horizons` (steps); all of it when None."""
    if horizons is None:
        return study
    known = [int(h) for h, _, _ in study.horizon_pairs]
    unknown = [h for h in horizons if h not in known]
    if unknown:
        raise ValueError(f"--horizons {','.join(map(str, unknown))}: not horizons of the {study.name or 'given'} "
                         f"preset; choose from {','.join(map(str, known))}.")
    study = copy.deepcopy(study)
    study.horizon_pairs = [p for p in study.horizon_pairs if int(p[0]) in horizons]
    keep = {k for _, a, b in study.horizon_pairs for k in (a, b)}
    for key in study.order:
        if "horizon" in study.rows[key].parts and key not in keep:
            study.rows[key].parts = tuple(p for p in study.rows[key].parts if p != "horizon")
    return study


def run_horizon(study: ml_collections.ConfigDict, out: str, *, pretrain_seeds: int | None = None,
                horizons: list[int] | None = None, log=print) -> str:
    """Runs (or resumes) the horizon pairs (only those at `horizons` steps, when given), shortest first;
    returns horizon.md's markdown (its plot: horizon.png)."""
    study = with_horizons(with_seeds(study, pretrain_seeds), horizons)
    check(study)
    if not study.horizon_pairs:
        raise ValueError(f"the {study.name or 'given'} preset has no horizon pairs (horizon_pairs).")
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    state = _load_state(out_path)
    keys = [study.teacher] + [k for _, a, b in sorted(study.horizon_pairs) for k in (a, b)]
    run_pretraining(study, out_path, list(dict.fromkeys(keys)), state, log)
    return write_horizon_report(study, out_path, state)
