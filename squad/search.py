"""SQuAD hyper-parameter search: every (learning rate, warm-up ratio, epochs, seed) of a grid in one program.

    python scripts/squad.py --checkpoint DIR --search jax_bert/finetune/search_config.py [--search.KEY=VALUE ...]

The grid, the split, the choice and the hparams files are every task family's (jax_bert/finetune/search.py,
as GLUE's search uses them); this module splits SQuAD by question, trains the members with the span head and
scores each member by the official F1 (squad.metrics) of its answers (squad.postprocess).

Protocol: score_on='heldout' (default) holds out a seeded fraction of the training *questions* (all the
windows of a question on one side, so that no context is trained on and scored) and trains on the rest;
'validation_fraction' trains on every training question and scores a seeded fraction of the validation
questions. The best setting by its mean F1 over seeds is written to OUT/hparams/TASK.json (TASK: `squad` for
v1.1, `squad_v2` for v2.0), then fine-tuned on the whole training set with the usual seeds (squad/run.py).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from jax_bert import files
from jax_bert.finetune import HParams, finetune
from jax_bert.finetune import search as shared
from jax_bert.finetune.heads import SPAN
from squad import data, features, metrics, postprocess

TASKS = {"1.1": "squad", "2.0": "squad_v2"}  # the hparams file of each version: OUT/hparams/TASK.json


def check_task(name: str) -> None:
    """A SQuAD hparams file names one of TASKS' tasks (for shared.read_hparams)."""
    if name not in TASKS.values():
        raise ValueError(f"{name!r} is not a SQuAD task ({', '.join(TASKS.values())})")


def read_hparams(path, version: str) -> dict | None:
    """The chosen values for `version` in one hparams file or a search's OUT/hparams folder."""
    return shared.read_hparams(path, [TASKS[version]], check_task).get(TASKS[version])


def _rows(rows: list[dict], keep: np.ndarray) -> list[dict]:
    return [rows[i] for i in keep]


def score(version: str, rows, feats, logits: np.ndarray, config) -> float:
    """F1 (percent) of one member's answers to `rows` from its logits [N, length, 2] over `feats`."""
    answers, na = postprocess.answers(rows, feats, logits[..., 0], logits[..., 1], version, int(config.n_best),
                                      int(config.max_answer_length), float(config.null_threshold))
    return float(metrics.evaluate(version, data.golds(rows), answers, na if version == "2.0" else None)["f1"])


def search(search_config, *, version: str, config, hp: HParams, bert_config, params, tokenizer, train_rows,
           eval_rows, out: os.PathLike, model: str, checkpoint: str, engine_split, progress=None) -> dict:
    """Searches SQuAD `version` (or reads its finished search from `out`) and returns its hparams document.
    engine_split(features, labelled): the engine's arrays of a features dict (squad/run.py's)."""
    task = TASKS[version]
    fit_rows = train_rows
    if search_config.score_on == "heldout":
        kept, held = shared.split_off(len(train_rows), search_config.fraction, search_config.split_seed)
        fit_rows, score_rows = _rows(train_rows, kept), _rows(train_rows, held)
    else:
        _, held = shared.split_off(len(eval_rows), search_config.fraction, search_config.split_seed)
        score_rows = _rows(eval_rows, held)
    fp = shared.fingerprint(search_config, hp, int(config.max_length), checkpoint, len(train_rows))
    fp["squad"] = {"version": version, "config": {k: v for k, v in config.to_dict().items() if k != "log_every"},
                   "validation_questions": len(eval_rows)}
    done = shared.finished(out, task, fp)
    if done is not None:
        return done
    fit = features.prepare(tokenizer, fit_rows, int(config.max_length), int(config.doc_stride))
    scoring = features.prepare(tokenizer, score_rows, int(config.max_length), int(config.doc_stride))
    n_fit = len(fit["input_ids"])
    settings = shared.grid(search_config, hp.epochs)
    seeds, member_hps = shared.members(settings, int(search_config.seeds), hp, n_fit)
    base = dataclasses.replace(hp, epochs=max(m.epochs for m in member_hps))
    runs = finetune(bert_config, params, engine_split(fit, True), {"score": engine_split(scoring, False)}, seeds,
                    base, num_labels=2, head=SPAN, member_hps=member_hps, progress=progress,
                    log_every=int(config.log_every), seed_loop=str(config.seed_loop),
                    length_buckets=int(config.length_buckets),
                    pack_tokens=bool(config.pack_tokens), use_masks=bool(config.keep_masks))
    member_scores = np.array([np.nan if runs.failed[i] else score(version, score_rows, scoring,
                                                                  runs.logits["score"][i], config)
                              for i in range(len(seeds))])
    best, means = shared.choose(settings, member_scores, int(search_config.seeds))
    chosen = settings[best]
    doc = {"format_version": shared.FORMAT_VERSION, "model": model, "task": task,
           "learning_rate": chosen.learning_rate, "warmup_ratio": chosen.warmup_ratio, "epochs": chosen.epochs,
           "batch_size": hp.batch_size, "score": float(means[best]), "metric": f"SQuAD v{version} f1",
           "scored_on": shared.scoring_label(search_config).replace("of train", "of the training questions"),
           "score_examples": len(score_rows), "train_examples": len(fit_rows), "train_features": n_fit,
           "search_seconds": runs.train_seconds + runs.eval_seconds,
           "settings": [dataclasses.asdict(s) | {"score": shared.finite_or_none(m)} for s, m in zip(settings, means)],
           "members": [{"seed": s, **dataclasses.asdict(settings[i // int(search_config.seeds)]),
                        "score": shared.finite_or_none(x)} for i, (s, x) in enumerate(zip(seeds, member_scores))],
           "fingerprint": fp}
    files.atomic_write_json(shared.hparams_path(out, task), doc)
    return doc
