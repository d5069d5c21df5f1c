"""The SQuAD results tables: the best seed and mean ± std over seeds (sample std, ddof=1), with the
checkpoint's sparsity of the BERT body and the coverage (questions answered / questions)."""
from __future__ import annotations

import math

import numpy as np

METRICS = {"1.1": ("exact_match", "f1"), "2.0": ("exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1")}


def _ok(results: dict) -> list[dict]:
    return [r for r in results["runs"] if not r.get("error")]


def rows(results: dict) -> list[dict]:
    """[best seed row, mean ± std row] (empty when every seed failed)."""
    runs, names = _ok(results), METRICS[results["version"]]
    if not runs:
        return []
    best = max(runs, key=lambda r: r["metrics"]["f1"])
    common = {"model": results["model"], "version": results["version"],
              "body sparsity %": results["body_sparsity"]}
    out = [dict(common, row=f"best (seed {best['seed']})",
                **{m: f"{best['metrics'][m]:.2f}" for m in names if m in best["metrics"]},
                answered=f"{best['metrics']['answered']}/{results['questions']}")]
    stats = {}
    for m in names:
        v = np.array([r["metrics"][m] for r in runs if m in r["metrics"]], np.float64)
        if len(v):
            std = float(v.std(ddof=1)) if len(v) > 1 else math.nan
            stats[m] = f"{v.mean():.2f} ± {std:.2f}" if len(v) > 1 else f"{v.mean():.2f}"
    answered = min(r["metrics"]["answered"] for r in runs)
    out.append(dict(common, row=f"mean ± std ({len(runs)} of {len(results['runs'])} seeds)", **stats,
                    answered=f"{answered}/{results['questions']} (fewest)"))
    return out


def markdown(table: list[dict]) -> str:
    if not table:
        return "no seed finished (see results.json for each seed's error)\n"
    keys = list(dict.fromkeys(k for r in table for k in r))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in table]
    return "\n".join(lines) + "\n"


def csv_text(table: list[dict]) -> str:
    import csv
    import io

    if not table:
        return ""
    keys = list(dict.fromkeys(k for r in table for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buf.getvalue()


# ---------------------------------------------------------------- the study's SQuAD v1.1 columns

def load_v11(path) -> dict:
    """The results.json of a SQuAD v1.1 run: `path` is its --out folder or the file itself. A missing, damaged
    or v2.0 file is a ValueError naming it."""
    import json
    from pathlib import Path

    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    try:
        with open(file, encoding="utf-8") as f:
            results = json.load(f)
        version = results["version"]
        if version == "1.1":
            v11_columns(results), float(results["body_sparsity"])  # noqa: B018 - what the table reads is there
    except FileNotFoundError:
        raise ValueError(f"--squad {path}: no results.json there; give the --out folder of a scripts/squad.py "
                         "run or its results.json.") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--squad {file}: not a SQuAD results file ({type(e).__name__}: {e}).") from None
    if version != "1.1":
        raise ValueError(f"--squad {file}: SQuAD v{version} results; the columns are SQuAD v1.1 EM and F1.")
    return results | {"file": str(file)}


def v11_columns(results: dict) -> dict:
    """{"EM", "F1"} of the best seed (by F1, as the tables), {"EM mean ± std", "F1 mean ± std"} over the seeds
    that finished, and "seeds": 'n of N'; empty cells when none finished."""
    runs = _ok(results)
    out = {"EM": "", "F1": "", "EM mean ± std": "", "F1 mean ± std": "",
           "seeds": f"{len(runs)} of {len(results['runs'])}"}
    if runs:
        best = max(runs, key=lambda r: r["metrics"]["f1"])
        out.update(EM=f"{best['metrics']['exact_match']:.2f}", F1=f"{best['metrics']['f1']:.2f}")
        for key, metric in (("EM mean ± std", "exact_match"), ("F1 mean ± std", "f1")):
            v = np.array([r["metrics"][metric] for r in runs], np.float64)
            out[key] = f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"
    return out


def v11_table(results_list, label=lambda results: results["model"]) -> str:
    """Markdown: one row per SQuAD v1.1 results file: model (`label`), body sparsity, EM / F1 of the best seed
    and mean ± std over seeds."""
    table = [{"model": label(r), "body sparsity %": f"{r['body_sparsity']:.2f}", **v11_columns(r)}
             for r in results_list]
    return markdown(table)
