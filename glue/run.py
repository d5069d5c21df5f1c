"""The GLUE job behind `scripts/glue.py`: fine-tune a checkpoint on GLUE tasks, all seeds at once.

    python scripts/glue.py --checkpoint DIR --seeds 10 [--tasks cola,rte] [--data_dir DIR]
        [--out DIR] [--config FILE] [--config.KEY=VALUE ...] [--test_predictions]
    python scripts/glue.py --report_only --out DIR [--out DIR2 ...] [--csv PATH]

DIR is a Hugging Face BERT directory (config.json, weights and tokenizer files) or one of our
pretraining work directories (DIR/hf holds the exported model with its tokenizer, and
DIR/eval_results.json gives the table's perplexity and eval-loss columns). Without --data_dir the
data comes from the Hugging Face hub (nyu-mll/glue); --data_dir takes a copy of that dataset's
parquet files or the original GLUE TSV layout. The settings and their defaults are glue/config.py
(the default --config; a FILE of your own starts from its get_config()).

Offline example (synthetic data and a tiny random BERT; about a minute on a 2-core CPU):

    python -c "from glue.synthetic import make_offline_example as m; m('/tmp/glue_demo')"
    python scripts/glue.py --checkpoint /tmp/glue_demo/checkpoint \\
        --data_dir /tmp/glue_demo/data --tasks sst2,mrpc --seeds 3 --out /tmp/glue_demo/out \\
        --config.learning_rate=3e-3 --config.batch_size=16 --config.max_length=32 \\
        --config.tasks.sst2.epochs=8 --config.tasks.mrpc.epochs=8

It prints the two tables (best seed per task, mean ± std over seeds); sst2 reaches about 100%
accuracy (its synthetic rule is a cue word), mrpc stays near chance on the validation set (word
overlap is hard to learn from 256 pairs with a random model).

Outputs in --out (each replaced atomically after every task, so a later failure loses nothing):
    results.json                      every seed's metrics or failure (glue.report format)
    results.md, results.csv           the tables: best run per task and mean ± std over seeds
    metrics/TASK/seedN.json           metrics, examples scored per split, train loss, sparsity
    predictions/TASK/seedN.SPLIT.jsonl  {"idx", "prediction", "label"} per validation example
    submission/*.tsv                  GLUE benchmark files of the best seed (--test_predictions)
    errors/TASK.txt                   the traceback of a task that failed
    glue_config.json                  the config and each task's resolved settings
    checkpoint.json                   the checkpoint these results belong to: its path and a fingerprint of
                                      its config and weights; another checkpoint's run into this directory
                                      is refused (--fresh moves the results aside to OUT.replaced-N first)
    hparams/TASK.json                 with --search: the chosen values and every member's score (glue/search.py)
    hparams_used.json                 the searched values (--search or --hparams) each task's runs used
    finished.json                     each finished task's settings: a rerun of the same command keeps it
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

import jax

from glue import config as glue_config
from glue import data as glue_data
from glue import finetune, metrics, report, search_config
from glue import search as hp_search
from glue.tasks import get_task, parse_tasks
from jax_bert import cli, files
from jax_bert.finetune import batching, engine, identity, workdir
from jax_bert.finetune.seeds import resolve_seed_loop
from jax_bert.model import body, hf_io

# ------------------------------------------------------------------ config

def task_settings(config, task: str, seeds: int | None = None):
    """(HParams, max_length, list of seeds) for one task: its per-task values, else the global ones."""
    values = glue_config.task_values(config, task)
    runs = int(values["runs"] if seeds is None else seeds)
    if runs < 1:
        raise ValueError(f"{task}: runs (seeds) must be >= 1, got {runs}.")
    try:
        hp = finetune.task_hparams(config, task)
    except ValueError as e:
        raise ValueError(f"{task}: {e}") from e
    max_length = int(values["max_length"])
    if max_length < 8:
        raise ValueError(f"{task}: max_length must be >= 8, got {max_length}.")
    return hp, max_length, list(range(runs))


# ------------------------------------------------------------------ checkpoint

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint loaded for fine-tuning: the model, its tokenizer, the table's extras
    ({"perplexity", "eval_loss"} from DIR/eval_results.json of a work directory), the model's name and
    its identity (jax_bert.finetune.identity: path and fingerprint of config and weights)."""
    config: object
    params: dict
    tokenizer: object
    extras: dict
    name: str
    identity: dict


def load_checkpoint(path: str, **config_overrides):
    """(BertConfig, params, tokenizer, extras, model name) from an HF BERT dir or a work dir
    (`load_model`, without the identity)."""
    c = load_model(path, **config_overrides)
    return c.config, c.params, c.tokenizer, c.extras, c.name


def load_model(path: str, **config_overrides) -> Checkpoint:
    """The checkpoint at `path`: a Hugging Face BERT directory or one of our work directories."""
    root = Path(path)
    extras = {}
    if (root / "hf" / "config.json").is_file():
        hf_dir = str(root / "hf")
        results = root / "eval_results.json"
        if results.is_file():
            with open(results) as f:
                ev = json.load(f)
            extras = {k: float(ev[k]) for k in ("perplexity", "eval_loss")
                      if isinstance(ev.get(k), (int, float))}
    elif workdir.is_unexported(root):
        return _load_unexported(root, **config_overrides)
    else:
        if root.exists() and not root.is_dir():
            raise ValueError(f"--checkpoint {path} is not a directory; give a Hugging Face BERT "
                             "directory or a pretraining work directory (holding hf/).")
        hf_dir = hf_io.resolve_hf_dir(str(path))
    config, params, tokenizer = _load_hf_dir(hf_dir, **config_overrides)
    return Checkpoint(config, params, tokenizer, extras, root.name or str(path), identity.hf_identity(path, hf_dir))


def _load_unexported(root: Path, **config_overrides) -> Checkpoint:
    """A pretraining work directory without hf/ (stopped before its end, or still running): its newest
    intact checkpoint, exported to a temporary directory and read from there."""
    with tempfile.TemporaryDirectory(prefix="glue-export-") as tmp:
        step, skipped = workdir.export_newest_intact(root, tmp)
        config, params, tokenizer = _load_hf_dir(tmp, **config_overrides)
        ident = identity.hf_identity(root, tmp, step=step)
    damaged = f" (damaged, skipped: {'; '.join(skipped)})" if skipped else ""
    print(f"{root}: no hf/ export yet (the pretraining run has not finished): fine-tuning its newest intact "
          f"checkpoint, step {step}{damaged}", file=sys.stderr)
    return Checkpoint(config, params, tokenizer, {}, root.name, ident)


def _load_hf_dir(hf_dir: str, **config_overrides):
    from transformers import AutoTokenizer

    config, params = hf_io.load_hf(hf_dir, **config_overrides)
    if not any(os.path.isfile(os.path.join(hf_dir, f)) for f in TOKENIZER_FILES):
        raise ValueError(
            f"checkpoint {hf_dir} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "fine-tuning uses the checkpoint's own tokenizer: save it into that directory "
            "(tokenizer.save_pretrained(DIR)).")
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"the tokenizer in {hf_dir} is not a fast (Rust) tokenizer; save a "
                         "tokenizer.json with transformers' PreTrainedTokenizerFast.")
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"the tokenizer in {hf_dir} has {len(tokenizer)} tokens but the model's "
                         f"vocabulary is {config.vocab_size}: they do not belong together.")
    return config, params, tokenizer


# ------------------------------------------------------------------ one task

def _json_number(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _write_predictions(path: Path, idx, preds, labels, regression: bool) -> None:
    conv = float if regression else int
    lines = [json.dumps({"idx": int(i), "prediction": conv(p), "label": conv(y)})
             for i, p, y in zip(idx, preds, labels)]
    files.atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def run_task(task_name: str, config, *, bert_config, params, tokenizer, data_dir, out: Path,
             model: str, seeds: int | None, test_predictions: bool, progress: bool = True,
             chosen: dict | None = None, dataset: dict | None = None,
             on_recorded: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune every seed of one task, record each seed in out/, write submissions. Returns
    {"seeds", "ok", "failed", "scored": {split: n}}. chosen: a search's learning_rate, warmup_ratio
    and epochs (glue.search.read_hparams), replacing the config's; dataset: the task's, if loaded;
    on_recorded(result): called once every run is recorded, before a signal may stop the job."""
    task = get_task(task_name)
    hp, max_length, seed_list = task_settings(config, task.name, seeds)
    if dataset is None:
        dataset = glue_data.load_task(task, data_dir)
    if test_predictions:
        missing = [s for s in task.test_splits if s not in dataset]
        if missing:
            raise glue_data.GlueDataError(
                f"--test_predictions: {task.name} has no test split(s) {missing} in "
                f"{data_dir or glue_data.HUB_DATASET}.")
    eval_splits = list(task.validation_splits) + (list(task.test_splits) if test_predictions else [])
    train, evals = glue_data.tokenize_splits(dataset, task, tokenizer, max_length, eval_splits)
    if chosen is not None:
        hp = hp_search.apply(hp, chosen, len(train["input_ids"]))

    runs = finetune.finetune_as_configured(config, bert_config, params, train, evals, seed_list, hp,
                                           num_labels=task.num_labels, desc=f"{task.name} ({len(seed_list)} seeds)",
                                           show_progress=progress)

    scored = {s: int(runs.logits[s].shape[1]) for s in eval_splits}
    for s in eval_splits:  # every example scored, none dropped
        if scored[s] != len(dataset[s]["idx"]):
            raise AssertionError(f"{task.name} {s}: scored {scored[s]} of "
                                 f"{len(dataset[s]['idx'])} examples.")
    # The task's records all at once: a stop on a signal (jax_bert.cli.exit_on_signals) waits for them, so a
    # task is either recorded whole, with its entry in finished.json (on_recorded), or not at all.
    with files.WRITING:
        # This run replaces the task's earlier runs (other settings, perhaps more seeds): a task's mean ± std is
        # over the runs of one setting. Done now that it trained, so that a failure before keeps the old runs.
        report.drop_task(out, task.name)
        for kind in ("metrics", "predictions"):
            shutil.rmtree(out / kind / task.name, ignore_errors=True)
        n_ok, this_run = 0, report.new_results(model)
        for i, seed in enumerate(runs.seeds):
            info = {"task": task.name, "seed": seed, "scored": {s: scored[s] for s in task.validation_splits},
                    "final_train_loss": _json_number(runs.final_loss[i]), "sparsity": float(runs.sparsity[i]),
                    "steps": runs.steps, "masked_tensors": runs.masked_tensors,
                    "task_train_seconds": runs.train_seconds,
                    "task_eval_seconds": runs.eval_seconds, "bucket_steps": runs.bucket_steps,
                    "hparams": vars(hp) | {"max_length": max_length}}
            if runs.failed[i]:
                report.record_run(out, task.name, seed, error=runs.errors[seed], model=model)
                info.update(status="failed", error=runs.errors[seed])
            else:
                preds = {s: engine.predictions(runs.logits[s][i], task.num_labels)
                         for s in task.validation_splits}
                labels = {s: evals[s]["labels"] for s in task.validation_splits}
                m = metrics.validation_metrics(task, preds, labels)
                report.record_run(out, task.name, seed, dict(m), model=model)
                this_run = report.add_run(this_run, task.name, seed, dict(m))
                info.update(status="ok", metrics={k: _json_number(v) for k, v in m.items()})
                for s in task.validation_splits:
                    _write_predictions(out / "predictions" / task.name / f"seed{seed}.{s}.jsonl",
                                       evals[s]["idx"], preds[s], labels[s], task.is_regression)
                n_ok += 1
            files.atomic_write_text(out / "metrics" / task.name / f"seed{seed}.json",
                                     json.dumps(info, indent=2, allow_nan=False) + "\n")
        if test_predictions and n_ok:
            # The best of this run's seeds.
            best = report.best_run(this_run, task.name)
            i = runs.seeds.index(best["seed"])
            for s in task.test_splits:
                report.write_submission(out / "submission", task.name, s, evals[s]["idx"],
                                        runs.logits[s][i])
        result = {"seeds": len(seed_list), "ok": n_ok, "failed": len(seed_list) - n_ok, "scored": scored}
        if on_recorded is not None:
            on_recorded(result)
    return result


CHOSEN_FILE = "hparams_used.json"  # {task: the searched values its runs used}
# {task: {"recipe", "seeds", "scored"}} of every task whose runs are all recorded: a rerun with the same
# recipe (and no seed beyond those) keeps them instead of training again.
FINISHED_FILE = "finished.json"


def kept_after_stop(out: Path) -> str:
    """What an interrupted job in `out` keeps, for the line printed when it stops on a signal."""
    done = list(files.read_json(Path(out) / FINISHED_FILE))
    if not done:
        return f"no task had finished in {out}; run the same command to start again"
    return (f"finished tasks ({', '.join(done)}) are kept in {out}; run the same command to resume "
            "(they are not trained again)")


def _task_recipe(config, task_settings: tuple, chosen: dict | None, data_dir: str | None,
                 test_predictions: bool) -> dict:
    """Everything that decides a task's recorded results besides the checkpoint (which its --out records)
    and the seeds: the task's resolved hyper-parameters, the settings common to all tasks (not the other
    tasks' own), a search's choice, where the data came from, whether test predictions were written."""
    hp, max_length, _ = task_settings
    common = {k: v for k, v in config.to_dict().items() if k not in ("tasks", "log_every")}
    recipe = {"hparams": vars(hp) | {"max_length": max_length}, "config": common, "chosen": chosen,
              "data_dir": None if data_dir is None else os.path.abspath(data_dir),
              "test_predictions": bool(test_predictions)}
    return json.loads(json.dumps(recipe, default=str))  # as it reads back from finished.json


def write_tables(out: Path, scored: dict | None = None) -> str:
    """results.md and results.csv in `out` from its results.json; returns the markdown."""
    text = report.build_report([out], csv_path=out / "results.csv")
    if (out / CHOSEN_FILE).is_file():
        with open(out / CHOSEN_FILE) as f:
            text += hp_search.summary_table(json.load(f))
    if scored:
        text += "\nValidation examples scored (every one, per seed):\n\n" + "".join(
            f"- {t}: " + ", ".join(f"{s} {n}" for s, n in splits.items()) + "\n"
            for t, splits in scored.items())
    files.atomic_write_text(out / "results.md", text)
    return text


# ------------------------------------------------------------------ the job

def _has_results(out: Path) -> bool:
    """`out` holds results of a fine-tuning run (runs or a search's choices)."""
    return (out / report.RESULTS_FILE).is_file() or (out / "hparams").is_dir()


def _has_runs(out: Path, task: str, n_seeds: int) -> bool:
    """results.json in `out` holds seeds 0..n_seeds-1 of `task` (ok or failed)."""
    if not (out / report.RESULTS_FILE).is_file():
        return False
    runs = report.load_results(out).get("runs", {}).get(task, [])
    return {r["seed"] for r in runs} >= set(range(n_seeds))

def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(config, *, checkpoint: str | None = None, seeds: int | None = None,
         tasks: str | Sequence[str] = "all", data_dir: str | None = None,
         out: str | os.PathLike | Sequence[str] | None = None, model_name: str | None = None,
         test_predictions: bool = False, report_only: bool = False, csv: str | None = None,
         progress: bool = True, search=None, hparams: str | None = None, fresh: bool = False,
         on_out: Callable[[Path], None] | None = None) -> int:
    """Fine-tunes `checkpoint` on `tasks` with `config` (a glue.config ConfigDict) into `out`, or with
    report_only rebuilds the tables of the `out` directories. Returns the exit status: 0 ok, 1 a task
    failed, 2 bad input (reported as one line `error: ...` on stderr, before any task runs).

    search: a glue.search_config ConfigDict: each task's hyper-parameters are searched first
    (glue/search.py), then the chosen ones run as below. hparams: a search's hparams file or directory,
    whose values replace the config's for the tasks it has. fresh: an --out holding results (of this
    or another checkpoint) is moved aside to OUT.replaced-N first; without it, an --out of another
    checkpoint is refused (jax_bert.finetune.identity). on_out(out_dir) is called once the output
    directory is claimed (the command line's stop on a signal names it). A task finished earlier in
    out_dir with the same settings (finished.json) is kept, not trained again."""
    outs = [out] if isinstance(out, (str, os.PathLike)) else list(out or [])
    held = []  # the results directory's locks (identity.OneRunAtATime), released when main returns
    if report_only:
        if not outs:
            return _fail("--report_only needs at least one --out DIR holding results.json.")
        try:
            print(report.build_report(outs, csv_path=csv))
        except ValueError as e:
            return _fail(str(e))
        return 0
    try:
        if not checkpoint:
            raise ValueError("--checkpoint DIR is required (or --report_only --out DIR).")
        if seeds is not None and seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}.")
        if len(outs) > 1:
            raise ValueError("give one --out DIR for fine-tuning (several only with --report_only).")
        task_names = parse_tasks(tasks if isinstance(tasks, str) else ",".join(tasks))
        glue_config.validate(config)
        if search is not None and hparams is not None:
            raise ValueError("give --search (choose hyper-parameters) or --hparams (use chosen ones), not both.")
        if search is not None:
            search_config.validate(search)
        chosen = {} if hparams is None else hp_search.read_hparams(hparams, task_names)
        # Bad settings fail now, not after hours of other tasks.
        settings = {name: task_settings(config, name, seeds) for name in task_names}
        resolve_seed_loop(str(config.seed_loop), None)  # an unknown value fails now too
        batching.bucket_lengths(128, int(config.length_buckets))  # so does a bucket count below 1
        if data_dir is not None and not os.path.isdir(data_dir):
            raise ValueError(f"--data_dir {data_dir} is not a directory.")
        loaded = load_model(checkpoint, dtype=config.dtype, scan_layers=bool(config.scan_layers),
                            remat=bool(config.remat))
        model = model_name or loaded.name
        out_dir = Path(outs[0] if outs else os.path.join("runs", "glue", model))
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"--out {out_dir} is a file, not a directory; give a directory for the results.")
        # One run at a time in a results directory, and one model: another checkpoint's --out is refused
        # before any task.
        held = [identity.OneRunAtATime(out_dir)]
        held[0].acquire()
        moved = identity.claim(out_dir, loaded.identity, has_results=_has_results(out_dir), fresh=fresh,
                               legacy_path=files.read_json(out_dir / "glue_config.json").get("checkpoint"))
        if moved is not None:  # the lock went with the old directory: the new one gets its own
            held.append(identity.OneRunAtATime(out_dir))
            held[-1].acquire()
            print(f"--fresh: the earlier results in {out_dir} were moved to {moved}", file=sys.stderr)
        if on_out is not None:
            on_out(out_dir)
        # So is an --out holding runs of the other keep_masks setting.
        report.set_settings(out_dir, model=model, keep_masks=bool(config.keep_masks))
    except (ValueError, OSError) as e:  # ValueError includes CheckpointError and GlueDataError; OSError: an
        for lock in held:               # --out that cannot be written (read-only, no permission, a full disk)
            lock.release()
        return _fail(cli.describe(e))
    try:
        return _run_tasks(config, checkpoint=checkpoint, seeds=seeds, task_names=task_names, data_dir=data_dir,
                          out_dir=out_dir, model=model, loaded=loaded, settings=settings, chosen=chosen,
                          search=search, test_predictions=test_predictions, progress=progress)
    finally:
        for lock in held:
            lock.release()


def _run_tasks(config, *, checkpoint, seeds, task_names, data_dir, out_dir: Path, model: str, loaded: Checkpoint,
               settings: dict, chosen: dict, search, test_predictions: bool, progress: bool) -> int:
    """main's tasks, one after another, into out_dir (claimed and locked); returns the exit status."""
    bert_config, params, tokenizer, extras = loaded.config, loaded.params, loaded.tokenizer, loaded.extras
    files.atomic_write_json(out_dir / "glue_config.json", {
        "checkpoint": str(checkpoint), "tasks": list(task_names), "seeds": seeds, "data_dir": data_dir,
        "config": config.to_dict(),
        "settings": {t: vars(hp) | {"max_length": length, "seeds": len(seed_list)}
                     for t, (hp, length, seed_list) in settings.items()}})
    sparsity = float(body.body_sparsity(engine.base_params(params)))
    report.set_extras(out_dir, model=model, sparsity=sparsity, **extras)
    print(f"{model}: {body.SPARSITY_NAME}: {sparsity:.2f}%; tasks "
          f"{', '.join(task_names)} -> {out_dir}", file=sys.stderr)

    errors, scored, tables = {}, {}, ""
    used = files.read_json(out_dir / CHOSEN_FILE)
    finished = files.read_json(out_dir / FINISHED_FILE)
    for task in task_names:
        t0 = time.perf_counter()
        try:
            dataset = None
            if search is not None:
                dataset = glue_data.load_task(get_task(task), data_dir)
                hp, max_length, seed_list = settings[task]
                doc = hp_search.search_task(task, search, hp=hp, max_length=max_length, bert_config=bert_config,
                                            params=params, tokenizer=tokenizer, dataset=dataset, out=out_dir,
                                            model=model, checkpoint=str(checkpoint), config=config,
                                            progress=progress)
                chosen[task] = {k: doc[k] for k in (*hp_search.CHOSEN_KEYS, "score", "scored_on")} | {
                    "file": str(hp_search.hparams_path(out_dir, task))}
                print(f"{task}: search chose learning rate {doc['learning_rate']:g}, warm-up ratio "
                      f"{doc['warmup_ratio']:g}, {doc['epochs']} epochs (score {doc['score']:.2f}, "
                      f"{doc['scored_on'].split(':')[0]})", file=sys.stderr)
                if used.get(task) == chosen[task] and _has_runs(out_dir, task, len(seed_list)):
                    print(f"{task}: its final run with these values is in {out_dir} already", file=sys.stderr)
                    continue
            recipe = _task_recipe(config, settings[task], chosen.get(task), data_dir, test_predictions)
            earlier = finished.get(task)
            if earlier and earlier["recipe"] == recipe and set(settings[task][2]) <= set(earlier["seeds"]):
                scored[task] = earlier["scored"]
                print(f"{task}: finished earlier with these settings, kept from {out_dir}", file=sys.stderr)
                continue
            if finished.pop(task, None) is not None:  # its runs are about to be replaced
                files.atomic_write_json(out_dir / FINISHED_FILE, finished)
            if task in chosen:
                used.pop(task, None)  # replaced below once the runs are recorded
                files.atomic_write_json(out_dir / CHOSEN_FILE, used)
            def recorded(res, task=task, recipe=recipe):
                if task in chosen:
                    used[task] = chosen[task]
                    files.atomic_write_json(out_dir / CHOSEN_FILE, used)
                if res["ok"]:  # a rerun of the same command keeps it
                    finished[task] = {"recipe": recipe, "seeds": settings[task][2], "scored": res["scored"]}
                    files.atomic_write_json(out_dir / FINISHED_FILE, finished)

            res = run_task(task, config, bert_config=bert_config, params=params, tokenizer=tokenizer,
                           data_dir=data_dir, out=out_dir, model=model, seeds=seeds,
                           test_predictions=test_predictions, progress=progress, chosen=chosen.get(task),
                           dataset=dataset, on_recorded=recorded)
            scored[task] = res["scored"]
            if res["ok"] == 0:
                errors[task] = f"all {res['seeds']} seeds diverged"
            print(f"{task}: {res['ok']} of {res['seeds']} seeds ok "
                  f"({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
        except Exception as e:  # one task's failure must not lose the others
            errors[task] = f"{type(e).__name__}: {e}"
            files.atomic_write_text(out_dir / "errors" / f"{task}.txt", traceback.format_exc())
            print(f"error: {task} failed: {errors[task]}", file=sys.stderr)
        if (out_dir / report.RESULTS_FILE).is_file():  # after every task: nothing finished is lost
            tables = write_tables(out_dir, scored)
    if (out_dir / report.RESULTS_FILE).is_file():
        print(tables)
    if jax.process_index() == 0:
        print(what_was_written(out_dir, task_names, errors, test_predictions), file=sys.stderr)
    if errors:
        print("failed tasks: " + "; ".join(f"{t}: {e}" for t, e in errors.items()),
              file=sys.stderr)
        return 1
    return 0


def what_was_written(out: Path, task_names, errors: dict, test_predictions: bool) -> str:
    """The end of a job, for people: which files it wrote where (the numbers are in the tables above)."""
    done = [t for t in task_names if t not in errors]
    lines = [f"wrote {out}:"]
    if (out / report.RESULTS_FILE).is_file():
        lines.append("  results.md, results.csv    the tables above (best seed per task; mean ± std over seeds)")
        lines.append("  results.json               every seed's metrics or failure")
    if done:
        lines.append(f"  metrics/, predictions/     per task and seed ({', '.join(done)})")
        if test_predictions:
            lines.append("  submission/                GLUE test-set files of each task's best seed")
    if (out / "hparams").is_dir():
        lines.append("  hparams/                   each searched task's chosen values and every member's score")
    if errors and (out / "errors").is_dir():
        lines.append(f"  errors/                    the tracebacks of failed tasks ({', '.join(errors)})")
    lines.append("  glue_config.json, checkpoint.json   the settings, and the checkpoint these results belong to")
    return "\n".join(lines)
