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
    checkpoint.json            the checkpoint these results belong to (jax_bert.finetune.identity): another
                               checkpoint's run into this folder is refused (--fresh moves it aside first)
    finished.json              the settings and seeds of the finished run: the same command again keeps it
    hparams/TASK.json          with --search: the chosen values and every member's score (squad/search.py)

One run at a time per --out (a second is refused, naming the first). Ctrl-C or SIGTERM stops the job at once;
the files are written atomically, so a folder holds the last finished run whole or none.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from glue import run as glue_run
from jax_bert import files
from jax_bert.finetune import HParams, finetune, identity, search_config, steps_per_epoch
from jax_bert.finetune import search as shared_search
from jax_bert.finetune.heads import SPAN
from jax_bert.model import body
from squad import data, features, metrics, postprocess, report
from squad import search as squad_search


def _features(tokenizer, rows, config) -> dict:
    return features.prepare(tokenizer, rows, int(config.max_length), int(config.doc_stride))


def _engine_split(feats: dict, labelled: bool) -> dict:
    keys = features.INPUT_KEYS + (("labels",) if labelled else ())
    return {k: feats[k] for k in keys}


def train_and_score(config, bert_config, params, tokenizer, train_rows, eval_rows, seeds, version: str,
                    progress: bool = False, chosen: dict | None = None):
    """(results per seed, SeedRuns, answers per seed, na scores per seed): the engine's run and the scoring.
    chosen: a search's learning rate, warm-up ratio and epochs, replacing the config's."""
    from tqdm.auto import tqdm

    hp = HParams.from_values(dict(config))
    train = _features(tokenizer, train_rows, config)
    if chosen is not None:
        hp = shared_search.apply(hp, chosen, len(train["input_ids"]))
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
                        pack_tokens=bool(config.pack_tokens),
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


FINISHED_FILE = "finished.json"  # the recipe and seeds of the finished run in --out: a rerun keeps it


def recipe(config, version: str, data_dir: str | None, chosen: dict | None = None) -> dict:
    """Everything besides the checkpoint (which --out records, jax_bert.finetune.identity) and the seeds that
    decides a run's results: the settings (not log_every), the version, where the data came from and a
    search's chosen values."""
    settings = {k: v for k, v in config.to_dict().items() if k != "log_every"}
    where = os.path.abspath(data_dir) if data_dir else data.HUB_DATASETS[version]
    values = None if chosen is None else {k: chosen[k] for k in shared_search.CHOSEN_KEYS}
    return json.loads(json.dumps({"config": settings, "version": version, "data": where, "chosen": values},
                                 default=str))


def kept_after_stop(out: Path) -> str:
    """What an interrupted job in `out` keeps, for the line printed when it stops on a signal."""
    if (Path(out) / FINISHED_FILE).is_file():
        return f"the finished results in {out} are kept"
    return f"no run had finished in {out}; run the same command to start again"


def _claim(out_dir: Path, loaded, fresh: bool) -> list:
    """Locks `out_dir` for this run and makes it the results folder of `loaded`'s checkpoint (identity.claim:
    another checkpoint's results are refused, or moved aside with `fresh`); returns the locks to release."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a directory; give a directory for the results.")
    held = [identity.OneRunAtATime(out_dir)]
    try:
        held[0].acquire()
        moved = identity.claim(out_dir, loaded.identity, has_results=(out_dir / "results.json").is_file(),
                               fresh=fresh)
        if moved is not None:  # the lock went with the old folder: the new one gets its own
            held.append(identity.OneRunAtATime(out_dir))
            held[-1].acquire()
            print(f"--fresh: the earlier results in {out_dir} were moved to {moved}", file=sys.stderr)
    except BaseException:
        for lock in held:
            lock.release()
        raise
    return held


def main(config, *, checkpoint: str, seeds: int, version: str = "1.1", data_dir: str | None = None,
         out: str | None = None, progress: bool = True, fresh: bool = False, search=None, hparams: str | None = None,
         on_out: Callable[[Path], None] | None = None) -> int:
    """Fine-tunes `checkpoint` on SQuAD `version` into `out`; returns the exit status (0: a seed finished).

    search: a search config (jax_bert/finetune/search_config.py): the learning rate, warm-up ratio and epochs
    are searched first (squad/search.py), then the chosen ones run. hparams: a search's hparams file or its
    OUT/hparams folder, whose values replace the config's.

    A run finished earlier in `out` with the same recipe (`recipe`) and as many seeds or more is kept, not
    trained again; `fresh` moves whatever `out` holds aside to OUT.replaced-N first. `on_out(out_dir)` is
    called once the folder is claimed (the command line's stop on a signal names it)."""
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}.")
    if data_dir is not None and not os.path.isdir(data_dir):
        raise ValueError(f"--data_dir {data_dir} is not a directory.")
    if search is not None and hparams is not None:
        raise ValueError("give --search (choose hyper-parameters) or --hparams (use chosen ones), not both.")
    if search is not None:
        search_config.validate(search)
    chosen = None if hparams is None else squad_search.read_hparams(hparams, version)
    if hparams is not None and chosen is None:
        raise ValueError(f"--hparams {hparams}: it holds no values for SQuAD v{version} "
                         f"({squad_search.TASKS[version]}); give a search's file for this version.")
    loaded = glue_run.load_model(checkpoint, dtype=str(config.dtype), scan_layers=bool(config.scan_layers),
                                 remat=bool(config.remat))
    out_dir = Path(out or f"runs/squad/{loaded.name}-v{version}")
    held = _claim(out_dir, loaded, fresh)
    try:
        if on_out is not None:
            on_out(out_dir)
        return _run(config, loaded, checkpoint=checkpoint, seeds=seeds, version=version, data_dir=data_dir,
                    out_dir=out_dir, progress=progress, search=search, chosen=chosen)
    finally:
        for lock in held:
            lock.release()


def _kept(out_dir: Path, this: dict, seeds: int, version: str) -> bool:
    """A run finished earlier in `out_dir` with the recipe `this` and these seeds (or more): its table printed."""
    earlier = files.read_json(out_dir / FINISHED_FILE)
    if not (earlier.get("recipe") == this and set(range(seeds)) <= set(earlier.get("seeds", ()))
            and (out_dir / "results.md").is_file()):
        return False
    print(f"squad v{version}: finished earlier with these settings, kept from {out_dir} (--fresh starts over)",
          file=sys.stderr)
    print((out_dir / "results.md").read_text(encoding="utf-8"), end="")
    return True


def _run(config, loaded, *, checkpoint, seeds: int, version: str, data_dir, out_dir: Path, progress: bool,
         search=None, chosen: dict | None = None) -> int:
    """main's work in the claimed, locked `out_dir`."""
    if search is None and _kept(out_dir, recipe(config, version, data_dir, chosen), seeds, version):
        return 0
    splits = data.load(version, data_dir)
    train_rows, eval_rows = splits["train"], splits["validation"]
    if config.max_train_questions:
        train_rows = train_rows[:int(config.max_train_questions)]
    if config.max_eval_questions:
        eval_rows = eval_rows[:int(config.max_eval_questions)]
    if search is not None:  # a finished search with the same fingerprint is read back, not run again
        doc = squad_search.search(search, version=version, config=config, hp=HParams.from_values(dict(config)),
                                  bert_config=loaded.config, params=loaded.params, tokenizer=loaded.tokenizer,
                                  train_rows=train_rows, eval_rows=eval_rows, out=out_dir, model=loaded.name,
                                  checkpoint=str(checkpoint), engine_split=_engine_split)
        chosen = {k: doc[k] for k in (*shared_search.CHOSEN_KEYS, "score", "scored_on")} | {
            "file": str(shared_search.hparams_path(out_dir, squad_search.TASKS[version]))}
        print(f"squad v{version}: search chose learning rate {doc['learning_rate']:g}, warm-up ratio "
              f"{doc['warmup_ratio']:g}, {doc['epochs']} epochs (f1 {doc['score']:.2f}, "
              f"{doc['scored_on'].split(':')[0]})", file=sys.stderr)
        if _kept(out_dir, recipe(config, version, data_dir, chosen), seeds, version):
            return 0
    this = recipe(config, version, data_dir, chosen)
    if (out_dir / FINISHED_FILE).exists():  # its results are about to be replaced
        (out_dir / FINISHED_FILE).unlink()
    t0 = time.perf_counter()
    per_seed, info, answers, na = train_and_score(config, loaded.config, loaded.params, loaded.tokenizer,
                                                  train_rows, eval_rows, list(range(seeds)), version, progress,
                                                  chosen)
    results = {"model": loaded.name, "checkpoint": str(checkpoint), "version": version,
               "data": str(data_dir) if data_dir else data.HUB_DATASETS[version],
               "questions": len(eval_rows), "train_questions": len(train_rows),
               "body_sparsity": round(float(body.body_sparsity(loaded.params)), 2),
               "config": config.to_dict(), "hparams": chosen, "wall_seconds": time.perf_counter() - t0, **info,
               "runs": per_seed}
    table = report.rows(results)
    text = report.markdown(table) + (shared_search.summary_table({squad_search.TASKS[version]: chosen})
                                     if chosen else "")
    with files.WRITING:  # a stop on a signal waits until the run's files are all written
        for folder in ("predictions", "na_scores"):  # an earlier run's seeds beyond this one's
            for stale in (out_dir / folder).glob("seed*.json"):
                if stale.stem[4:] not in {str(s) for s in answers}:
                    stale.unlink()
        for seed, preds in answers.items():
            files.atomic_write_json(out_dir / "predictions" / f"seed{seed}.json", preds)
            if version == "2.0":
                files.atomic_write_json(out_dir / "na_scores" / f"seed{seed}.json", na[seed])
        files.atomic_write_json(out_dir / "results.json", results)
        files.atomic_write_text(out_dir / "results.md", text)
        files.atomic_write_text(out_dir / "results.csv", report.csv_text(table))
        if answers:  # a rerun of the same command keeps it
            files.atomic_write_json(out_dir / FINISHED_FILE, {"recipe": this, "seeds": list(range(seeds))})
    print(text, end="")
    for r in per_seed:
        if r.get("error"):
            print(f"seed {r['seed']} failed: {r['error']}", file=sys.stderr)
    print(f"wrote {out_dir}/results.json, results.md, results.csv and predictions/seedN.json "
          f"({len(answers)} of {seeds} seeds; {info['steps']} steps, {info['train_features']} training features)")
    return 0 if answers else 1
