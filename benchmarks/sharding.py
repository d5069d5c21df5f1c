"""What each mesh axis costs per device: the train step compiled for several meshes of fake CPU
devices, XLA's memory and FLOPs side by side, each against the first mesh (data parallelism).

    python scripts/benchmark_sharding.py --preset base --length 512 --devices 8 --per_device 8 \\
        --meshes 8,1,1 1,8,1 4,1,2 --recipes dense,rigl80_kd
    python scripts/benchmark_sharding.py --preset base --length 512 --devices 64 --per_device 4 \\
        --meshes 64,1,1 1,64,1 --recipes dense

Nothing runs and nothing is allocated: each step is lowered with abstract inputs and compiled
(jax_bert.train.step_cost), which takes seconds to a minute per mesh at BERT-base shapes. `--per_device`
is the rows of the micro-batch per batch shard (data x fsdp devices), so fsdp and data parallelism
compare at the same per-device batch; a tensor axis splits the work on those rows between its devices.

Recipes: dense; static80 (the original's 80% layout, static masks); rigl80 (plus RigL every 100 steps);
rigl80_kd (plus distillation from a same-size float32 teacher: configs/rigl80.py's recipe); kd (dense,
distilled). For each row the table shows the temporaries' allowance of fsdp over data parallelism
(`step_cost.fsdp_temp_allowance`: what gathering one unit of params at a time may add).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks import presets, pretraining, timing
from jax_bert import files, model
from jax_bert.data import mlm_batches
from jax_bert.model import BertConfig
from jax_bert.train import optim, sharding, step_cost
from jax_bert.train import step as train_step

RECIPES = ("dense", "static80", "rigl80", "rigl80_kd", "kd")
MIB = 2 ** 20


def build(cfg: BertConfig, recipe: str, mesh):
    """(program, abstract teachers) of one recipe for the model `cfg` on `mesh`, as the loop builds them."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; use one of {RECIPES}.")
    config = pretraining.run_config(100_000, sparse=recipe not in ("dense", "kd"), rigl=recipe.startswith("rigl"))
    tx = optim.make_train_optimizer(config, model.abstract_params(cfg))
    teachers = [step_cost.abstract_teacher(cfg, mesh)] if recipe.endswith("kd") else []
    program = train_step.build(cfg, tx, mesh, teachers=teachers,
                               distill=train_step.Distillation(total_steps=int(config.train.steps)))
    return program, teachers


def measure(cfg: BertConfig, recipe: str, mesh_sizes, *, per_device: int, length: int, devices=None) -> dict:
    """One row: the step of `recipe` for the model `cfg`, compiled for a (data, fsdp, tensor) mesh over
    `devices` (default: all), `per_device` rows per batch shard."""
    mesh = sharding.mesh_of(mesh_sizes, devices)
    program, teachers = build(cfg, recipe, mesh)
    rows = per_device * sharding.batch_shards(mesh)
    slots = mlm_batches.max_predictions(length, pretraining.MLM_PROBABILITY)
    compiled, seconds = step_cost.compile_train_step(program, mesh, teachers, rows=rows, length=length,
                                                     slots=slots)
    cost = step_cost.cost_of(compiled, seconds)
    allowance = step_cost.fsdp_temp_allowance(cfg, [t.config for t in teachers])
    return {"recipe": recipe, "mesh": dict(mesh.shape), "global_rows": rows, "per_device": per_device,
            "length": length, "scan_layers": cfg.scan_layers, "fsdp_allowance_bytes": allowance, **cost.as_dict()}


def _mesh_label(mesh: dict) -> str:
    return " x ".join(f"{k} {v}" for k, v in mesh.items() if v > 1) or "one device"


def print_rows(rows: list[dict]) -> None:
    by_recipe: dict[str, dict] = {}
    table = []
    for r in rows:
        ref = by_recipe.setdefault(r["recipe"], r)
        table.append({"recipe": r["recipe"], "mesh": _mesh_label(r["mesh"]), "rows": r["per_device"],
                      "args": r["argument_bytes"] / MIB, "temps": r["temp_bytes"] / MIB,
                      "temps_vs": r["temp_bytes"] / ref["temp_bytes"], "flops": r["flops"] / 1e12,
                      "flops_vs": r["flops"] / ref["flops"], "allow": r["fsdp_allowance_bytes"] / MIB,
                      "gathers": r["collectives"]["all-gather"], "reduces": r["collectives"]["all-reduce"],
                      "compile": r["compile_seconds"]})
    timing.print_table(table, [("recipe", "recipe", ""), ("mesh", "mesh", ""), ("rows", "rows/shard", "{}"),
                               ("args", "args MiB/dev", "{:,.0f}"), ("temps", "temps MiB/dev", "{:,.0f}"),
                               ("temps_vs", "temps vs first", "{:.2f}x"), ("flops", "TFLOP/dev (XLA)", "{:.3f}"),
                               ("flops_vs", "FLOPs vs first", "{:.3f}x"), ("allow", "fsdp allowance MiB", "{:,.0f}"),
                               ("gathers", "all-gathers", "{}"), ("reduces", "all-reduces", "{}"),
                               ("compile", "compile s", "{:.1f}")])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=tuple(presets.ARCHITECTURES), default="base")
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--devices", type=int, default=8, help="fake CPU devices (set before JAX starts)")
    p.add_argument("--per_device", type=int, default=8, help="rows of the micro-batch per batch shard")
    p.add_argument("--meshes", nargs="+", default=["8,1,1", "1,8,1", "4,1,2"],
                   help="data,fsdp,tensor sizes of each mesh; the first is the reference")
    p.add_argument("--recipes", default="dense,rigl80_kd", help=f"comma-separated subset of {','.join(RECIPES)}")
    p.add_argument("--unrolled", action="store_true", help="unrolled layers instead of scan_layers")
    p.add_argument("--out", default=None, help="write the rows as JSON to this file")
    args = p.parse_args(argv)
    args.recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    if not args.recipes or set(args.recipes) - set(RECIPES):
        p.error(f"--recipes takes a comma-separated subset of {','.join(RECIPES)}, got {args.recipes}")
    meshes = []
    for text in args.meshes:
        try:
            sizes = tuple(int(x) for x in text.split(","))
        except ValueError:
            sizes = ()
        if len(sizes) != 3 or min(sizes) < 1 or sizes[0] * sizes[1] * sizes[2] > args.devices:
            p.error(f"--meshes takes data,fsdp,tensor sizes >= 1 using at most --devices {args.devices} "
                    f"devices, got {text!r}")
        meshes.append(sizes)
    args.meshes = meshes
    for name in ("length", "devices", "per_device"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    timing.use_cpu_devices(args.devices)
    env = timing.environment()
    print(f"{env['date']}  jax {env['jax']}, {env['device_count']} {env['device_kind']} devices; preset "
          f"{args.preset}, length {args.length}, {'unrolled' if args.unrolled else 'scanned'} layers")
    cfg = presets.bert_config(args.preset, scan_layers=not args.unrolled)
    rows = []
    for recipe in args.recipes:
        for sizes in args.meshes:
            rows.append(measure(cfg, recipe, sizes, per_device=args.per_device, length=args.length))
            print(json.dumps({k: rows[-1][k] for k in ("recipe", "mesh", "temp_bytes", "flops")}), flush=True)
    print()
    print_rows(rows)
    if args.out:
        command = " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:]))
        files.atomic_write_json(args.out, {"command": command, "environment": env, "rows": rows})
        print(f"wrote {args.out}")
    return rows
