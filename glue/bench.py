"""The GLUE benchmarks (docs/benchmarks.md): seeds fine-tuned together against one after another, and
the micro-benchmark of one gradient step behind the choice of `seed_loop`.

    python scripts/benchmark_glue.py [--seeds 10] [--task sst2] [--train 512] [--epochs 1]
        [--hidden 32] [--layers 2] [--max_length 64] [--batch_size 32] [--seed_loop vmap|map|auto]
    python scripts/benchmark_vmap_step.py 0.1    # dropout 0.1 (training)
    python scripts/benchmark_vmap_step.py 0.0    # no dropout

`main` (benchmark_glue): N seeds fine-tuned in one step against the same N seeds one after another.
Offline: synthetic data and a tiny random BERT (glue.synthetic.make_offline_example), on whatever
device JAX uses (JAX_PLATFORMS=cpu for the CPU figure). Both ways run the same code
(glue.finetune.finetune), the same seeds, data and hyperparameters (glue/config.py's, with the
flags' changes), in this one process: the sequential way calls it once per seed (its step, compiled
for one seed, is reused), the together way once with every seed. Each is timed cold (compiles
included), then warm --repeats times, alternating (compiled steps reused, as for every task after the
first shape; median reported). It checks that both give the same validation logits per seed, then
prints the times and ratios. --seed_loop map runs the seeds of the together-run with lax.map inside
the one step instead of vmap (finetune_glue.py's default on one CPU).

`vmap_step_main` (benchmark_vmap_step): the gradient of a tiny BERT classifier for 10 seeds, computed
four ways in one process: one seed at a time (10 calls of the one-seed step), vmapped over the seeds
(what glue.finetune does), and inside one step with `lax.map` over the seeds (sequential in XLA) or
`lax.map(batch_size=2)` (vmap over pairs). The ways alternate call by call.

Both print the share of the CPUs that other processes used while timing (numbers taken on a busy
machine are not comparable with quiet-machine ones).
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time

from jax_bert.bench import timing


def params_shape(config, params, num_labels):
    """Shapes of one seed's fine-tuned params (BERT body, pooler, classifier)."""
    import jax

    from glue import finetune

    config = config.replace(num_labels=num_labels)
    base = finetune.base_params(params)
    return jax.eval_shape(lambda b: finetune._one_seed_params(config, b, 0), base)


def main(argv=None) -> dict:
    """benchmark_glue's command line; returns what it printed as numbers (the tests read it)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")

    import jax
    import numpy as np

    if args.matmul_precision:
        jax.config.update("jax_default_matmul_precision", args.matmul_precision)
    from glue import config as glue_config
    from glue import data, finetune, run, synthetic
    from glue.tasks import get_task

    task = get_task(args.task)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, ckpt = synthetic.make_offline_example(
            tmp, (task.name,), {"train": args.train, "validation": args.validation, "test": 8},
            hidden=args.hidden, layers=args.layers, heads=args.heads,
            intermediate=args.intermediate or None, vocab_size=args.vocab_size)
        config, params, tokenizer, _, _ = run.load_checkpoint(str(ckpt))
        ds = data.load_task(task, data_dir)
        train = data.tokenize_task(ds["train"], task, tokenizer, args.max_length)
        evals = {s: data.tokenize_task(ds[s], task, tokenizer, args.max_length)
                 for s in task.validation_splits}
    hp = finetune.HParams.from_config(glue_config.get_config(), task.name, batch_size=args.batch_size,
                                      epochs=args.epochs, learning_rate=args.lr)
    seeds = list(range(args.seeds))

    def together():
        return finetune.finetune(config, params, train, evals, seeds, hp,
                                 num_labels=task.num_labels, seed_loop=args.seed_loop)

    def sequential():
        return [finetune.finetune(config, params, train, evals, [s], hp,
                                  num_labels=task.num_labels, seed_loop=args.seed_loop) for s in seeds]

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
    print(f"device: {jax.devices()[0].platform} x{jax.device_count()}; task {task.name}, "
          f"{args.train} train examples, {steps} steps per seed, batch {args.batch_size}, "
          f"length {args.max_length}, lr {args.lr}, BERT hidden {args.hidden} x {args.layers} "
          f"layers, matmul precision {args.matmul_precision or 'default'}, seed loop {args.seed_loop}")
    print(f"{args.seeds} seeds, max |logit difference| vmapped vs alone: {diff:.2e}")
    print(f"| way | cold, with compile (s) | warm, median of {args.repeats} (s) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['way']} | {r['cold_s']:.2f} | {r['warm_s']:.2f} |")
    speedup_cold = cold["sequential"] / cold["vmapped"]
    speedup_warm = rows[0]["warm_s"] / rows[1]["warm_s"]
    print(f"speed-up vmapped / sequential: {speedup_cold:.2f}x cold, {speedup_warm:.2f}x warm")
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
            "speedup_warm": speedup_warm, "params_per_seed": n_params, "other_cpu_share": monitor.other_share}


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
              f"speed-up vs one at a time {base / m:.2f}x")
    if timing.load_note(monitor):
        print(timing.load_note(monitor))
    return rows


def vmap_step_main(argv=None) -> list[dict]:
    """benchmark_vmap_step's command line: one optional argument, the dropout rate (default 0.1)."""
    argv = sys.argv[1:] if argv is None else argv
    return vmap_step(float(argv[0]) if argv else 0.1)
