"""The GLUE benchmarks (docs/benchmarks.md): the nine-task suite against Hugging Face PyTorch, seeds
fine-tuned together against one after another, and the micro-benchmark of one gradient step behind
the choice of `seed_loop`.

    python scripts/benchmark_glue.py --mode search [--task sst2] [--lrs 3e-4,1e-3,3e-3,1e-2] [--seeds 2]
        (a search grid in one program against its members one by one: benchmarks/search.py)
    python scripts/benchmark_glue.py --mode suite [--scale 0.002] [--seeds 3] [--buckets 4] [--unpacked] [--no_hf]
        [--epochs N] [--shape_min_steps N]
    python scripts/benchmark_glue.py [--mode seeds] [--seeds 10] [--task sst2] [--train 512] [--epochs 1]
        [--hidden 32] [--layers 2] [--max_length 64] [--batch_size 32] [--seed_loop vmap|map|auto]
        [--length_profile] [--dtype float32|bfloat16] [--length_buckets 4] [--no_pack]
    python scripts/benchmark_glue.py --mode vmap_step [--dropout 0.1]    # --dropout 0 for none

`suite_main` (--mode suite): all nine tasks, each fine-tuned with every seed three ways in this one
process, task by task: ours as configured by default (length buckets, packed tokens; --unpacked adds
ours with buckets but every position computed), ours with every batch padded to max_length and every
position computed (the same code with length_buckets=1, pack_tokens=False: what it did before), and
the peer users would otherwise run, Hugging Face transformers'
BertForSequenceClassification in PyTorch fine-tuning the same checkpoint on the same tokenized data
with the same hyperparameters (AdamW, fused as the Trainer's default, linear decay, no warm-up, clip
1.0, batch 32, the protocol's epochs) and the seeds one after another, every batch padded to
max_length as run_glue pads by default (its eval batch is ours, 128, not run_glue's 8). The data is
synthetic with GLUE's token lengths (glue.synthetic.LENGTH_PROFILE), the real split sizes times
--scale (at least --min_train / --min_eval examples), the model a random BERT-small by default (4
layers, hidden 256, 4 heads, intermediate 1024, vocabulary 30,522). Ours runs cold (compilation
included; tasks of the same label count share compiled steps, as in a real run) and then again warm.
It prints per task and for the suite: training examples per second, the wall time of each task
(training and evaluation), ratios, and the full-size projection (each task's warm time per training
and per eval example times the real task's examples). Training examples/s and the projection are timed
at the step shapes a full-size run would use (after every task's cold and warm runs, each task again
with the rare-shape threshold scaled by --scale, compiled then timed: at full size only shapes few of
thousands of steps need are padded to a larger one, while the suite's 1-5 steps per task would all be).
Ours bucketed and ours padded must give the same logits (their largest difference is printed).

`seeds_main` (--mode seeds, the default): N seeds fine-tuned in one step against the same N seeds one
after another. Offline: synthetic data and a random BERT (glue.synthetic.make_offline_example), on
whatever device JAX uses (JAX_PLATFORMS=cpu for the CPU figure). Both ways run the same code
(glue.finetune.finetune), the same seeds, data and hyperparameters (glue/config.py's, with the
flags' changes), in this one process: the sequential way calls it once per seed (its step, compiled
for one seed, is reused), the together way once with every seed. Each is timed cold (compiles
included), then warm --repeats times, alternating (compiled steps reused, as for every task after the
first shape; median reported). It checks that both give the same validation logits per seed, then
prints the times, ratios and tokens per second (real tokens, and padded positions computed).
--seed_loop map runs the seeds of the together-run with lax.map inside the one step instead of vmap
(glue.py's default on one CPU); --length_profile draws the task's GLUE token lengths;
--dtype bfloat16 computes in bf16 (params stay float32). scripts/benchmark_glue_gpu.sh runs the GPU
figures (BERT-base, RTE and SST-2, 10 seeds, float32 and bf16).

`vmap_step_main` (--mode vmap_step): the gradient of a tiny BERT classifier for 10 seeds, computed
four ways in one process: one seed at a time (10 calls of the one-seed step), vmapped over the seeds
(what glue.finetune does), and inside one step with `lax.map` over the seeds (sequential in XLA) or
`lax.map(batch_size=2)` (vmap over pairs). The ways alternate call by call.

All print the share of the CPUs that other processes used while timing (numbers taken on a busy
machine are not comparable with quiet-machine ones).
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time

from benchmarks import timing
from jax_bert.finetune import batching, engine, hparams
from jax_bert.finetune.seeds import one_seed_params


def params_shape(config, params, num_labels):
    """Shapes of one seed's fine-tuned params (BERT body, pooler, classifier)."""
    import jax


    config = config.replace(num_labels=num_labels)
    base = engine.base_params(params)
    return jax.eval_shape(lambda b: one_seed_params(config, b, 0), base)


def tokenized_task(task, data_dir, tokenizer, max_length):
    """(train, {validation split: data}) of a task from data_dir, tokenized."""
    from glue import data

    return data.tokenize_splits(data.load_task(task, data_dir), task, tokenizer, max_length, task.validation_splits)


def seeds_main(argv=None) -> dict:
    """--mode seeds; returns what it printed as numbers (the tests read it)."""
    p = argparse.ArgumentParser(description="N seeds fine-tuned in one step against one after another.")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--task", default="sst2")
    p.add_argument("--train", type=int, default=512, help="training examples")
    p.add_argument("--validation", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--max_length", type=int, default=64)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=0, help="0: 2 x hidden")
    p.add_argument("--vocab_size", type=int, default=0, help="0: the synthetic tokenizer's")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (1e-3: random tiny models)")
    p.add_argument("--repeats", type=int, default=3, help="warm timings per way (median reported)")
    p.add_argument("--seed_loop", default="vmap", choices=("vmap", "map", "auto"),
                   help="how the together-run loops over seeds (glue.finetune.resolve_seed_loop)")
    p.add_argument("--matmul_precision", default=None,
                   help="jax_default_matmul_precision, e.g. 'highest' (no TF32 on GPUs)")
    p.add_argument("--length_profile", action="store_true", help="the task's GLUE token lengths")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="compute dtype")
    p.add_argument("--length_buckets", type=int, default=4, help="1: pad every batch to max_length")
    p.add_argument("--no_pack", action="store_true", help="compute every padded position (no packed tokens)")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.length_buckets < 1:
        p.error(f"--length_buckets must be >= 1, got {args.length_buckets}")

    import jax
    import numpy as np

    if args.matmul_precision:
        jax.config.update("jax_default_matmul_precision", args.matmul_precision)
    from glue import config as glue_config
    from glue import finetune, run, synthetic
    from glue.tasks import get_task

    task = get_task(args.task)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, ckpt = synthetic.make_offline_example(
            tmp, (task.name,), {"train": args.train, "validation": args.validation, "test": 8},
            hidden=args.hidden, layers=args.layers, heads=args.heads,
            intermediate=args.intermediate or None, vocab_size=args.vocab_size,
            length_profile=args.length_profile)
        config, params, tokenizer, _, _ = run.load_checkpoint(str(ckpt), dtype=args.dtype)
        train, evals = tokenized_task(task, data_dir, tokenizer, args.max_length)
    hp = finetune.task_hparams(glue_config.get_config(), task.name, batch_size=args.batch_size,
                               epochs=args.epochs, learning_rate=args.lr, drop_last=False)  # every example
    seeds = list(range(args.seeds))
    run_kw = dict(num_labels=task.num_labels, seed_loop=args.seed_loop, length_buckets=args.length_buckets,
                  pack_tokens=not args.no_pack)

    def together():
        return engine.finetune(config, params, train, evals, seeds, hp, **run_kw)

    def sequential():
        return [engine.finetune(config, params, train, evals, [s], hp, **run_kw) for s in seeds]

    def timed(fn):
        t0 = time.perf_counter()
        result = fn()
        return time.perf_counter() - t0, result

    ways = (("sequential", sequential), ("vmapped", together))
    cold, results, warm = {}, {}, {name: [] for name, _ in ways}
    with timing.CpuMonitor() as monitor:
        for name, fn in ways:
            cold[name], results[name] = timed(fn)
        for _ in range(args.repeats):  # the two ways alternate, so a change in machine load hits both
            for name, fn in ways:
                warm[name].append(timed(fn)[0])
    rows = [{"way": name, "cold_s": cold[name], "warm_s": statistics.median(warm[name])} for name, _ in ways]
    seq_result, vm_result = results["sequential"], results["vmapped"]
    split = task.validation_splits[0]
    diff = max(float(np.abs(vm_result.logits[split][i] - r.logits[split][0]).max())
               for i, r in enumerate(seq_result))
    steps = vm_result.steps
    buckets = batching.bucket_lengths(args.max_length, args.length_buckets)
    real_tokens = int(batching.real_lengths(train["attention_mask"]).sum()) * args.epochs * args.seeds
    positions = vm_result.positions * args.seeds
    print(f"device: {jax.devices()[0].platform} x{jax.device_count()}; task {task.name}, "
          f"{args.train} train examples{' (GLUE lengths)' if args.length_profile else ''}, {steps} steps "
          f"per seed, batch {args.batch_size}, max length {args.max_length}, buckets {buckets}"
          f"{'' if args.no_pack else ', packed tokens'}, lr {args.lr}, "
          f"BERT hidden {args.hidden} x {args.layers} layers, {args.dtype} compute, matmul precision "
          f"{args.matmul_precision or 'default'}, seed loop {args.seed_loop}")
    print(f"{args.seeds} seeds, max |logit difference| vmapped vs alone: {diff:.2e}; steps per bucket "
          f"{vm_result.bucket_steps}")
    print(f"| way | cold, with compile (s) | warm, median of {args.repeats} (s) | real tokens/s (warm) | "
          f"padded positions/s (warm) |")
    print("|---|---|---|---|---|")
    for r in rows:
        r.update(tokens_per_s=real_tokens / r["warm_s"], positions_per_s=positions / r["warm_s"])
        print(f"| {r['way']} | {r['cold_s']:.2f} | {r['warm_s']:.2f} | {r['tokens_per_s']:,.0f} | "
              f"{r['positions_per_s']:,.0f} |")
    speedup_cold = cold["sequential"] / cold["vmapped"]
    speedup_warm = rows[0]["warm_s"] / rows[1]["warm_s"]
    print(f"speed-up vmapped / sequential: {timing.ratio_text(speedup_cold, monitor)} cold, "
          f"{timing.ratio_text(speedup_warm, monitor)} warm (warm times include evaluation)")
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params_shape(config, params, task.num_labels)))
    print(f"params per seed: {n_params:,}; params + grads + Adam mu + nu in float32: "
          f"{16 * n_params / 1e9:.3f} GB per seed, {16 * n_params * args.seeds / 1e9:.2f} GB for "
          f"{args.seeds} seeds (activations not included)")
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        print(f"measured peak device memory (whole run): {stats['peak_bytes_in_use'] / 1e9:.2f} GB")
    if timing.load_note(monitor):
        print(timing.load_note(monitor))
    return {"rows": rows, "steps": steps, "max_logit_diff": diff, "speedup_cold": speedup_cold,
            "speedup_warm": speedup_warm, "params_per_seed": n_params, "other_cpu_share": monitor.other_share,
            "ratios_valid": timing.is_quiet(monitor),
            "bucket_steps": vm_result.bucket_steps}


# ------------------------------------------------------------------ the nine-task suite vs Hugging Face

def hf_finetune(hf_dir: str, train: dict, evals: dict, seeds, hp, num_labels: int) -> dict:
    """The peer: transformers' BertForSequenceClassification (PyTorch) fine-tuned on the same tokenized
    data (padded to its full width) for each seed one after another, as run_glue's Trainer does it
    (AdamW with its decay groups, fused; linear schedule; clip_grad_norm_; the last batch partial),
    each seed in our data order. Returns {"logits": {split: [S, N, labels]}, "train_seconds",
    "eval_seconds"}."""
    import numpy as np
    import torch
    import transformers


    transformers.logging.set_verbosity_error()  # "newly initialized classifier" per seed
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" per seed
    columns = batching.INPUT_KEYS
    tensors = {k: torch.from_numpy(np.asarray(train[k], np.int64)) for k in columns}
    labels = torch.from_numpy(np.asarray(train["labels"], np.float32 if num_labels == 1 else np.int64))
    n = len(labels)
    spe = hparams.steps_per_epoch(n, hp.batch_size, hp.drop_last)
    steps = hp.epochs * spe
    logits = {split: [] for split in evals}
    train_seconds = eval_seconds = 0.0
    for seed in seeds:
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        model = transformers.BertForSequenceClassification.from_pretrained(hf_dir, num_labels=num_labels)
        decay = [p for name, p in model.named_parameters() if not ("bias" in name or "LayerNorm" in name)]
        rest = [p for name, p in model.named_parameters() if "bias" in name or "LayerNorm" in name]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=hp.learning_rate,
                                betas=(hp.b1, hp.b2), eps=hp.eps, fused=True)
        sched = transformers.get_linear_schedule_with_warmup(opt, hp.warmup_steps, steps)
        model.train()
        for epoch in range(hp.epochs):
            order = torch.from_numpy(batching.epoch_order(n, seed, epoch))
            for i in range(spe):
                rows = order[i * hp.batch_size:(i + 1) * hp.batch_size]
                out = model(**{k: tensors[k][rows] for k in columns}, labels=labels[rows])
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), hp.clip)
                opt.step()
                sched.step()
                opt.zero_grad()
        t1 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            for split, d in evals.items():
                eval_tensors = {k: torch.from_numpy(np.asarray(d[k], np.int64)) for k in columns}
                out = [model(**{k: v[lo:lo + hp.eval_batch_size] for k, v in eval_tensors.items()}).logits
                       for lo in range(0, len(d["input_ids"]), hp.eval_batch_size)]
                logits[split].append(torch.cat(out).numpy())
        train_seconds += t1 - t0
        eval_seconds += time.perf_counter() - t1
    return {"logits": {s: np.stack(v) for s, v in logits.items()}, "train_seconds": train_seconds,
            "eval_seconds": eval_seconds}


def mean_first_metric(task, logits, evals) -> float:
    """The task's first metric averaged over seeds (logits: {split: [S, N, labels]})."""
    import numpy as np

    from glue import metrics

    labels = {s: evals[s]["labels"] for s in task.validation_splits}
    seeds = len(logits[task.validation_splits[0]])
    return float(np.mean([metrics.validation_metrics(task, {s: logits[s][i] for s in task.validation_splits},
                                                     labels)[task.metric_names[0]] for i in range(seeds)]))


def suite_main(argv=None) -> dict:
    """--mode suite; returns the per-task records and the suite totals (the tests read them)."""
    p = argparse.ArgumentParser(description="The nine GLUE tasks: ours bucketed, ours padded, HF torch.")
    p.add_argument("--tasks", default="all")
    p.add_argument("--scale", type=float, default=0.002, help="fraction of the real GLUE split sizes")
    p.add_argument("--min_train", type=int, default=64)
    p.add_argument("--min_eval", type=int, default=64)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=0, help="0: the protocol's (3, or 5 for CoLA/MRPC/WNLI)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=1024)
    p.add_argument("--vocab_size", type=int, default=30522)
    p.add_argument("--max_length", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--eval_batch_size", type=int, default=128)
    p.add_argument("--buckets", default="4", help="comma-separated length_buckets settings of ours to time")
    p.add_argument("--unpacked", action="store_true", help="also time ours bucketed without packed tokens")
    p.add_argument("--no_hf", action="store_true", help="leave out the Hugging Face peer")
    p.add_argument("--no_warm", action="store_true", help="time ours cold only")
    p.add_argument("--compile_cache", default=None,
                   help="a persistent compilation cache directory, as the commands keep (run twice: the second "
                        "process starts with the cache filled); default none, every process compiles")
    p.add_argument("--seed_loop", default="auto", choices=("vmap", "map", "auto"))
    p.add_argument("--shape_min_steps", type=int, default=None,
                   help="finetune's planner threshold (default its own, 64): a small run's steps all run at its "
                        "largest shape; 0 runs each at its own, as a full-size run does for every common shape")
    args = p.parse_args(argv)
    bucket_settings = [int(b) for b in args.buckets.split(",") if b]
    if args.seeds < 1 or args.scale <= 0 or any(b < 2 for b in bucket_settings):
        p.error("--seeds >= 1, --scale > 0 and every --buckets value >= 2 (1, padding, always runs)")

    import jax
    import numpy as np

    from glue import run, synthetic
    from jax_bert import compile_cache

    if args.compile_cache:
        print(f"persistent compilation cache: {compile_cache.enable(args.compile_cache)} "
              f"({len(os.listdir(args.compile_cache))} entries at the start)")
    from glue.tasks import get_task, parse_tasks

    tasks = [get_task(t) for t in parse_tasks(args.tasks)]
    # (name, finetune's length_buckets and pack_tokens, or None for the Hugging Face peer)
    ways = [(f"ours, {b} buckets, packed", dict(length_buckets=b, pack_tokens=True)) for b in bucket_settings]
    if args.unpacked:
        ways += [(f"ours, {b} buckets", dict(length_buckets=b, pack_tokens=False)) for b in bucket_settings]
    ways.append(("ours, padded", dict(length_buckets=1, pack_tokens=False)))
    if not args.no_hf:
        ways.append(("HF torch, padded", None))
    sizes = functools.partial(synthetic.glue_sizes, scale=args.scale, min_train=args.min_train,
                              min_eval=args.min_eval)
    seeds = list(range(args.seeds))
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, ckpt = synthetic.make_offline_example(
            tmp, [t.name for t in tasks], sizes, hidden=args.hidden, layers=args.layers, heads=args.heads,
            intermediate=args.intermediate, vocab_size=args.vocab_size, length_profile=True)
        config, params, tokenizer, _, _ = run.load_checkpoint(str(ckpt))
        print(f"{jax.devices()[0].platform}; BERT {args.layers} layers, hidden {args.hidden}, {args.heads} heads, "
              f"intermediate {args.intermediate}, vocabulary {config.vocab_size}; {args.seeds} seeds; max length "
              f"{args.max_length}; GLUE sizes x {args.scale} (at least {args.min_train} train / {args.min_eval} "
              f"eval); ways: {', '.join(w for w, _ in ways)}", flush=True)
        with timing.CpuMonitor() as monitor:
            for task in tasks:
                train, evals = tokenized_task(task, data_dir, tokenizer, args.max_length)
                hp = suite_hparams(task, args)
                lengths = batching.real_lengths(train["attention_mask"])
                rec = {"task": task.name, "train": len(lengths), "eval": sum(len(d["labels"]) for d in evals.values()),
                       "mean_length": float(lengths.mean()), "epochs": hp.epochs,
                       "examples": len(lengths) * hp.epochs * args.seeds, "ways": {}}
                logits = {}
                for name, settings in ways:
                    timings = []
                    for attempt in range(1 if settings is None or args.no_warm else 2):
                        t0 = time.perf_counter()
                        if settings is None:
                            out = hf_finetune(str(ckpt), train, evals, seeds, hp, task.num_labels)
                            train_s, eval_s, logits[name] = out["train_seconds"], out["eval_seconds"], out["logits"]
                        else:
                            plan = {} if args.shape_min_steps is None else {"shape_min_steps": args.shape_min_steps}
                            runs = engine.finetune(config, params, train, evals, seeds, hp,
                                                     num_labels=task.num_labels, seed_loop=args.seed_loop,
                                                     **settings, **plan)
                            train_s, eval_s, logits[name] = runs.train_seconds, runs.eval_seconds, runs.logits
                            rec.setdefault("bucket_steps", {})[name] = runs.bucket_steps
                            rec.setdefault("positions", {})[name] = runs.positions
                            rec["real_tokens"] = runs.real_tokens
                        timings.append({"wall_s": time.perf_counter() - t0, "train_s": train_s, "eval_s": eval_s})
                    rec["ways"][name] = {"cold": timings[0], "warm": timings[-1],
                                         "metric": mean_first_metric(task, logits[name], evals)}
                    last = timings[-1]
                    print(f"  {task.name} {name}: cold {timings[0]['wall_s']:.1f} s, warm {last['wall_s']:.1f} s "
                          f"(train {last['train_s']:.1f} s, eval {last['eval_s']:.1f} s)", flush=True)
                rec["max_logit_diff"] = max(
                    float(np.abs(logits[w][s] - logits["ours, padded"][s]).max())
                    for w, settings in ways if w.startswith("ours, ") and w != "ours, padded" for s in evals)
                records.append(rec)
            if not args.no_warm:  # after every task's cold and warm runs, whose compiled steps it must not give
                for task, rec in zip(tasks, records):
                    full_size_shapes(task, rec, ways, data_dir, tokenizer, config, params, seeds, args)
    return _suite_report(records, ways, args, monitor)


def suite_hparams(task, args):
    """The task's GLUE hyperparameters with the suite's batch sizes and epochs, every training example on
    both sides (GLUE's default drops the last partial batch)."""
    from glue import config as glue_config
    from glue import finetune

    changes = dict(batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, drop_last=False)
    if args.epochs:
        changes["epochs"] = args.epochs
    return finetune.task_hparams(glue_config.get_config(), task.name, **changes)


def full_size_shapes(task, rec, ways, data_dir, tokenizer, config, params, seeds, args) -> None:
    """The projection's timing of ours (rec["ways"][way]["full_shapes"]): the task trained at the step shapes
    its full-size run would use. At full size a shape is rare (run at a larger one to save a compilation)
    only when few of its thousands of steps need it; here every shape has 1-5 steps, so the default plan
    pads them all to full shapes, which says little of full GLUE. Run after all tasks' cold and warm runs:
    the programs it compiles would otherwise serve the later tasks' cold runs."""
    train, evals = tokenized_task(task, data_dir, tokenizer, args.max_length)
    hp = suite_hparams(task, args)
    full_plan = {"shape_min_steps": full_size_min_steps(task.name, rec["train"], args)}
    for name, settings in ways:
        if settings is None:
            continue
        for _ in range(2):  # the first compiles the shapes, the second is timed
            runs = engine.finetune(config, params, train, evals, seeds, hp, num_labels=task.num_labels,
                                   seed_loop=args.seed_loop, **settings, **full_plan)
        rec["ways"][name]["full_shapes"] = {"train_s": runs.train_seconds, "eval_s": runs.eval_seconds}


def full_size_min_steps(task: str, train_examples: int, args) -> int:
    """The planner's rare-shape threshold (steps) that, applied to this run's steps, picks the shapes the
    task's full-size run would: the threshold scaled by this run's share of the real training set."""
    from glue import synthetic

    threshold = batching.SHAPE_MIN_STEPS if args.shape_min_steps is None else args.shape_min_steps
    return round(threshold * train_examples / synthetic.GLUE_SIZES[task]["train"])


def _suite_report(records, ways, args, monitor) -> dict:
    """Prints the per-task table, the suite totals and ratios, and the full-size projection."""
    from glue import synthetic

    names = [w for w, _ in ways]
    print("\nper task (warm: compiled steps reused; HF has nothing to compile, its one run is both): "
          "training examples/s at a full-size run's step shapes and task wall time (training + evaluation)\n")
    print("| task | train / eval examples | mean tokens | " + " | ".join(f"{w}: ex/s, wall s" for w in names)
          + " | max logit diff bucketed vs padded |")
    print("|---|---|---|" + "---|" * len(names) + "---|")
    for r in records:
        cells = [f"{r['examples'] / r['ways'][w].get('full_shapes', r['ways'][w]['warm'])['train_s']:,.0f}, "
                 f"{r['ways'][w]['warm']['wall_s']:.1f}" for w in names]
        print(f"| {r['task']} | {r['train']} / {r['eval']} | {r['mean_length']:.1f} | " + " | ".join(cells)
              + f" | {r['max_logit_diff']:.1e} |")
    totals = {}
    for w in names:
        total = {k: sum(r["ways"][w][k]["wall_s"] for r in records) for k in ("cold", "warm")}
        # Training examples/s and full GLUE at the step shapes of a full-size run (ours: `full_shapes`;
        # HF has no shapes to choose, its one run is both): each task's warm seconds per training (and
        # per eval) example times the real counts.
        at_full = [r["ways"][w].get("full_shapes", r["ways"][w]["warm"]) for r in records]
        train = sum(t["train_s"] for t in at_full)
        full = 0.0
        for r, t in zip(records, at_full):
            real = synthetic.GLUE_SIZES[r["task"]]
            n_eval = sum(v for k, v in real.items() if k.startswith("validation"))
            full += t["train_s"] * real["train"] / r["train"] + t["eval_s"] * n_eval / r["eval"]
        totals[w] = {"cold_s": total["cold"], "warm_s": total["warm"], "examples_per_s":
                     sum(r["examples"] for r in records) / train, "full_glue_h": full / 3600}
    print("\ntraining examples/s and the projection time every task at the step shapes its full-size run "
          "would use (the suite's own walls at the shapes this small run chose)")
    print("\n| way | suite wall, cold (s) | suite wall, warm (s) | training examples/s (warm) | "
          "projected full GLUE (h) | mean first metric over tasks |")
    print("|---|---|---|---|---|---|")
    for w in names:
        t = totals[w]
        metric = sum(r["ways"][w]["metric"] for r in records) / len(records)
        print(f"| {w} | {t['cold_s']:.1f} | {t['warm_s']:.1f} | {t['examples_per_s']:,.1f} | "
              f"{t['full_glue_h']:.2f} | {metric:.2f} |")
    ratios = {}
    for w, _ in ways:
        for peer in ("ours, padded", "HF torch, padded"):
            if w.startswith("ours, ") and w != "ours, padded" and peer in totals:
                key = f"{w} vs {peer}"
                ratios[key] = {k: totals[peer][k] / totals[w][k] for k in ("cold_s", "warm_s", "full_glue_h")}
                ratios[key]["examples_per_s"] = totals[w]["examples_per_s"] / totals[peer]["examples_per_s"]
                r = {k: timing.ratio_text(v, monitor) for k, v in ratios[key].items()}
                print(f"{key}: suite {r['cold_s']} cold, {r['warm_s']} warm; training examples/s "
                      f"{r['examples_per_s']}; full GLUE projected {r['full_glue_h']}")
    print("\nsteps per padded length, and positions the dense layers computed per real token:")
    for r in records:
        print(f"  {r['task']}: " + "; ".join(
            f"{w}: {b}, {r['positions'][w] / r['real_tokens']:.2f}" for w, b in r["bucket_steps"].items()))
    if timing.load_note(monitor):
        print(timing.load_note(monitor))
    return {"records": records, "totals": totals, "ratios": ratios, "other_cpu_share": monitor.other_share,
            "ratios_valid": timing.is_quiet(monitor)}


# ------------------------------------------------------------------ one gradient step, four ways

SEEDS, BATCH, LENGTH, ROUNDS = 10, 32, 64, 15


def vmap_step(dropout: float, seeds: int = SEEDS, batch: int = BATCH, length: int = LENGTH,
              rounds: int = ROUNDS) -> list[dict]:
    """Prints and returns the median time of each way (rows: way, median_s, per_seed_s, speedup)."""
    import jax
    import jax.numpy as jnp

    from jax_bert import model

    cfg = model.BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=max(64, length),
                           hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, num_labels=2)
    params = model.init_params(cfg, jax.random.key(0), "classifier")
    ids = jnp.ones((batch, length), jnp.int32)
    grad = jax.grad(lambda p, rng: model.apply(cfg, p, ids, head="classifier", dropout_rng=rng).sum())
    stacked = jax.tree.map(lambda x: jnp.stack([x] * seeds), params)
    rngs = jax.random.split(jax.random.key(1), seeds)
    one = jax.jit(grad)

    def mapped(batch_size):
        return jax.jit(lambda ps, rs: jax.lax.map(lambda a: grad(*a), (ps, rs), batch_size=batch_size))

    ways = {
        "one seed at a time": lambda: [one(params, rngs[i]) for i in range(seeds)],
        "vmap": functools.partial(jax.jit(jax.vmap(grad)), stacked, rngs),
        "lax.map": functools.partial(mapped(None), stacked, rngs),
        "lax.map, batch_size 2": functools.partial(mapped(2), stacked, rngs),
    }
    for call in ways.values():
        jax.block_until_ready(call())  # compile
    times = {name: [] for name in ways}
    with timing.CpuMonitor() as monitor:
        for _ in range(rounds):
            for name, call in ways.items():
                times[name] += timing.time_steps(lambda: jax.block_until_ready(call()), 1)
    base = statistics.median(times["one seed at a time"])
    print(f"dropout {dropout}, {seeds} seeds, hidden 32 x 2 layers, batch {batch} x {length}, "
          f"{jax.devices()[0].platform}, median of {rounds}")
    rows = []
    for name, t in times.items():
        m = statistics.median(t)
        rows.append({"way": name, "median_s": m, "per_seed_s": m / seeds, "speedup": base / m})
        print(f"  {name:24s} {m * 1e3:7.1f} ms for {seeds} seeds ({m / seeds * 1e3:5.1f} ms per seed), "
              f"speed-up vs one at a time {timing.ratio_text(base / m, monitor)}")
    if timing.load_note(monitor):
        print(timing.load_note(monitor))
    return rows


def vmap_step_main(argv=None) -> list[dict]:
    """--mode vmap_step [--dropout 0.1]."""
    p = argparse.ArgumentParser(description="the gradient of a tiny classifier for 10 seeds, four ways")
    p.add_argument("--dropout", type=float, default=0.1, help="hidden and attention dropout (0: none)")
    args = p.parse_args(argv)
    if not 0.0 <= args.dropout < 1.0:
        p.error(f"--dropout must be in [0, 1), got {args.dropout}")
    return vmap_step(args.dropout)
