"""One plan: a config's real train step (step.build: masks, RigL, teachers, accumulation) lowered
with abstract inputs for a (data, fsdp, tensor) mesh of the devices at hand (fake CPU devices stand in
for a cluster) and compiled; nothing is allocated. The plan reads the state's bytes from the shardings,
the compiled memory, FLOPs and collectives from XLA, and projects the step on an accelerator.

Memory comes from XLA's CPU compiler (this installation has no GPU compiler to compile for a GPU it does
not have): its buffer assignment and fusions are not a GPU's, and it all-reduces what a GPU would
reduce-scatter, so its temporaries for fsdp are larger than a GPU's. Read the peak as an estimate.
Beside it the plan gives an activation model (activations.py): the bytes the backward pass keeps per
device, from the model's shapes and the remat setting, checked against XLA:CPU's temporaries on tiny
shapes (tests/plan/test_activations.py); both are in the output, each named.
"""
from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import time
from typing import Sequence

import jax
import ml_collections

from jax_bert import model
from jax_bert.plan import activations, hlo, projection
from jax_bert.plan import flops as flop_counts
from jax_bert.plan import state as state_bytes
from jax_bert.plan.accelerators import Accelerator
from jax_bert.plan.recipe import Recipe, recipe_of, with_changes
from jax_bert.train import optim, sharding, step_cost
from jax_bert.train import step as train_step

ACTIVATION_MODEL = ("activation model: what the backward pass keeps per device (layer inputs, attention "
                    "probabilities, GELU and layernorm inputs, dropout masks, logits) from the shapes and the "
                    "remat setting; not XLA's fusion, buffer reuse or transient temporaries")
MEMORY_MODEL = ("XLA:CPU's memory analysis of the step compiled for fake CPU devices (no GPU compiler "
                "here); a GPU's buffers differ, and XLA:CPU all-reduces what a GPU reduce-scatters")
ACCUMULATION = (1, 2, 4, 8)
# A plan reads XLA's buffer assignment, cost analysis and optimised HLO, all fixed before the CPU backend
# turns the kernels into machine code; the program never runs, so LLVM need not optimise that code. On
# rigl_4x_wide for 64 devices LLVM's optimisation was about half of a compile (docs/scaling.md), and
# tests/plan hold memory, FLOPs and collectives equal to a default compile's.
ANALYSIS_ONLY = {"xla_backend_optimization_level": 0}


def mesh_sizes(config: ml_collections.ConfigDict, devices: int) -> tuple[int, int, int]:
    """The config's mesh on `devices` devices (its -1 filled)."""
    sizes = [int(config.mesh[a]) for a in sharding.MESH_AXES]
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        if devices % known:
            raise ValueError(f"the config's mesh {dict(zip(sharding.MESH_AXES, sizes))} does not divide {devices} "
                             f"devices; give --mesh D,F,T.")
        sizes[sizes.index(-1)] = devices // known
    if math.prod(sizes) != devices:
        raise ValueError(f"mesh {tuple(sizes)} uses {math.prod(sizes)} devices, not {devices}; give --mesh D,F,T "
                         f"with data x fsdp x tensor = {devices}.")
    return tuple(sizes)


def build(recipe: Recipe, mesh):
    """(program, abstract teachers) of a recipe on a mesh, as the pretraining loop builds them."""
    t = recipe.config.train
    micro = recipe.micro_rows
    if recipe.global_rows % recipe.accum_steps or micro % sharding.batch_shards(mesh):
        raise ValueError(f"the micro-batch of {recipe.global_rows} / {recipe.accum_steps} rows does not split over "
                         f"data x fsdp = {sharding.batch_shards(mesh)} shards.")
    tx = optim.make_train_optimizer(recipe.config, model.abstract_params(recipe.model))
    teachers = [step_cost.abstract_teacher(cfg, mesh) for cfg in recipe.teachers]
    program = train_step.build(recipe.model, tx, mesh, seed=int(t.seed), teachers=teachers,
                               distill=train_step.Distillation.from_config(recipe.config.distill, recipe.steps))
    return program, teachers


def activation_model(recipe: Recipe, sizes: Sequence[int]) -> dict:
    """The activation model's bytes per device for one micro-batch of the recipe on a (data, fsdp, tensor)
    mesh: {layers, head, total, rows_per_device, description}."""
    data, fsdp, tensor = sizes
    rows = recipe.micro_rows // (data * fsdp)
    shapes = activations.shapes_of(recipe.model, seq_len=recipe.seq_len, slots=recipe.slots,
                                   teachers=len(recipe.teachers))
    kept = activations.kept_bytes(shapes, rows, tensor=tensor, remat=bool(recipe.model.remat))
    return {**kept, "rows_per_device": rows, "description": ACTIVATION_MODEL}


def planned_state(program, teachers, recipe: Recipe, mesh) -> dict[str, int]:
    """Bytes per device of the state, the teachers' params and one step's batch, from the shardings."""
    out = state_bytes.state_bytes(program.abstract_state, program.shardings)
    out["teachers"] = sum(state_bytes.tree_bytes(t.params) for t in teachers)
    out["batch"] = state_bytes.tree_bytes(step_cost.abstract_batch(
        mesh, rows=recipe.micro_rows, length=recipe.seq_len, slots=recipe.slots, accum_steps=recipe.accum_steps))
    return out


def plan(config: ml_collections.ConfigDict, sizes: Sequence[int], acc: Accelerator, *, devices=None,
         mfu: float = 0.4, reserve: float = 0.1, config_dir: str = "configs", compile_step: bool = True) -> dict:
    """Every figure of one plan (bytes as integers). compile_step=False: the state only (no compile)."""
    measured = measure(config, sizes, devices=devices, config_dir=config_dir, compile_step=compile_step)
    return project(measured, acc, mfu=mfu, reserve=reserve)


def measure(config: ml_collections.ConfigDict, sizes: Sequence[int], *, devices=None, config_dir: str = "configs",
            compile_step: bool = True) -> dict:
    """What does not depend on the accelerator: the state's bytes and, compiled, XLA's memory, FLOPs and
    collectives (the collectives themselves under "_collectives", for `project`)."""
    recipe = recipe_of(config, config_dir)
    devices = list(jax.devices() if devices is None else devices)[: math.prod(sizes)]
    mesh = sharding.mesh_of(sizes, devices)
    program, teachers = build(recipe, mesh)
    state = planned_state(program, teachers, recipe, mesh)
    m = recipe.model
    out = {"mesh": dict(zip(sharding.MESH_AXES, (int(s) for s in sizes))), "devices": len(devices),
           "accum_steps": recipe.accum_steps, "remat": bool(m.remat),
           "model": {"hidden_size": m.hidden_size, "intermediate_size": m.intermediate_size,
                     "num_hidden_layers": m.num_hidden_layers, "num_attention_heads": m.num_attention_heads,
                     "vocab_size": m.vocab_size, "dtype": m.dtype, "scan_layers": m.scan_layers,
                     "params": train_step.count_params(program.abstract_state["params"]),
                     "teachers": [{"hidden_size": t.hidden_size, "num_hidden_layers": t.num_hidden_layers,
                                   "params": train_step.count_params(model.abstract_params(t)), "dtype": t.dtype}
                                  for t in recipe.teachers]},
           "notes": list(recipe.notes),
           "batch": {"global_rows": recipe.global_rows, "seq_len": recipe.seq_len, "slots": recipe.slots,
                     "micro_rows_per_shard": recipe.micro_rows // sharding.batch_shards(mesh)},
           "state_bytes": state, "state_total_bytes": sum(state.values()), "steps": recipe.steps,
           "activation_model": activation_model(recipe, sizes)}
    if not compile_step:
        return out

    start = time.perf_counter()
    compiled, _ = step_cost.compile_train_step(program, mesh, teachers, rows=recipe.micro_rows, length=recipe.seq_len,
                                               slots=recipe.slots, accum_steps=recipe.accum_steps,
                                               compiler_options=ANALYSIS_ONLY)
    cost = step_cost.cost_of(compiled, time.perf_counter() - start)
    out["compile_seconds"] = cost.compile_seconds
    compiled_bytes = {"arguments": cost.argument_bytes, "outputs": cost.output_bytes, "aliased": cost.alias_bytes,
                      "temporaries": cost.temp_bytes}
    compiled_bytes["peak"] = (compiled_bytes["arguments"] + compiled_bytes["outputs"] - compiled_bytes["aliased"]
                              + compiled_bytes["temporaries"])
    out["compiled_bytes"], out["memory_model"] = compiled_bytes, MEMORY_MODEL

    n = len(devices)
    analytical = flop_counts.step_flops(m, recipe.teachers, rows=recipe.global_rows, seq_len=recipe.seq_len,
                                        slots=recipe.slots)
    as_xla = flop_counts.as_xla_counts(m, recipe.teachers, micro_rows=recipe.micro_rows, seq_len=recipe.seq_len,
                                       slots=recipe.slots) / n
    xla = cost.flops
    out["flops"] = {"analytical_per_device": analytical["total"] / n, "analytical_student": analytical["student"],
                    "analytical_teachers": analytical["teachers"], "xla_per_device": xla,
                    "analytical_as_xla_counts_per_device": as_xla, "xla_over_analytical": xla / as_xla}
    found, known = hlo.collectives(compiled.as_text())
    out["collectives"] = hlo.summary(found)
    out["trip_counts_known"] = known
    out["_collectives"] = found
    return out


def project(measured: dict, acc: Accelerator, *, mfu: float = 0.4, reserve: float = 0.1) -> dict:
    """A measured plan on `acc`: the projected times and whether it fits (a new dict, JSON-ready)."""
    out = {k: v for k, v in measured.items() if k != "_collectives"}
    out.update(accelerator=acc.name, reserve=reserve)
    fits_state, out["budget_bytes"] = projection.fits(out["state_total_bytes"], acc, reserve)
    if "compiled_bytes" not in out:
        out["fits"] = None if fits_state else False
        return out
    m, n = out["model"], out["devices"]
    comm = projection.communication_seconds(measured["_collectives"], n, acc)
    tensor = out["mesh"]["tensor"]
    itemsize = {"bfloat16": 2, "float32": 4}
    student_weights = m["params"] * itemsize[m["dtype"]] / tensor
    teacher_weights = sum(t["params"] * itemsize[t["dtype"]] for t in m["teachers"]) / tensor
    hbm = projection.hbm_traffic(out["state_bytes"], student_weight_bytes=student_weights,
                                 teacher_weight_bytes=teacher_weights, accum_steps=out["accum_steps"])
    times = projection.step_time(flops_per_device=out["flops"]["analytical_per_device"], dtype=m["dtype"],
                                 hbm_bytes=hbm, comm_seconds=comm["total"], acc=acc, mfu=mfu)
    times["communication_by_kind_s"] = {k: v for k, v in comm.items() if k != "total"}
    times["hbm_traffic_bytes"] = int(hbm)
    times["tokens_per_s"] = out["batch"]["global_rows"] * out["batch"]["seq_len"] / times["at_mfu_s"]
    times["run_s"] = out["steps"] * times["at_mfu_s"]
    times["run_roofline_s"] = out["steps"] * times["roofline_s"]
    out["projection"] = times
    out["fits"], _ = projection.fits(out["compiled_bytes"]["peak"], acc, reserve)
    return out


def candidate_changes(sizes: Sequence[int], config: ml_collections.ConfigDict):
    """(description, accum, remat, mesh) in the order tried for the smallest change that fits:
    more accumulation, then remat, then the data axis turned into fsdp (each with accumulation)."""
    d, f, t = (int(s) for s in sizes)
    accum0 = int(config.train.grad_accum_steps)
    remat0 = bool(config.model.remat)
    meshes = [((d, f, t), "")] + ([((1, d * f, t), f"mesh data 1 x fsdp {d * f} x tensor {t}")] if d > 1 else [])
    for mesh, mesh_text in meshes:
        for remat in ([remat0] if remat0 else [False, True]):
            for accum in ACCUMULATION:
                if accum < accum0 or (mesh_text == "" and remat == remat0 and accum == accum0):
                    continue
                parts = [mesh_text] if mesh_text else []
                parts += ["model.remat=True"] if remat and not remat0 else []
                parts += [f"train.grad_accum_steps={accum}"] if accum != accum0 else []
                yield ", ".join(parts), accum, remat, mesh


def smallest_change(config, sizes, acc: Accelerator, **kwargs) -> dict | None:
    """The first candidate change (candidate_changes' order) whose plan fits, with its plan; None if none."""
    for text, accum, remat, mesh in candidate_changes(sizes, config):
        changed = with_changes(config, accum_steps=accum, remat=remat, mesh=mesh)
        if not splits(changed, mesh):
            continue
        result = plan(changed, mesh, acc, compile_step=False, **kwargs)
        if result["fits"] is False:  # the state alone is over the budget: no accumulation or remat helps
            continue
        result = plan(changed, mesh, acc, **kwargs)
        if result["fits"]:
            return {"change": text, "plan": result}
    return None


def factorizations(devices: int, heads: int, gpus_per_node: int):
    """(data, fsdp, tensor) with data x fsdp x tensor = devices; tensor divides the heads and stays
    within one node (a tensor axis across hosts would put its all-reduces on the network)."""
    for t in range(1, devices + 1):
        if devices % t or heads % t or t > gpus_per_node:
            continue
        rest = devices // t
        for f in range(1, rest + 1):
            if rest % f == 0:
                yield rest // f, f, t


def search(config, devices: int, acc: Accelerator, log=print, workers: int = 1, **kwargs) -> list[dict]:
    """The meshes of `factorizations`, each at the least accumulation in {1, 2, 4, 8} that fits, first
    without remat, then with it (more accumulation or remat never makes a step faster in this time
    model, so the first that fits is that mesh's best); the plans sorted: fitting ones by projected
    time, then the rest.

    Compiles are what a search costs (15 to 60 s each for a wide BERT on 64 devices), so it skips three
    kinds: an accumulation whose peak, extrapolated from the two before it (peak = a + b / accumulation),
    is over the budget; remat, when a itself (the peak of no activations) is over it; and, for each
    tensor size, the meshes with less fsdp than one that fits nothing (fsdp only takes memory off a
    device). Skipped meshes are listed, marked as such.

    workers > 1 plans that many meshes at once, each in its own process (one compile uses about one
    CPU). The rows do not depend on it: a mesh that a worker compiled before the rule above could skip it
    is listed as skipped, as one worker would have."""
    heads = int(config.model.num_attention_heads)
    meshes = sorted(factorizations(devices, heads, acc.gpus_per_node), key=lambda m: (m[2], -m[1]))
    failed_fsdp: dict[int, int] = {}  # tensor size -> the largest fsdp that fitted nothing

    def skipped(mesh) -> bool:
        return mesh[2] in failed_fsdp and mesh[1] < failed_fsdp[mesh[2]]

    results = {}
    for mesh, best in _plan_meshes(config, meshes, acc, log, workers, skipped, kwargs):
        results[mesh] = best
        if best is not None and not best["fits"]:
            failed_fsdp[mesh[2]] = max(mesh[1], failed_fsdp.get(mesh[2], 0))
    rows = []
    for mesh in meshes:
        d, f, t = mesh
        if skipped(mesh):
            rows.append({"mesh": dict(zip(sharding.MESH_AXES, mesh)), "devices": devices, "fits": False,
                         "skipped": f"not compiled: fsdp {failed_fsdp[t]} with tensor {t} fitted nothing"})
        elif results.get(mesh) is not None:
            rows.append(results[mesh])
    return sorted(rows, key=lambda r: (not r["fits"], "skipped" in r,
                                       r.get("projection", {}).get("at_mfu_s", math.inf)))


def _plan_meshes(config, meshes, acc: Accelerator, log, workers: int, skipped, kwargs):
    """(mesh, its _least_that_fits) for each mesh in order that `skipped` does not rule out when its turn
    comes; with workers > 1, `workers` meshes at a time in worker processes, yielded as they finish."""
    if workers <= 1:
        for mesh in meshes:
            if not skipped(mesh):
                yield mesh, _least_that_fits(config, mesh, acc, log, **kwargs)
        return
    with _worker_pool(workers) as pool:
        queue, pending = list(meshes), {}
        while queue or pending:
            while queue and len(pending) < workers:
                mesh = queue.pop(0)
                if not skipped(mesh):
                    pending[pool.submit(_least_in_worker, config.to_dict(), mesh, acc, kwargs)] = mesh
            if not pending:
                continue
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in sorted(done, key=lambda fut: meshes.index(pending[fut])):
                best, lines = future.result()
                for line in lines:
                    log(line)
                yield pending.pop(future), best


def _worker_pool(workers: int) -> concurrent.futures.Executor:
    # spawn: a fresh interpreter that inherits the environment (the fake device count) but none of this
    # process's JAX threads; each worker takes one mesh at a time.
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _least_in_worker(config_dict: dict, mesh, acc: Accelerator, kwargs: dict):
    """_least_that_fits in a worker process: (its plan, its log lines)."""
    lines = []
    return _least_that_fits(ml_collections.ConfigDict(config_dict), mesh, acc, lines.append, **kwargs), lines


def _least_that_fits(config, mesh, acc: Accelerator, log, **kwargs) -> dict | None:
    """The plan of `mesh` at the least accumulation (then remat) that fits; else the last one tried."""
    best = None
    for remat in (False, True):
        peaks = []  # (accumulation, compiled peak) at this remat setting
        for accum in ACCUMULATION:
            changed = with_changes(config, accum_steps=accum, remat=remat, mesh=mesh)
            if not splits(changed, mesh):
                continue
            result = plan(changed, mesh, acc, compile_step=False, **kwargs)
            if result["fits"] is False:
                return result  # the state alone does not fit this mesh: nothing here will
            if len(peaks) >= 2 and predicted_peak(peaks, accum) > 1.05 * result["budget_bytes"]:
                continue  # extrapolated over the budget: a larger accumulation may still fit
            result = plan(changed, mesh, acc, **kwargs)
            log(_search_line(result))
            best = result
            peaks.append((accum, result["compiled_bytes"]["peak"]))
            if result["fits"]:
                return result
        if len(peaks) >= 2 and predicted_peak(peaks, math.inf) > 1.05 * best["budget_bytes"]:
            # What no micro-batch shrinks (the state, its gradients, their temporaries) is over the budget
            # by itself: remat, which only shrinks activations, cannot bring the peak under it either.
            best["remat_skipped"] = (f"remat not compiled: the peak without activations, extrapolated "
                                     f"from accumulation {peaks[-2][0]} and {peaks[-1][0]}, is over the budget")
            log(f"  mesh {'x'.join(map(str, mesh))}: {best['remat_skipped']}")
            return best
    return best


def predicted_peak(peaks: list[tuple[int, int]], accum: int) -> float:
    """The peak at `accum` (math.inf: a, what no accumulation removes), from the last two (accumulation,
    peak): peak = a + b / accumulation (the activations shrink with the micro-batch, the state does not)."""
    (a1, p1), (a2, p2) = peaks[-2:]
    b = (p1 - p2) / (1 / a1 - 1 / a2)
    return p1 - b / a1 + b / accum


def splits(config, mesh) -> bool:
    """Whether the config's micro-batch splits over the mesh's data x fsdp shards."""
    t = config.train
    return t.global_batch_size % t.grad_accum_steps == 0 and (t.global_batch_size // t.grad_accum_steps) % (
        mesh[0] * mesh[1]) == 0


def _search_line(r: dict) -> str:
    m = r["mesh"]
    peak = r["compiled_bytes"]["peak"] / 2**30
    return (f"  mesh {m['data']}x{m['fsdp']}x{m['tensor']}, accumulation {r['accum_steps']}, remat "
            f"{'on' if r['remat'] else 'off'}: peak {peak:.1f} GiB, {'fits' if r['fits'] else 'does not fit'}, "
            f"{r['projection']['at_mfu_s']:.3f} s/step (compiled in {r['compile_seconds']:.0f} s)")
