"""The planner's time model held to what this machine measures, and the planner over many clusters
(scripts/benchmark_plan.py).

    python scripts/benchmark_plan.py                     # tiny and small presets, this CPU
    python scripts/benchmark_plan.py --presets small --out plan_check.json
    python scripts/benchmark_plan.py --mode scaling --configs configs/rigl80.py,configs/rigl_4x_wide.py \
        --devices 8,64 --accelerators a100-40gb,a100-80gb,h100-80gb      # docs/scaling.md's table
    python scripts/plan.py --config configs/rigl80.py --devices 1 --accelerator h200 --json plan.json
    python scripts/benchmark_plan.py --mode device --configs configs/rigl80.py --plan plan.json   # on the GPU

--mode device runs a config's real train step on this machine's first device (random params and
teachers, a synthetic batch of the recipe's shape; one device, no data, no checkpoint) and sets the
measured step time and peak device memory beside the plan's projection (the --plan JSON that
scripts/plan.py --json wrote for one device, or, without --plan, the plan made here on --accelerator):
projected at peak (MFU 1) and at --mfu against measured seconds per step, so measured MFU = projected at
peak / measured; the compiled peak the plan counts against the allocator's peak (memory_stats; absent
on the CPU).

--mode scaling compiles each config for each device count on the data-parallel mesh (data N) and on
fsdp (fsdp N), each with more accumulation in {1, 2, 4, 8}, then remat, until every accelerator has a
plan that fits (skipping, as --search does, what the extrapolated peak rules out); each compiled plan
is projected on every accelerator (the compile does not depend on it), and the table shows, per
accelerator, the fastest plan that fits. One process with as many fake CPU devices as the largest
count; the compile time of each plan is printed.

This CPU's peak is measured in the same run, by a float32 matmul (the best of several, all cores): the
time model's compute term, the step's analytical FLOPs / that peak, is then the step time at MFU 1.
Each preset's dense train step (benchmarks/pretraining.py's Engine: the loop's own step builder, one
device, float32, synthetic batch) is timed after warm-up; measured / projected-at-peak is this CPU's
MFU, the number to put in `--mfu` for a projection on this machine. The same run prints XLA's FLOPs of
each compiled step against the analytical count (planner: loop bodies counted once).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import pretraining, timing
from jax_bert import files
from jax_bert.data import mlm_batches
from jax_bert.plan import flops as flop_counts
from jax_bert.train import sharding
from jax_bert.train import step as train_step


def matmul_peak(n: int = 1024, repeats: int = 20) -> float:
    """FLOP/s of the fastest of `repeats` float32 [n, n] x [n, n] matmuls (jitted, 4 chained per call)."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32))

    @jax.jit
    def four(x):
        for _ in range(4):
            x = x @ a * (1.0 / n)
        return x

    jax.block_until_ready(four(a))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(four(a))
        best = min(best, time.perf_counter() - start)
    return 4 * 2 * n**3 / best


def check_preset(preset: str, peak: float, steps: int) -> dict:
    d = pretraining.RUN_DEFAULTS[preset]
    cfg = pretraining.model_config(preset)
    batch_np, _ = pretraining.synthetic_batch(d["batch"], d["length"], cfg.vocab_size, 0)
    engine = pretraining.Engine(cfg, sharding.mesh_of((1, 1, 1)), batch_np)
    compile_s = engine.compile()
    timing.time_steps(engine.step, 2)
    measured = statistics.median(timing.time_steps(engine.step, steps))
    slots = mlm_batches.max_predictions(d["length"], pretraining.MLM_PROBABILITY)
    analytical = flop_counts.step_flops(cfg, (), rows=d["batch"], seq_len=d["length"], slots=slots)["total"]
    cost = engine.compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    as_xla = flop_counts.as_xla_counts(cfg, (), micro_rows=d["batch"], seq_len=d["length"], slots=slots)
    projected = analytical / peak
    return {"preset": preset, "length": d["length"], "batch": d["batch"], "analytical_flops": analytical,
            "xla_flops": float(cost.get("flops", 0.0)), "xla_over_analytical": float(cost.get("flops", 0.0)) / as_xla,
            "projected_at_peak_s": projected, "measured_s": measured, "mfu": projected / measured,
            "compile_s": compile_s}


def check_device(config_path: str, *, plan_path: str | None, accelerator: str, mfu: float, steps: int,
                 accum_steps: int | None = None) -> dict:
    """The plan of `config_path` on one device against its train step run on this machine's first device
    (the module docstring)."""
    from jax_bert.plan import accelerators, planner
    from jax_bert.plan.recipe import recipe_of, with_changes
    from jax_bert.train.config import load_config_file

    name, _, arg = config_path.partition(":")
    config = load_config_file(name).get_config(*([arg] if arg else []))
    if accum_steps is not None:
        config = with_changes(config, accum_steps=accum_steps)
    config_dir = os.path.dirname(os.path.abspath(name))
    device = jax.devices()[0]
    if plan_path:
        if not os.path.isfile(plan_path):
            raise ValueError(f"--plan {plan_path}: no such file; write it with scripts/plan.py --config {config_path} "
                             f"--devices 1 --json {plan_path}.")
        plan = files.read_json(plan_path)
        plan = plan.get("plan", plan)
        if plan.get("devices") != 1 or "projection" not in plan or (
                accum_steps is not None and plan.get("accum_steps") != accum_steps):
            raise ValueError(f"{plan_path}: not a compiled one-device plan; write it with scripts/plan.py "
                             f"--config {config_path} --devices 1 --json {plan_path} (and "
                             f"--config.train.grad_accum_steps as --accum_steps).")
    else:
        plan = planner.plan(config, (1, 1, 1), accelerators.accelerator(accelerator), devices=[device], mfu=mfu,
                            config_dir=config_dir)
    recipe = recipe_of(config, config_dir)
    mesh = sharding.mesh_of((1, 1, 1), [device])
    program, _ = planner.build(recipe, mesh)
    teachers = [pretraining.make_teacher(t, mesh, t.dtype, seed=1 + i) for i, t in enumerate(recipe.teachers)]
    batch = _synthetic_batch(mesh, recipe)
    state = program.init_state()
    start = time.perf_counter()
    compiled = program.train_step.lower(state, batch, [t.params for t in teachers]).compile()
    compile_s = time.perf_counter() - start

    def run(n):  # n steps dispatched back to back, one sync (throughput, as a training loop runs)
        nonlocal state
        begin = time.perf_counter()
        for _ in range(n):
            state, metrics = compiled(state, batch, [t.params for t in teachers])
        jax.block_until_ready((state, metrics))
        return (time.perf_counter() - begin) / n, float(metrics["loss"])

    run(2)
    measured_s, loss = run(steps)
    stats = device.memory_stats() or {}
    proj = plan["projection"]
    out = {"config": config_path, "device": f"{device.device_kind} ({jax.default_backend()})",
           "accelerator": plan["accelerator"], "rows": recipe.global_rows, "seq_len": recipe.seq_len,
           "accum_steps": recipe.accum_steps, "projected_at_peak_s": proj["compute_s"],
           "projected_at_mfu_s": proj["at_mfu_s"], "mfu": proj["mfu"], "roofline_s": proj["roofline_s"],
           "measured_s": measured_s, "measured_mfu": proj["compute_s"] / measured_s,
           "tokens_per_s": recipe.global_rows * recipe.seq_len / measured_s,
           "planned_peak_bytes": int(plan["compiled_bytes"]["peak"]),
           "planned_state_bytes": int(plan["state_total_bytes"]),
           "measured_peak_bytes": stats.get("peak_bytes_in_use"), "compile_s": compile_s, "loss": loss}
    return out


def _synthetic_batch(mesh, recipe) -> dict:
    """A batch of the recipe's shape: random tokens and masked positions, every slot weighted."""
    rng = np.random.default_rng(0)
    vocab = recipe.model.vocab_size
    shape = (recipe.accum_steps, recipe.micro_rows)
    batch = {"input_ids": rng.integers(0, vocab, (*shape, recipe.seq_len), dtype=np.int32),
             "attention_mask": np.ones((*shape, recipe.seq_len), np.int32),
             "token_type_ids": np.zeros((*shape, recipe.seq_len), np.int32),
             "masked_positions": np.sort(rng.integers(0, recipe.seq_len, (*shape, recipe.slots)), -1).astype(np.int32),
             "masked_labels": rng.integers(0, vocab, (*shape, recipe.slots), dtype=np.int32),
             "masked_weights": np.ones((*shape, recipe.slots), np.float32)}
    assert set(batch) == set(train_step.BATCH_KEYS), "the step's batch keys changed"
    return sharding.place_batch(batch, mesh, leading_axes=1)


def device_table(r: dict) -> str:
    gb = lambda b: "n/a (no allocator statistics)" if b is None else f"{b / 1e9:.2f} GB"  # noqa: E731
    memory_ratio = "" if r["measured_peak_bytes"] is None else (
        f" (measured / planned {r['measured_peak_bytes'] / r['planned_peak_bytes']:.2f})")
    return "\n".join([
        f"{r['config']} on {r['device']}, planned for {r['accelerator']}: {r['rows']} x {r['seq_len']} tokens per "
        f"step (accumulation {r['accum_steps']}), compiled here in {r['compile_s']:.0f} s, loss {r['loss']:.3f}",
        f"  step time: projected {r['projected_at_peak_s']:.4f} s at peak, {r['projected_at_mfu_s']:.4f} s at MFU "
        f"{r['mfu']:.2f}; measured {r['measured_s']:.4f} s (measured MFU {r['measured_mfu']:.1%}, "
        f"{r['tokens_per_s']:,.0f} tokens/s; measured / projected at MFU "
        f"{r['measured_s'] / r['projected_at_mfu_s']:.2f})",
        f"  peak memory: planned {gb(r['planned_peak_bytes'])} (state {gb(r['planned_state_bytes'])}); measured "
        f"{gb(r['measured_peak_bytes'])}{memory_ratio}"])


def scaling(configs: list[str], device_counts: list[int], accelerator_names: list[str], mfu: float) -> list[dict]:
    """Rows of docs/scaling.md: per config, device count and accelerator, the fastest fitting plan of
    those compiled (see the module docstring)."""
    from jax_bert.plan import accelerators, planner
    from jax_bert.train.config import load_config_file

    accs = [accelerators.accelerator(a) for a in accelerator_names]
    rows = []
    for path in configs:
        name, _, arg = path.partition(":")
        config = load_config_file(name).get_config(*([arg] if arg else []))
        config_dir = os.path.dirname(os.path.abspath(name))
        for n in device_counts:
            measured = []
            for mesh in ((n, 1, 1), (1, n, 1)):
                measured += _mesh_plans(config, config_dir, path, mesh, accs, mfu)
            for acc in accs:
                plans = [planner.project(m, acc, mfu=mfu) for m in measured]
                fitting = sorted((p for p in plans if p["fits"]), key=lambda p: p["projection"]["at_mfu_s"])
                best = fitting[0] if fitting else None
                rows.append({"config": path, "devices": n, "accelerator": acc.name, "plan": best,
                             "compile_seconds": [m["compile_seconds"] for m in measured]})
    return rows


def _mesh_plans(config, config_dir: str, path: str, mesh, accs, mfu: float) -> list[dict]:
    """The measured plans of one mesh: accumulation 1, 2, 4, 8, then with remat, until every accelerator
    whose budget holds the state has a plan that fits; as the search does, an accumulation whose peak
    extrapolated from the two before it is over every waiting accelerator's budget is not compiled, nor
    remat when the peak without activations is."""
    from jax_bert.plan import planner, recipe, report

    plans = []

    def waiting(state_only) -> list:
        return [a for a in accs if planner.project(state_only, a)["fits"] is None
                and not any(planner.project(m, a, mfu=mfu)["fits"] for m in plans)]

    for remat in (False, True):
        peaks, budget = [], 0
        for accum in planner.ACCUMULATION:
            changed = recipe.with_changes(config, accum_steps=accum, remat=remat, mesh=mesh)
            if not planner.splits(changed, mesh):
                continue
            state_only = planner.measure(changed, mesh, config_dir=config_dir, compile_step=False)
            left = waiting(state_only)
            if not left:
                return plans  # each accelerator fits a plan already, or not even the state
            budget = max(planner.project(state_only, a)["budget_bytes"] for a in left)
            if len(peaks) >= 2 and planner.predicted_peak(peaks, accum) > 1.05 * budget:
                continue
            m = planner.measure(changed, mesh, config_dir=config_dir)
            plans.append(m)
            peaks.append((accum, m["compiled_bytes"]["peak"]))
            print(f"{path} on {math.prod(mesh)}: {report.mesh_text(m['mesh'])}, accumulation {accum}, remat "
                  f"{'on' if remat else 'off'}: peak {report.gib(m['compiled_bytes']['peak'])}, "
                  f"compiled in {m['compile_seconds']:.0f} s", flush=True)
        if len(peaks) >= 2 and planner.predicted_peak(peaks, math.inf) > 1.05 * budget:
            break  # what no micro-batch shrinks is over the budget: remat cannot help
    return plans


def scaling_table(rows: list[dict]) -> str:
    from jax_bert.plan import report

    lines = ["| config | GPUs | accelerator | fits | best mesh (data x fsdp x tensor), accumulation, remat | "
             "peak per GPU | projected tokens/s | projected run (the config's steps) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["plan"]
        if p is None:
            lines.append(f"| {r['config']} | {r['devices']} | {r['accelerator']} | no | - | - | - | - |")
            continue
        m, t = p["mesh"], p["projection"]
        lines.append(f"| {r['config']} | {r['devices']} | {r['accelerator']} | yes | {m['data']} x {m['fsdp']} x "
                     f"{m['tensor']}, {p['accum_steps']}, {'on' if p['remat'] else 'off'} | "
                     f"{report.gib(p['compiled_bytes']['peak'])} | {t['tokens_per_s']:,.0f} | "
                     f"{report.duration(t['run_s'])} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("cpu", "scaling", "device"), default="cpu")
    p.add_argument("--configs", default="configs/rigl80.py",
                   help="--mode scaling: comma-separated config files; --mode device: one")
    p.add_argument("--plan", default=None, help="--mode device: scripts/plan.py's --json of the config, one device")
    p.add_argument("--accelerator", default="h200", help="--mode device without --plan: the plan's accelerator")
    p.add_argument("--accum_steps", type=int, default=None, help="--mode device: the config's gradient accumulation")
    p.add_argument("--devices", default="8,64", help="--mode scaling: comma-separated device counts")
    p.add_argument("--accelerators", default="a100-40gb,a100-80gb,h100-80gb", help="--mode scaling")
    p.add_argument("--mfu", type=float, default=0.4, help="--mode scaling: the MFU of the projections")
    p.add_argument("--presets", default="tiny,small", help="comma-separated presets of benchmarks/presets.py")
    p.add_argument("--steps", type=int, default=10, help="timed steps per preset (after 2 of warm-up)")
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = p.parse_args(argv)
    if args.mode == "scaling":
        counts = [int(x) for x in args.devices.split(",")]
        timing.use_cpu_devices(max(counts))
        rows = scaling([c for c in args.configs.split(",") if c], counts, args.accelerators.split(","), args.mfu)
        print(scaling_table(rows))
        if args.out:
            files.atomic_write_json(args.out, {"environment": timing.environment(), "rows": rows})
        return {"rows": rows}
    if args.mode == "device":
        if args.steps < 1:
            p.error(f"--steps must be >= 1, got {args.steps}")
        try:
            result = check_device(args.configs, plan_path=args.plan, accelerator=args.accelerator, mfu=args.mfu,
                                  steps=args.steps, accum_steps=args.accum_steps)
        except (OSError, ValueError) as e:
            p.error(str(e))
        print(device_table(result))
        if args.out:
            files.atomic_write_json(args.out, {"environment": timing.environment(), **result})
        return result
    presets = [x.strip() for x in args.presets.split(",") if x.strip()]
    unknown = [x for x in presets if x not in pretraining.RUN_DEFAULTS]
    if unknown or not presets:
        p.error(f"--presets takes a subset of {','.join(pretraining.RUN_DEFAULTS)}, got {args.presets!r}")
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    env = timing.environment()
    with timing.CpuMonitor() as monitor:
        peak = matmul_peak()
        rows = [check_preset(preset, peak, args.steps) for preset in presets]
    print(f"{env['date']}  jax {env['jax']}, {env['usable_cpus']} usable CPUs; this CPU's float32 matmul peak "
          f"{peak / 1e9:,.1f} GFLOP/s (measured in this run)")
    timing.print_table(rows, [("preset", "preset", ""), ("length", "length", "{}"), ("batch", "batch", "{}"),
                              ("analytical_flops", "GFLOP/step", "{:.3g}"),
                              ("xla_over_analytical", "XLA / analytical", "{:.3f}"),
                              ("projected_at_peak_s", "projected at peak s", "{:.4f}"),
                              ("measured_s", "measured s", "{:.4f}"), ("mfu", "this CPU's MFU", "{:.1%}"),
                              ("compile_s", "compile s", "{:.1f}")])
    note = timing.load_note(monitor)
    if note:
        print(note)
    result = {"environment": env, "peak_flops": peak, "rows": rows, "other_cpu_share": monitor.other_share}
    if args.out:
        files.atomic_write_json(args.out, result)
        print(f"wrote {args.out}")
    return result
