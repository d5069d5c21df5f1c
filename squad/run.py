"""The SQuAD job behind `scripts/squad.py`: fine-tune a checkpoint on SQuAD v1.1 or v2.0, all seeds at once.

    python scripts/squad.py --checkpoint DIR --seeds N [--version 1.1|2.0] [--data_dir DIR] [--out DIR]
        [--config.KEY=VALUE ...]

DIR is a Hugging Face BERT directory or a pretraining work directory, as for GLUE (glue/run.py). Without
--data_dir the data comes from the hub (rajpurkar/squad, rajpurkar/squad_v2); --data_dir holds the official
files (train-v1.1.json, dev-v1.1.json or the v2.0 pair). The settings are squad/config.py.

Every seed trains in one compiled step on the shared engine (jax_bert/finetune) with the span head; each
seed's answers come from run_qa's post-processing and are scored as the official script scores them.

Outputs in --out (default runs/squad/<model>-v<version>), each written atomically:
    results.json               every seed's scores (or error), the settings, the checkpoint's body sparsity
    results.md, results.csv    the best seed and mean ± std over seeds, with the coverage
    predictions/seedN.json     {question id: answer text}, the official evaluation script's input
    na_scores/seedN.json       v2.0: {question id: null score minus best span score} (its --na-prob-file)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from glue import run as glue_run
from jax_bert import files
from jax_bert.finetune import HParams, finetune, steps_per_epoch
from jax_bert.finetune.heads import SPAN
from jax_bert.model import body
from squad import data, features, metrics, postprocess, report


def _features(tokenizer, rows, config) -> dict:
    return features.prepare(tokenizer, rows, int(config.max_length), int(config.doc_stride))


def _engine_split(feats: dict, labelled: bool) -> dict:
    keys = features.INPUT_KEYS + (("labels",) if labelled else ())
    return {k: feats[k] for k in keys}


def train_and_score(config, bert_config, params, tokenizer, train_rows, eval_rows, seeds, version: str,
                    progress: bool = False):
    """(results per seed, SeedRuns, answers per seed, na scores per seed): the engine's run and the scoring."""
    from tqdm.auto import tqdm

    hp = HParams.from_values(dict(config))
    train = _features(tokenizer, train_rows, config)
    evals = _features(tokenizer, eval_rows, config)
    bar = tqdm(total=hp.epochs * steps_per_epoch(len(train["input_ids"]), hp.batch_size), desc=f"squad v{version}",
               unit="step", disable=not progress, mininterval=1.0, dynamic_ncols=True)

    def on_progress(done, loss, n_ok):
        bar.update(done - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}", ok=f"{n_ok}/{len(seeds)}", refresh=False)

    try:
        runs = finetune(bert_config, params, _engine_split(train, True), {"validation": _engine_split(evals, False)},
                        seeds, hp, num_labels=2, head=SPAN, progress=on_progress, log_every=int(config.log_every),
                        seed_loop=str(config.seed_loop), length_buckets=int(config.length_buckets),
                        use_masks=bool(config.keep_masks))
    finally:
        bar.close()
    golds = data.golds(eval_rows)
    logits = runs.logits["validation"]
    per_seed, answers, na = [], {}, {}
    for i, seed in enumerate(seeds):
        record = {"seed": seed, "train_loss": float(runs.final_loss[i]), "sparsity": float(runs.sparsity[i])}
        if runs.failed[i]:
            record["error"] = runs.errors[seed]
        else:
            answers[seed], na[seed] = postprocess.answers(
                eval_rows, evals, logits[i, ..., 0], logits[i, ..., 1], version, int(config.n_best),
                int(config.max_answer_length), float(config.null_threshold))
            record["metrics"] = metrics.evaluate(version, golds, answers[seed], na[seed] if version == "2.0" else None)
        per_seed.append(record)
    info = {"train_features": len(train["input_ids"]), "eval_features": len(evals["input_ids"]),
            "steps": runs.steps, "train_seconds": runs.train_seconds, "eval_seconds": runs.eval_seconds,
            "masked_tensors": runs.masked_tensors}
    return per_seed, info, answers, na


def main(config, *, checkpoint: str, seeds: int, version: str = "1.1", data_dir: str | None = None,
         out: str | None = None, progress: bool = True) -> int:
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}.")
    loaded = glue_run.load_model(checkpoint, dtype=str(config.dtype), scan_layers=bool(config.scan_layers),
                                 remat=bool(config.remat))
    out_dir = Path(out or f"runs/squad/{loaded.name}-v{version}")
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = files.lock_folder(out_dir, lambda holder: f"{out_dir} is in use by another SQuAD run ({holder}); "
                             "wait for it or give another --out.")
    try:
        splits = data.load(version, data_dir)
        train_rows, eval_rows = splits["train"], splits["validation"]
        if config.max_train_questions:
            train_rows = train_rows[:int(config.max_train_questions)]
        if config.max_eval_questions:
            eval_rows = eval_rows[:int(config.max_eval_questions)]
        t0 = time.perf_counter()
        per_seed, info, answers, na = train_and_score(config, loaded.config, loaded.params, loaded.tokenizer,
                                                      train_rows, eval_rows, list(range(seeds)), version, progress)
        for seed, preds in answers.items():
            files.atomic_write_json(out_dir / "predictions" / f"seed{seed}.json", preds)
            if version == "2.0":
                files.atomic_write_json(out_dir / "na_scores" / f"seed{seed}.json", na[seed])
        results = {"model": loaded.name, "checkpoint": str(checkpoint), "version": version,
                   "data": str(data_dir) if data_dir else data.HUB_DATASETS[version],
                   "questions": len(eval_rows), "train_questions": len(train_rows),
                   "body_sparsity": round(float(body.body_sparsity(loaded.params)), 2),
                   "config": config.to_dict(), "wall_seconds": time.perf_counter() - t0, **info, "runs": per_seed}
        files.atomic_write_json(out_dir / "results.json", results)
        table = report.rows(results)
        files.atomic_write_text(out_dir / "results.md", report.markdown(table))
        files.atomic_write_text(out_dir / "results.csv", report.csv_text(table))
    finally:
        lock.close()
    print(report.markdown(table), end="")
    for r in per_seed:
        if r.get("error"):
            print(f"seed {r['seed']} failed: {r['error']}", file=sys.stderr)
    print(f"wrote {out_dir}/results.json, results.md, results.csv and predictions/seedN.json "
          f"({len(answers)} of {seeds} seeds; {info['steps']} steps, {info['train_features']} training features)")
    return 0 if answers else 1
