"""The schedule check of a gradual-magnitude-pruning work directory: at every prune step, the kept count
the cubic schedule asks for beside the count the step logged (`train/kept_weights` in metrics.jsonl),
and the sparsity of the counted parameters that count gives. Only the work directory is read (its
config.json, bert_config.json and metrics.jsonl), nothing is trained.
"""
from __future__ import annotations

import json
import math
import os
import re

import ml_collections

import sparsity
from jax_bert import model
from jax_bert.model import BertConfig
from jax_bert.train import sparse_config
from jax_bert.train.logs import read_jsonl


def schedule_check(workdir: str) -> list[dict]:
    """One row per prune: prune, step, kept_target, kept_logged (None when that step was not logged),
    sparsity_counted (of the params sparsity.gmp.counted_over selects, dense ones nonzero)."""
    paths = {name: os.path.join(workdir, name) for name in ("config.json", "bert_config.json", "metrics.jsonl")}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"{missing[0]} is missing: give the work directory of a pretraining run.")
    with open(paths["config.json"]) as f:
        config = ml_collections.ConfigDict(json.load(f))
    with open(paths["bert_config.json"]) as f:
        model_config = BertConfig(**json.load(f))
    if not (config.sparsity.enabled and config.sparsity.gmp.enabled):
        raise ValueError(f"{workdir} is not a gradual-magnitude-pruning run (sparsity.gmp.enabled is off).")
    shapes = model.abstract_params(model_config)
    schedule = sparse_config.gmp_schedule(config.sparsity, int(config.train.steps), shapes)
    sparse = set(sparsity.match_rules(shapes, sparse_config.sparsity_spec(config.sparsity).rules))
    sizes = {p: math.prod(x.shape) for p, x in sparsity.named_leaves(shapes)}
    counted = [p for p in sizes if re.search(config.sparsity.gmp.counted_over, p)]
    n_counted = sum(sizes[p] for p in counted)
    n_dense = sum(sizes[p] for p in counted if p not in sparse)
    logged = {r["step"]: int(r["train/kept_weights"]) for r in read_jsonl(paths["metrics.jsonl"])
              if "train/kept_weights" in r}
    kept = schedule.kept_counts(sum(sizes[p] for p in sparse))
    steps = range(schedule.start, schedule.end + 1, schedule.period)
    return [{"prune": i + 1, "step": s, "kept_target": int(k), "kept_logged": logged.get(s),
             "sparsity_counted": 1.0 - (int(k) + n_dense) / n_counted} for i, (s, k) in enumerate(zip(steps, kept))]


def format_check(rows: list[dict]) -> str:
    """A Markdown table of the rows and one line on whether every logged count is the schedule's."""
    out = ["| prune | step | kept (cubic schedule) | kept (logged) | sparsity of the counted params |",
           "|---|---|---|---|---|"]
    for r in rows:
        logged = "not logged" if r["kept_logged"] is None else f"{r['kept_logged']:,}"
        out.append(f"| {r['prune']} | {r['step']} | {r['kept_target']:,} | {logged} | "
                   f"{100 * r['sparsity_counted']:.4f}% |")
    seen = [r for r in rows if r["kept_logged"] is not None]
    bad = [r for r in seen if r["kept_logged"] != r["kept_target"]]
    out.append(f"\n{len(seen)} of {len(rows)} prune steps logged; "
               + (f"{len(bad)} differ from the schedule" if bad else "every logged count is the schedule's"))
    return "\n".join(out)
