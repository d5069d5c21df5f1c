"""The GLUE job behind `scripts/glue.py`: fine-tune a checkpoint on GLUE tasks, every seed at once.

    python scripts/glue.py --checkpoint DIR --seeds 10 [--tasks cola,rte] [--data_dir DIR]
        [--out DIR] [--config path.py] [--config.KEY=VALUE ...] [--test_predictions]
    python scripts/glue.py --report_only --out DIR [--out DIR2 ...] [--csv PATH]

DIR is a Hugging Face BERT directory (config.json, weights and tokenizer files) or one of our
pretraining work directories (DIR/hf holds the exported model with its tokenizer, and
DIR/eval_results.json gives the table's perplexity and eval-loss columns). Without --data_dir the
data comes from the Hugging Face hub (nyu-mll/glue); --data_dir takes a copy of that dataset's
parquet files or the original GLUE TSV layout.

Offline example (synthetic data and a tiny random BERT; about a minute on a 2-core CPU):

    python -c "from glue.run import make_offline_example as m; m('/tmp/glue_demo')"
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
    glue_config.json                  the resolved config
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Sequence

import ml_collections

from glue import data as glue_data
from glue import finetune, metrics, report
from glue.tasks import TASK_NAMES, get_task, parse_tasks

log = logging.getLogger(__name__)
TASK_FIELDS = ("epochs", "runs", "learning_rate", "batch_size", "max_length", "weight_decay")


# ------------------------------------------------------------------ config

def default_config() -> ml_collections.ConfigDict:
    """Every key with its default (DESIGN.md's protocol). A config file's get_config() may start
    from this and change fields, or return only the fields it changes; other keys are an error.
    Per-task fields left None take the global value."""
    c = ml_collections.ConfigDict()
    c.learning_rate = 2e-5
    c.batch_size = 32
    c.max_length = 128
    c.weight_decay = 0.0  # HF run_glue's default; DESIGN.md names none
    c.warmup_steps = 0
    c.clip = 1.0
    c.b1 = 0.9
    c.b2 = 0.999
    c.eps = 1e-8
    c.eval_batch_size = 128
    c.sparse_threshold = 0.1
    # Compute options of the model (jax_bert.config.BertConfig).
    c.dtype = "float32"
    c.scan_layers = False
    c.remat = False
    c.log_every = 10  # steps between progress-bar loss updates (each is one host sync)
    # How one step runs the seeds: 'vmap', 'map' (lax.map loop) or 'auto' (map on one CPU device,
    # where batching the seeds is slower; vmap elsewhere). Results are the same either way.
    c.seed_loop = "auto"
    c.tasks = ml_collections.ConfigDict()
    for name in TASK_NAMES:
        t = get_task(name)
        c.tasks[name] = ml_collections.ConfigDict({
            "epochs": t.epochs, "runs": t.runs, "learning_rate": None, "batch_size": None,
            "max_length": None, "weight_decay": None})
    return c


def _set(config: ml_collections.ConfigDict, dotted: str, value) -> None:
    node = config
    parts = dotted.split(".")
    for p in parts[:-1]:
        if not isinstance(node, ml_collections.ConfigDict) or p not in node:
            raise ValueError(f"unknown config key {dotted!r}; valid top-level keys: "
                             f"{sorted(config.keys())}, per task: tasks.TASK.{{{','.join(TASK_FIELDS)}}}.")
        node = node[p]
    leaf = parts[-1]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise ValueError(f"unknown config key {dotted!r}; valid top-level keys: "
                         f"{sorted(config.keys())}, per task: tasks.TASK.{{{','.join(TASK_FIELDS)}}}.")
    if isinstance(node[leaf], ml_collections.ConfigDict):
        if not isinstance(value, (dict, ml_collections.ConfigDict)):
            raise ValueError(f"config key {dotted!r} is a group; give its fields.")
        for k, v in dict(value).items():
            _set(config, f"{dotted}.{k}", v)
        return
    try:
        node[leaf] = value
    except TypeError as e:
        raise ValueError(f"config key {dotted!r}: {e}") from e


def load_config(path: str | None = None, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """default_config(), then the file's get_config() merged in, then 'key.sub=value' overrides."""
    config = default_config()
    if path:
        if not os.path.isfile(path):
            raise ValueError(f"--config {path}: no such file; give a Python file with get_config().")
        spec = importlib.util.spec_from_file_location("glue_user_config", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ValueError(f"--config {path} has no get_config() function.")
        user = module.get_config()
        for k, v in dict(user.to_dict() if hasattr(user, "to_dict") else user).items():
            _set(config, k, v)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must be --config.KEY=VALUE.")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word, e.g. --config.dtype=bfloat16
        _set(config, key, value)
    return config


def task_settings(config, task: str, seeds: int | None = None):
    """(HParams, max_length, list of seeds) for one task: its per-task values, else the global ones."""
    t = config.tasks[task]

    def pick(name):
        return config[name] if t[name] is None else t[name]

    for name in TASK_FIELDS:
        v = t[name] if t[name] is not None else config.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"config tasks.{task}.{name} must be a number, got {v!r}.")
    runs = int(t.runs if seeds is None else seeds)
    if runs < 1:
        raise ValueError(f"{task}: runs (seeds) must be >= 1, got {runs}.")
    hp = finetune.HParams(
        learning_rate=float(pick("learning_rate")), batch_size=int(pick("batch_size")),
        epochs=int(t.epochs), weight_decay=float(pick("weight_decay")),
        warmup_steps=int(config.warmup_steps), clip=float(config.clip), b1=float(config.b1),
        b2=float(config.b2), eps=float(config.eps), eval_batch_size=int(config.eval_batch_size),
        sparse_threshold=float(config.sparse_threshold))
    max_length = int(pick("max_length"))
    if max_length < 8:
        raise ValueError(f"{task}: max_length must be >= 8, got {max_length}.")
    return hp, max_length, list(range(runs))


# ------------------------------------------------------------------ checkpoint

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


def load_checkpoint(path: str, **config_overrides):
    """(BertConfig, params, tokenizer, extras, model name) from an HF BERT dir or a work dir.

    extras: {"perplexity", "eval_loss"} from DIR/eval_results.json when DIR is a work directory.
    """
    from transformers import AutoTokenizer

    from jax_bert import hf_io

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
    else:
        if root.exists() and not root.is_dir():
            raise ValueError(f"--checkpoint {path} is not a directory; give a Hugging Face BERT "
                             "directory or a pretraining work directory (holding hf/).")
        hf_dir = hf_io.resolve_hf_dir(str(path))
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
    name = root.name or str(path)
    return config, params, tokenizer, extras, name


# ------------------------------------------------------------------ one task

def _json_number(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _write_predictions(path: Path, idx, preds, labels, regression: bool) -> None:
    conv = float if regression else int
    lines = [json.dumps({"idx": int(i), "prediction": conv(p), "label": conv(y)})
             for i, p, y in zip(idx, preds, labels)]
    report.atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def run_task(task_name: str, config, *, bert_config, params, tokenizer, data_dir, out: Path,
             model: str, seeds: int | None, test_predictions: bool, progress: bool = True) -> dict:
    """Fine-tune every seed of one task, record each seed in out/, write submissions. Returns
    {"seeds", "ok", "failed", "scored": {split: n}}."""
    task = get_task(task_name)
    hp, max_length, seed_list = task_settings(config, task.name, seeds)
    dataset = glue_data.load_task(task, data_dir)
    if test_predictions:
        missing = [s for s in task.test_splits if s not in dataset]
        if missing:
            raise glue_data.GlueDataError(
                f"--test_predictions: {task.name} has no test split(s) {missing} in "
                f"{data_dir or glue_data.HUB_DATASET}.")
    eval_splits = list(task.validation_splits) + (list(task.test_splits) if test_predictions else [])
    train = glue_data.tokenize_task(dataset["train"], task, tokenizer, max_length)
    evals = {s: glue_data.tokenize_task(dataset[s], task, tokenizer, max_length) for s in eval_splits}

    steps = finetune.total_steps(len(train["input_ids"]), hp)
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc=f"{task.name} ({len(seed_list)} seeds)", unit="step",
               disable=not progress, mininterval=1.0, dynamic_ncols=True)

    def on_progress(done, loss, n_ok):
        bar.update(done - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}", ok=f"{n_ok}/{len(seed_list)}", refresh=False)

    try:
        runs = finetune.finetune(bert_config, params, train, evals, seed_list, hp,
                                 num_labels=task.num_labels, progress=on_progress,
                                 log_every=int(config.log_every), seed_loop=str(config.seed_loop))
    finally:
        bar.close()

    scored = {s: int(runs.logits[s].shape[1]) for s in eval_splits}
    for s in eval_splits:  # every example scored, none dropped
        if scored[s] != len(dataset[s]["idx"]):
            raise AssertionError(f"{task.name} {s}: scored {scored[s]} of "
                                 f"{len(dataset[s]['idx'])} examples.")
    n_ok, this_run = 0, report.new_results(model)
    for i, seed in enumerate(runs.seeds):
        info = {"task": task.name, "seed": seed, "scored": {s: scored[s] for s in task.validation_splits},
                "final_train_loss": _json_number(runs.final_loss[i]), "sparsity": float(runs.sparsity[i]),
                "steps": runs.steps, "masked_tensors": runs.masked_tensors,
                "task_train_seconds": runs.train_seconds, "hparams": vars(hp) | {"max_length": max_length}}
        if runs.failed[i]:
            report.record_run(out, task.name, seed, error=runs.errors[seed], model=model)
            info.update(status="failed", error=runs.errors[seed])
        else:
            preds = {s: finetune.predictions(runs.logits[s][i], task.num_labels)
                     for s in task.validation_splits}
            labels = {s: evals[s]["labels"] for s in task.validation_splits}
            if len(task.validation_splits) == 1:
                (s,) = task.validation_splits
                m = metrics.compute_metrics(task, preds[s], labels[s])
            else:
                m = metrics.compute_metrics(task, preds, labels)
            report.record_run(out, task.name, seed, dict(m), model=model)
            this_run = report.add_run(this_run, task.name, seed, dict(m))
            info.update(status="ok", metrics={k: _json_number(v) for k, v in m.items()})
            for s in task.validation_splits:
                _write_predictions(out / "predictions" / task.name / f"seed{seed}.{s}.jsonl",
                                   evals[s]["idx"], preds[s], labels[s], task.is_regression)
            n_ok += 1
        report.atomic_write_text(out / "metrics" / task.name / f"seed{seed}.json",
                                 json.dumps(info, indent=2, allow_nan=False) + "\n")
    if test_predictions and n_ok:
        # The best of this run's seeds (results.json may also hold seeds of an earlier run).
        best = report.best_run(this_run, task.name)
        i = runs.seeds.index(best["seed"])
        for s in task.test_splits:
            report.write_submission(out / "submission", task.name, s, evals[s]["idx"],
                                    runs.logits[s][i])
    return {"seeds": len(seed_list), "ok": n_ok, "failed": len(seed_list) - n_ok,
            "scored": scored}


def write_tables(out: Path, scored: dict | None = None) -> str:
    """results.md and results.csv in `out` from its results.json; returns the markdown."""
    text = report.build_report([out], csv_path=out / "results.csv")
    if scored:
        text += "\nValidation examples scored (every one, per seed):\n\n" + "".join(
            f"- {t}: " + ", ".join(f"{s} {n}" for s, n in splits.items()) + "\n"
            for t, splits in scored.items())
    report.atomic_write_text(out / "results.md", text)
    return text


# ------------------------------------------------------------------ command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="glue.py", description="Fine-tune a BERT checkpoint on GLUE, all seeds of a task at "
        "once, and write the results tables. Extra --config.KEY=VALUE arguments override the "
        "config (e.g. --config.tasks.cola.epochs=3).")
    p.add_argument("--checkpoint", help="Hugging Face BERT directory or pretraining work directory.")
    p.add_argument("--seeds", type=int, default=None,
                   help="Runs (seeds 0..N-1) per task; overrides the per-task defaults.")
    p.add_argument("--tasks", default="all", help=f"Comma-separated tasks; valid: {','.join(TASK_NAMES)}.")
    p.add_argument("--data_dir", default=None,
                   help="Local GLUE data (hub parquet or GLUE TSV layout); default: the HF hub.")
    p.add_argument("--out", action="append", default=None,
                   help="Output directory (default runs/glue/<model>); with --report_only, repeatable.")
    p.add_argument("--config", default=None, help="Python file whose get_config() changes settings.")
    p.add_argument("--model_name", default=None, help="Row name in the tables (default: checkpoint dir name).")
    p.add_argument("--test_predictions", action="store_true",
                   help="Also predict the test splits and write GLUE submission TSVs.")
    p.add_argument("--report_only", action="store_true", help="Only rebuild the tables from --out dirs.")
    p.add_argument("--csv", default=None, help="With --report_only: also write the table as CSV here.")
    p.add_argument("--no_progress", action="store_true", help="No progress bars.")
    return p


def parse_args(argv: Sequence[str] | None):
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    overrides, unknown = [], []
    for a in rest:
        (overrides if a.startswith("--config.") else unknown).append(a)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args, [a[len("--config."):] for a in overrides]


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 ok, 1 a task failed, 2 bad input)."""
    args, overrides = parse_args(argv)
    if args.report_only:
        if not args.out:
            return _fail("--report_only needs at least one --out DIR holding results.json.")
        try:
            print(report.build_report(args.out, csv_path=args.csv))
        except ValueError as e:
            return _fail(str(e))
        return 0
    try:
        if not args.checkpoint:
            raise ValueError("--checkpoint DIR is required (or --report_only --out DIR).")
        if args.seeds is not None and args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}.")
        if args.out and len(args.out) > 1:
            raise ValueError("give one --out DIR for fine-tuning (several only with --report_only).")
        task_names = parse_tasks(args.tasks)
        config = load_config(args.config, overrides)
        for name in task_names:  # bad settings fail now, not after hours of other tasks
            task_settings(config, name, args.seeds)
        finetune.resolve_seed_loop(str(config.seed_loop), None)  # an unknown value fails now too
        if args.data_dir is not None and not os.path.isdir(args.data_dir):
            raise ValueError(f"--data_dir {args.data_dir} is not a directory.")
        bert_config, params, tokenizer, extras, name = load_checkpoint(
            args.checkpoint, dtype=config.dtype, scan_layers=bool(config.scan_layers),
            remat=bool(config.remat))
    except ValueError as e:  # includes CheckpointError and GlueDataError
        return _fail(str(e))

    model = args.model_name or name
    out = Path(args.out[0] if args.out else os.path.join("runs", "glue", model))
    out.mkdir(parents=True, exist_ok=True)
    report.atomic_write_text(out / "glue_config.json", json.dumps(
        {"checkpoint": str(args.checkpoint), "tasks": list(task_names), "seeds": args.seeds,
         "data_dir": args.data_dir, "config": config.to_dict()}, indent=2) + "\n")
    sparsity = float(finetune.body_sparsity(finetune.base_params(params)))
    report.set_extras(out, model=model, sparsity=sparsity, **extras)
    print(f"{model}: {sparsity:.2f}% of the BERT body's weights are zero; tasks "
          f"{', '.join(task_names)} -> {out}", file=sys.stderr)

    errors, scored, tables = {}, {}, ""
    for name_ in task_names:
        t0 = time.perf_counter()
        try:
            res = run_task(name_, config, bert_config=bert_config, params=params,
                           tokenizer=tokenizer, data_dir=args.data_dir, out=out, model=model,
                           seeds=args.seeds, test_predictions=args.test_predictions,
                           progress=not args.no_progress)
            scored[name_] = res["scored"]
            if res["ok"] == 0:
                errors[name_] = f"all {res['seeds']} seeds diverged"
            print(f"{name_}: {res['ok']} of {res['seeds']} seeds ok "
                  f"({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
        except Exception as e:  # one task's failure must not lose the others
            errors[name_] = f"{type(e).__name__}: {e}"
            report.atomic_write_text(out / "errors" / f"{name_}.txt", traceback.format_exc())
            print(f"error: {name_} failed: {errors[name_]}", file=sys.stderr)
        if (out / report.RESULTS_FILE).is_file():  # after every task: nothing finished is lost
            tables = write_tables(out, scored)
    if (out / report.RESULTS_FILE).is_file():
        print(tables)
    if errors:
        print("failed tasks: " + "; ".join(f"{t}: {e}" for t, e in errors.items()),
              file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------ offline example

def make_offline_example(root, tasks: Sequence[str] = ("sst2", "mrpc"), sizes=None,
                         hidden: int = 32, layers: int = 2, heads: int = 2,
                         intermediate: int | None = None, vocab_size: int = 0, seed: int = 0):
    """Synthetic GLUE data (hub layout) and a tiny random BERT checkpoint with its tokenizer.

    Returns (data_dir, checkpoint_dir) = (root/data, root/checkpoint). Nothing is downloaded.
    vocab_size: the model's vocabulary (0: the tokenizer's ~300 words; 28996 for BERT-base's size).
    """
    import jax

    from glue import synthetic
    from jax_bert import hf_io, model
    from jax_bert.config import BertConfig

    root = Path(root)
    sizes = dict(sizes or {"train": 256, "validation": 64, "test": 16})
    data_dir = synthetic.write_synthetic_glue(root / "data", "hub", sizes, tasks=tasks, seed=seed)
    texts = []
    for name in tasks:
        split = glue_data.load_task(name, data_dir)["train"]
        for col in get_task(name).text_columns:
            texts += split[col]
    tokenizer = synthetic.make_wordpiece_tokenizer(texts, vocab_size=300)
    config = BertConfig(vocab_size=max(len(tokenizer), vocab_size), hidden_size=hidden,
                        num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate or 2 * hidden, max_position_embeddings=512)
    params = model.init_params(config, jax.random.key(seed), head="mlm")
    ckpt = hf_io.save_hf(config, jax.device_get(params), str(root / "checkpoint"), tokenizer=tokenizer)
    return data_dir, Path(ckpt)
