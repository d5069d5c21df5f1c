"""Benchmark of the hyper-parameter search (glue/search.py): a grid in one program against its members one
after another, and what the search's choice gains over the fixed protocol.

    python scripts/benchmark_glue.py --mode search [--task sst2] [--train 512] [--epochs 2]
        [--lrs 3e-4,1e-3,3e-3,1e-2] [--warmups 0,0.1] [--seeds 2] [--fixed_lr 1e-3] [--repeats 2]

Offline: synthetic data and a random tiny BERT (glue.synthetic.make_offline_example), on whatever
device JAX uses. The grid (default 4 learning rates x 2 warm-up ratios x 2 seeds = 16 members, fixed
epochs) trains on the training set minus its held-out part, as the search does:
  * one program: glue.finetune.finetune with every member (member_hps), what the search runs;
  * one after another: the same function once per member (its one-member step compiled once, reused).
Each is timed cold (compiles included), then warm --repeats times, alternating (median reported); the
members' held-out logits must agree between the two (the largest difference is printed).
Then the search's choice (best held-out score, mean over seeds) and the fixed protocol (--fixed_lr, no
warm-up) are each fine-tuned on the full training set with --final_seeds seeds and scored on validation:
the mean validation metric of both is printed. It prints the share of the CPUs other processes used.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

from benchmarks import finetuning, timing
from jax_bert.finetune import engine


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x)


def search_main(argv=None) -> dict:
    """--mode search; returns what it printed as numbers (the tests read it)."""
    p = argparse.ArgumentParser(description="A search grid in one program against its members one by one.")
    p.add_argument("--task", default="sst2")
    p.add_argument("--train", type=int, default=512, help="training examples (the held-out part included)")
    p.add_argument("--validation", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lrs", type=_floats, default=(3e-4, 1e-3, 3e-3, 1e-2))
    p.add_argument("--warmups", type=_floats, default=(0.0, 0.1))
    p.add_argument("--seeds", type=int, default=2, help="seeds per setting")
    p.add_argument("--fixed_lr", type=float, default=1e-3, help="the fixed protocol's learning rate")
    p.add_argument("--final_seeds", type=int, default=3)
    p.add_argument("--fraction", type=float, default=0.1, help="held-out share of the training set")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--max_length", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2, help="warm timings per way (median reported)")
    p.add_argument("--seed_loop", default="auto", choices=("vmap", "map", "auto"))
    args = p.parse_args(argv)
    if args.seeds < 1 or args.final_seeds < 1 or args.repeats < 1 or not args.lrs or not args.warmups:
        p.error("--seeds, --final_seeds and --repeats must be >= 1, --lrs and --warmups non-empty")
    if min(args.lrs) <= 0 or args.fixed_lr <= 0:
        p.error("learning rates must be > 0")

    import jax
    import numpy as np

    from glue import config as glue_config
    from glue import finetune, run, search, synthetic
    from glue.tasks import get_task

    task = get_task(args.task)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, ckpt = synthetic.make_offline_example(
            tmp, (task.name,), {"train": args.train, "validation": args.validation, "test": 8},
            hidden=args.hidden, layers=args.layers, heads=args.heads)
        config, params, tokenizer, _, _ = run.load_checkpoint(str(ckpt))
        train, evals = finetuning.tokenized_task(task, data_dir, tokenizer, args.max_length)
    hp = finetune.task_hparams(glue_config.get_config(), task.name, batch_size=args.batch_size,
                                      epochs=args.epochs, learning_rate=args.fixed_lr)
    fit_rows, score_rows = search.split_off(len(train["input_ids"]), args.fraction, 0)
    fit, held = search.subset(train, fit_rows), search.subset(train, score_rows)
    settings = [search.Setting(lr, w, args.epochs) for lr in args.lrs for w in args.warmups]
    seeds, member_hps = search.members(settings, args.seeds, hp, len(fit_rows))
    run_kw = dict(num_labels=task.num_labels, seed_loop=args.seed_loop)

    def one_program():
        return engine.finetune(config, params, fit, {"heldout": held}, seeds, hp, member_hps=member_hps, **run_kw)

    def one_by_one():
        return [engine.finetune(config, params, fit, {"heldout": held}, [s], m, **run_kw)
                for s, m in zip(seeds, member_hps)]

    def timed(fn):
        t0 = time.perf_counter()
        result = fn()
        return time.perf_counter() - t0, result

    ways = (("one after another", one_by_one), ("one program", one_program))
    cold, results, warm = {}, {}, {name: [] for name, _ in ways}
    with timing.CpuMonitor() as monitor:
        for name, fn in ways:
            cold[name], results[name] = timed(fn)
        for _ in range(args.repeats):
            for name, fn in ways:
                warm[name].append(timed(fn)[0])
    together, alone = results["one program"], results["one after another"]
    diff = max(float(np.abs(together.logits["heldout"][i] - r.logits["heldout"][0]).max())
               for i, r in enumerate(alone))
    scores = [np.nan if together.failed[i] else search.score(task, together.logits["heldout"][i], held["labels"])
              for i in range(len(seeds))]
    best, means = search.choose(settings, scores, args.seeds)
    chosen = settings[best]

    # The final number: the choice and the fixed protocol, each on the full training set, on validation.
    final_seeds = list(range(args.final_seeds))
    chosen_hp = search.apply(hp, dataclasses.asdict(chosen), len(train["input_ids"]))
    finals = {name: engine.finetune(config, params, train, evals, final_seeds, h, **run_kw)
              for name, h in (("chosen", chosen_hp), ("fixed", hp))}
    quality = {name: finetuning.mean_first_metric(task, r.logits, evals) for name, r in finals.items()}

    print(f"device: {jax.devices()[0].platform} x{jax.device_count()}; task {task.name}, {args.train} train "
          f"examples ({len(fit_rows)} trained on, {len(score_rows)} held out), {together.steps} steps, batch "
          f"{args.batch_size}, max length {args.max_length}, random BERT hidden {args.hidden} x {args.layers} "
          f"layers, seed loop {args.seed_loop}")
    print(f"grid: {len(settings)} settings (lr {args.lrs} x warm-up {args.warmups}, {args.epochs} epochs) x "
          f"{args.seeds} seeds = {len(seeds)} members; max |held-out logit difference| one program vs alone: "
          f"{diff:.2e}")
    rows = [{"way": name, "cold_s": cold[name], "warm_s": statistics.median(warm[name])} for name, _ in ways]
    print(f"| way | cold, with compile (s) | warm, median of {args.repeats} (s) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['way']} | {r['cold_s']:.2f} | {r['warm_s']:.2f} |")
    speedup_cold = cold["one after another"] / cold["one program"]
    speedup_warm = rows[0]["warm_s"] / rows[1]["warm_s"]
    print(f"speed-up one program / one after another: {timing.ratio_text(speedup_cold, monitor)} cold, "
          f"{timing.ratio_text(speedup_warm, monitor)} warm (training and held-out scoring)")
    print("held-out score per setting (mean over seeds): " + ", ".join(
        f"lr {s.learning_rate:g} wu {s.warmup_ratio:g}: {m:.2f}" for s, m in zip(settings, means)))
    print(f"chosen: lr {chosen.learning_rate:g}, warm-up ratio {chosen.warmup_ratio:g}, {chosen.epochs} epochs "
          f"(held-out {means[best]:.2f})")
    print(f"validation {task.metric_names[0]}, mean of {args.final_seeds} seeds on the full training set: "
          f"search's choice {quality['chosen']:.2f}, fixed protocol (lr {args.fixed_lr:g}, no warm-up) "
          f"{quality['fixed']:.2f}")
    if timing.load_note(monitor):
        print(timing.load_note(monitor))
    return {"rows": rows, "speedup_cold": speedup_cold, "speedup_warm": speedup_warm, "max_logit_diff": diff,
            "members": len(seeds), "chosen": dataclasses.asdict(chosen), "quality": quality,
            "other_cpu_share": monitor.other_share, "ratios_valid": timing.is_quiet(monitor)}
