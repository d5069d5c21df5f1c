"""Per-seed GLUE results on disk, and the results tables in the original's format (docs/original.md).

One output directory holds one model's `results.json`:
    {"format_version": 1, "model": "bert_100k",
     "extras": {"perplexity": 8.619, "eval_loss": 2.154, "sparsity": 79.58},
     "settings": {"keep_masks": true},
     "runs": {"cola": [{"seed": 0, "status": "ok", "metrics": {"matthews_correlation": 39.56}},
                       {"seed": 1, "status": "failed", "error": "loss became nan"}], ...}}
`settings` are the fine-tuning settings the table must show: keep_masks (a sparse checkpoint's zeros
kept while fine-tuning, or free to regrow as in the original's sparse rows); a file without it was
written before the setting existed, when masks were always kept. Metrics are percentages
(glue.metrics). nan metrics are stored as null (strict JSON) and read back as nan. Files are
replaced atomically, so a crash leaves the old or the new file, never half.

Table rules: per task the reported run is the ok run with the highest first metric (nan sorts
lowest; ties go to the lower seed); all of that run's metrics are shown ("88.85/84.07"); a task's
score is the mean of its metrics; average_bert = mean over the eight tasks without WNLI,
average_glue = mean over all nine, each over the tasks present (the notes name what is missing).
Failed seeds are kept in the file but left out of every number.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from glue.tasks import BERT_AVERAGE_TASKS, TABLE_ORDER, TASK_NAMES, get_task
from jax_bert import files

RESULTS_FILE = "results.json"
FORMAT_VERSION = 1
# Optional model-level columns, in table order: key in "extras" -> (header, decimals).
EXTRA_COLUMNS = {"sparsity": ("sparsity", 2), "perplexity": ("perplexity", 3),
                 "eval_loss": ("eval loss", 3)}
# Fine-tuning settings recorded per model, and what a file from before a setting existed means.
SETTINGS_BEFORE = {"keep_masks": True}


# ---------------------------------------------------------------- results files

def new_results(model: str, extras: Mapping[str, float] | None = None,
                settings: Mapping[str, bool] | None = None) -> dict:
    return {"format_version": FORMAT_VERSION, "model": str(model),
            "extras": dict(extras or {}), "settings": dict(settings or {}), "runs": {}}


def settings_of(results: dict) -> dict:
    """The fine-tuning settings of a results dict (those missing from an older file: SETTINGS_BEFORE)."""
    return SETTINGS_BEFORE | dict(results.get("settings") or {})


def add_run(results: dict, task: str, seed: int, metrics: Mapping[str, float] | None = None,
            error: str | None = None) -> dict:
    """A copy of `results` with one seed's outcome added (replacing that seed if present).

    Pass `metrics` (all of the task's metrics) for a finished run, or `error` for a failed one
    (e.g. the loss diverged to nan); a failed run is recorded but never reported.
    """
    t = get_task(task)
    if (metrics is None) == (error is None):
        raise ValueError("add_run needs exactly one of metrics (a finished run) or error "
                         "(a failed run).")
    if metrics is not None:
        missing = [m for m in t.metric_names if m not in metrics]
        if missing:
            raise ValueError(f"{t.name} results lack metrics {missing}; expected "
                             f"{list(t.metric_names)}, got {list(metrics)}.")
        run = {"seed": int(seed), "status": "ok",
               "metrics": {m: float(metrics[m]) for m in t.metric_names}}
    else:
        run = {"seed": int(seed), "status": "failed", "error": str(error)}
    out = json.loads(json.dumps(results))  # deep copy: callers keep their dict
    runs = [r for r in out["runs"].get(t.name, []) if r["seed"] != int(seed)]
    out["runs"][t.name] = sorted(runs + [run], key=lambda r: r["seed"])
    return out


def _to_json(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_json(v) for v in obj]
    return obj


def _results_path(path) -> Path:
    path = Path(path)
    return path if path.suffix == ".json" else path / RESULTS_FILE


def save_results(out_dir, results: dict) -> Path:
    path = _results_path(out_dir)
    files.atomic_write_text(path, json.dumps(_to_json(results), indent=2, allow_nan=False) + "\n")
    return path


def load_results(path) -> dict:
    """Read DIR/results.json (or a .json path); null metrics come back as nan."""
    path = _results_path(path)
    if not path.is_file():
        raise ValueError(f"No results file {path}; pass an output directory written by the GLUE "
                         "fine-tuning (it holds results.json).")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # cut short or edited by hand: the file is named
        raise ValueError(f"{path} is damaged ({e}); restore it, or start that directory afresh (--fresh moves "
                         "it aside).") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a results file of format_version {FORMAT_VERSION}.")
    for runs in data["runs"].values():
        for r in runs:
            if "metrics" in r:
                r["metrics"] = {k: float("nan") if v is None else float(v)
                                for k, v in r["metrics"].items()}
    return data


def record_run(out_dir, task: str, seed: int, metrics: Mapping[str, float] | None = None, *,
               error: str | None = None, model: str | None = None) -> dict:
    """Load (or start) out_dir/results.json, add one seed's outcome, save atomically."""
    path = _results_path(out_dir)
    if path.is_file():
        results = load_results(path)
    else:
        results = new_results(model or Path(out_dir).name)
    if model is not None:
        results["model"] = model
    results = add_run(results, task, seed, metrics, error)
    save_results(out_dir, results)
    return results


def drop_task(out_dir, task: str) -> None:
    """Removes every run of `task` from out_dir/results.json (before the runs of a new setting go in)."""
    path = _results_path(out_dir)
    if path.is_file():
        results = load_results(path)
        if results["runs"].pop(get_task(task).name, None) is not None:
            save_results(out_dir, results)


def set_extras(out_dir, model: str | None = None, **extras: float) -> dict:
    """Set model-level numbers (perplexity, eval_loss, sparsity) in out_dir/results.json."""
    unknown = [k for k in extras if k not in EXTRA_COLUMNS]
    if unknown:
        raise ValueError(f"Unknown extras {unknown}; known: {list(EXTRA_COLUMNS)}.")
    path = _results_path(out_dir)
    results = load_results(path) if path.is_file() else new_results(model or Path(out_dir).name)
    results["extras"].update({k: float(v) for k, v in extras.items()})
    save_results(out_dir, results)
    return results


def set_settings(out_dir, model: str | None = None, **settings: bool) -> dict:
    """Record the fine-tuning settings in out_dir/results.json; refuses (ValueError) to mix runs of
    different settings in one file, since the table shows one value per model."""
    unknown = [k for k in settings if k not in SETTINGS_BEFORE]
    if unknown:
        raise ValueError(f"Unknown settings {unknown}; known: {list(SETTINGS_BEFORE)}.")
    path = _results_path(out_dir)
    results = load_results(path) if path.is_file() else new_results(model or Path(out_dir).name)
    have = settings_of(results)
    clash = {k: have[k] for k, v in settings.items() if results["runs"] and have[k] != bool(v)}
    if clash:
        raise ValueError(f"{path} holds runs fine-tuned with " + ", ".join(f"{k}={v}" for k, v in clash.items())
                         + "; fine-tune with other settings into another --out directory.")
    results["settings"] = have | {k: bool(v) for k, v in settings.items()}
    save_results(out_dir, results)
    return results


# ---------------------------------------------------------------- summaries

def _ok_runs(results: dict, task: str) -> list[dict]:
    return [r for r in results["runs"].get(task, []) if r.get("status") == "ok"]


def best_run(results: dict, task: str) -> dict | None:
    """The ok run with the highest first metric (nan lowest, ties -> lower seed); None if none."""
    first = get_task(task).metric_names[0]
    best, best_key = None, None
    for run in sorted(_ok_runs(results, task), key=lambda r: r["seed"]):
        v = run["metrics"][first]
        key = -math.inf if math.isnan(v) else v
        if best is None or key > best_key:
            best, best_key = run, key
    return best


def summarize(results: dict) -> dict:
    """One model's table row: best run per task, task scores, averages, missing tasks."""
    tasks = {}
    for name in TASK_NAMES:
        runs = results["runs"].get(name, [])
        run = best_run(results, name)
        if run is None:
            continue
        metrics = [run["metrics"][m] for m in get_task(name).metric_names]
        tasks[name] = {"seed": run["seed"], "metrics": dict(run["metrics"]),
                       "score": float(np.mean(metrics)), "n_ok": len(_ok_runs(results, name)),
                       "n_failed": len(runs) - len(_ok_runs(results, name))}
    row = {"model": results["model"], "tasks": tasks, "extras": dict(results.get("extras", {})),
           "settings": settings_of(results)}
    for key, group in (("average_bert", BERT_AVERAGE_TASKS), ("average_glue", TASK_NAMES)):
        present = [t for t in group if t in tasks]
        row[key] = float(np.mean([tasks[t]["score"] for t in present])) if present else math.nan
        row[f"missing_{key.split('_')[1]}"] = [t for t in group if t not in tasks]
    return row


def _num(v: float, decimals: int = 2) -> str:
    return "nan" if v is None or math.isnan(v) else f"{v:.{decimals}f}"


def _extra_keys(rows) -> list[str]:
    return [k for k in EXTRA_COLUMNS if any(k in r["extras"] for r in rows)]


def format_table(rows: Sequence[dict], decimals: int = 2) -> str:
    """Markdown table in the original's format from `summarize` rows, with notes on missing tasks."""
    extras = _extra_keys(rows)
    header = (["model", "average_bert", "average_glue"] + list(TABLE_ORDER)
              + [EXTRA_COLUMNS[k][0] for k in extras] + ["sparse masks"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = []
    for r in rows:
        cells = [r["model"], _num(r["average_bert"], decimals), _num(r["average_glue"], decimals)]
        for t in TABLE_ORDER:
            info = r["tasks"].get(t)
            cells.append("" if info is None else "/".join(
                _num(info["metrics"][m], decimals) for m in get_task(t).metric_names))
        cells += [_num(r["extras"][k], EXTRA_COLUMNS[k][1]) if k in r["extras"] else ""
                  for k in extras]
        cells.append(_masks_cell(r))
        lines.append("| " + " | ".join(cells) + " |")
        for key in ("bert", "glue"):
            if r[f"missing_{key}"]:
                notes.append(f"{r['model']}: average_{key} leaves out missing tasks "
                             f"{', '.join(r[f'missing_{key}'])}.")
        failed = {t: i["n_failed"] for t, i in r["tasks"].items() if i["n_failed"]}
        if failed:
            notes.append(f"{r['model']}: failed (diverged) runs left out: "
                         + ", ".join(f"{t} {n}" for t, n in failed.items()) + ".")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _masks_cell(row: dict) -> str:
    """How a sparse checkpoint's zeros were fine-tuned: 'kept' (exactly 0 throughout) or 'may regrow'."""
    return "kept" if row.get("settings", SETTINGS_BEFORE)["keep_masks"] else "may regrow"


def seed_statistics(results: dict) -> dict:
    """task -> {metric: (mean, sample std (ddof=1; nan for one run), n_ok)} over ok runs."""
    out = {}
    for name in TASK_NAMES:
        runs = _ok_runs(results, name)
        if not runs:
            continue
        stats = {}
        for m in get_task(name).metric_names:
            v = np.array([r["metrics"][m] for r in runs], dtype=np.float64)
            stats[m] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                        len(v))
        out[name] = stats
    return out


def format_seed_table(results_list: Sequence[dict], decimals: int = 2) -> str:
    """Markdown table of mean ± std over ok seeds per metric ('45.81±3.20/…', then [n=...])."""
    header = ["model"] + list(TABLE_ORDER)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for results in results_list:
        stats = seed_statistics(results)
        cells = [results["model"]]
        for t in TABLE_ORDER:
            if t not in stats:
                cells.append("")
                continue
            parts, n = [], 0
            for mean, std, n in stats[t].values():
                parts.append(_num(mean, decimals) + ("" if math.isnan(std)
                                                     else "±" + _num(std, decimals)))
            cells.append("/".join(parts) + f" [n={n}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict]) -> str:
    """Best-run results as CSV: one row per model, one column per task metric, full precision."""
    extras = _extra_keys(rows)
    fields = ["model", "average_bert", "average_glue"]
    for t in TABLE_ORDER:
        fields += [f"{t}_{m}" for m in get_task(t).metric_names] + [f"{t}_seed"]
    fields += extras + ["keep_masks", "missing"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        rec = {"model": r["model"], "average_bert": r["average_bert"],
               "average_glue": r["average_glue"], "missing": " ".join(r["missing_glue"]),
               "keep_masks": r.get("settings", SETTINGS_BEFORE)["keep_masks"]}
        for t, info in r["tasks"].items():
            rec.update({f"{t}_{m}": v for m, v in info["metrics"].items()})
            rec[f"{t}_seed"] = info["seed"]
        rec.update({k: r["extras"][k] for k in extras if k in r["extras"]})
        w.writerow(rec)
    return buf.getvalue()


def write_csv(path, rows: Sequence[dict]) -> None:
    files.atomic_write_text(path, csv_text(rows))


def build_report(out_dirs: Iterable, csv_path=None) -> str:
    """Both tables for the models in `out_dirs` (what `--report_only --out D1 --out D2` prints)."""
    results_list = [load_results(d) for d in out_dirs]
    if not results_list:
        raise ValueError("build_report needs at least one output directory (--out DIR).")
    rows = [summarize(r) for r in results_list]
    if csv_path is not None:
        write_csv(csv_path, rows)
    return ("Best run per task (dev set, max over seeds by the first metric):\n\n"
            + format_table(rows) + "\nMean ± std over seeds:\n\n"
            + format_seed_table(results_list))


# ---------------------------------------------------------------- test-set submissions

def write_submission(out_dir, task: str, split: str, idx, predictions) -> Path:
    """Write a GLUE benchmark file (e.g. MNLI-m.tsv): header 'index<TAB>prediction'.

    predictions: class ids, logits [N, num_labels] or STS-B scores, in the order of `idx`.
    MNLI/QNLI/RTE predictions are written as label names, the others as integers; STS-B
    scores are clipped to [0, 5].
    """
    t = get_task(task)
    if split not in t.submissions:
        raise ValueError(f"{t.name} has no test split {split!r}; test splits: "
                         f"{list(t.submissions)}.")
    p = np.asarray(predictions)
    if t.is_regression:
        p = np.clip(p.reshape(len(p), -1)[:, 0].astype(np.float64), 0.0, 5.0)
        values = [f"{v:.3f}" for v in p]
    else:
        p = np.argmax(p, axis=-1) if p.ndim == 2 else p.astype(np.int64)
        values = [t.label_names[int(v)] if t.tsv_label_map else str(int(v)) for v in p]
    idx = np.asarray(idx)
    if len(idx) != len(values):
        raise ValueError(f"{len(idx)} indices but {len(values)} predictions.")
    path = Path(out_dir) / t.submissions[split]
    files.atomic_write_text(path, "index\tprediction\n"
                      + "".join(f"{int(i)}\t{v}\n" for i, v in zip(idx, values)))
    return path
