"""Benchmark: N seeds fine-tuned in one vmapped step against the same N seeds one after another.

    python scripts/benchmark_glue.py [--seeds 10] [--task sst2] [--train 512] [--epochs 1]
        [--hidden 32] [--layers 2] [--max_length 64] [--batch_size 32] [--seed_loop vmap|map|auto]

Offline: synthetic data and a tiny random BERT (glue.run.make_offline_example), on whatever
device JAX uses (JAX_PLATFORMS=cpu for the CPU figure). Both ways run the same code
(glue.finetune.finetune), the same seeds, data and hyperparameters, in this one process: the
sequential way calls it once per seed (its step, compiled for one seed, is reused), the vmapped
way once with every seed. Each is timed cold (compiles included), then warm --repeats times,
alternating (compiled steps reused, as for every task after the first shape; median reported).
It checks that both give the same validation logits per seed, then prints the times and ratios. --seed_loop map runs the seeds of
the together-run with lax.map inside the one step instead of vmap (glue.py's default on one CPU).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vm_result_params_shape(config, params, num_labels):
    """Shapes of one seed's fine-tuned params (BERT body, pooler, classifier)."""
    import jax

    from glue import finetune

    config = config.replace(num_labels=num_labels)
    base = finetune.base_params(params)
    return jax.eval_shape(lambda b: finetune._one_seed_params(config, b, 0), base)


def main(argv=None):
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
    from glue import data, finetune, run
    from glue.tasks import get_task

    task = get_task(args.task)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, ckpt = run.make_offline_example(
            tmp, (task.name,), {"train": args.train, "validation": args.validation, "test": 8},
            hidden=args.hidden, layers=args.layers, heads=args.heads,
            intermediate=args.intermediate or None, vocab_size=args.vocab_size)
        config, params, tokenizer, _, _ = run.load_checkpoint(str(ckpt))
        ds = data.load_task(task, data_dir)
        train = data.tokenize_task(ds["train"], task, tokenizer, args.max_length)
        evals = {s: data.tokenize_task(ds[s], task, tokenizer, args.max_length)
                 for s in task.validation_splits}
    hp = finetune.HParams(batch_size=args.batch_size, epochs=args.epochs, learning_rate=args.lr)
    seeds = list(range(args.seeds))

    def vmapped():
        return finetune.finetune(config, params, train, evals, seeds, hp,
                                 num_labels=task.num_labels, seed_loop=args.seed_loop)

    def sequential():
        return [finetune.finetune(config, params, train, evals, [s], hp,
                                  num_labels=task.num_labels, seed_loop=args.seed_loop) for s in seeds]

    def timed(fn):
        t0 = time.perf_counter()
        result = fn()
        return time.perf_counter() - t0, result

    times = {}
    results = {}
    for name, fn in (("sequential", sequential), ("vmapped", vmapped)):
        times[name + "_cold"], results[name] = timed(fn)
    warm = {"sequential": [], "vmapped": []}
    for _ in range(args.repeats):  # the two ways alternate, so a change in machine load hits both
        for name, fn in (("sequential", sequential), ("vmapped", vmapped)):
            warm[name].append(timed(fn)[0])
    for name, t in warm.items():
        times[name + "_warm"] = statistics.median(t)
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
    for name in ("sequential", "vmapped"):
        print(f"| {name} | {times[name + '_cold']:.2f} | {times[name + '_warm']:.2f} |")
    cold = times["sequential_cold"] / times["vmapped_cold"]
    warm = times["sequential_warm"] / times["vmapped_warm"]
    print(f"speed-up vmapped / sequential: {cold:.2f}x cold, {warm:.2f}x warm")
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(vm_result_params_shape(
        config, params, task.num_labels)))
    print(f"params per seed: {n_params:,}; params + grads + Adam mu + nu in float32: "
          f"{16 * n_params / 1e9:.3f} GB per seed, {16 * n_params * args.seeds / 1e9:.2f} GB for "
          f"{args.seeds} seeds (activations not included)")
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        print(f"measured peak device memory (whole run): {stats['peak_bytes_in_use'] / 1e9:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
