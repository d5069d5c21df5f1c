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
