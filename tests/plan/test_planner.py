"""scripts/plan.py and jax_bert/plan against what this machine can check: the planned state bytes are
a live state's (one device here, 8 in the session's 8-device child), the compiled step's arguments are
the planned state, teachers and batch, a plan on one device has no collectives, and the command line
(bad input one line and exit status 2; a plan in a child process with fake devices, written as JSON), and the
search's choices (with a stand-in for the compiler)."""
import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from eight_devices import PLAN_MESHES, live_state_bytes, plan_config
from helpers import ROOT, one_error_line, script_flags, stops_with_one_line, subprocess_env
from jax_bert.model import BertConfig
from jax_bert.plan import accelerators, hlo, planner, recipe, state
from jax_bert.train import sharding

PLAN = os.path.join(ROOT, "scripts", "plan.py")
TINY = os.path.join(ROOT, "configs", "tiny.py")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A teacher's work directory holding only its architecture (bert_config.json), as the plan reads it."""
    folder = tmp_path_factory.mktemp("teacher")
    BertConfig(vocab_size=600, hidden_size=48, num_hidden_layers=1, num_attention_heads=2, intermediate_size=96,
               max_position_embeddings=32).save(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def one_device_plan(teacher_dir):
    config = plan_config()
    config.distill.teachers = (teacher_dir,)
    return planner.plan(config, (1, 1, 1), accelerators.accelerator("h100-80gb"))


def test_planned_state_is_the_live_state_on_one_device():
    program, _ = planner.build(recipe.recipe_of(plan_config()), sharding.mesh_of((1, 1, 1)))
    planned = state.state_bytes(program.abstract_state, program.shardings)
    assert live_state_bytes(program.init_state()) == [planned]
    assert planned["masks"] > 0 and planned["moments"] == 2 * planned["params"]  # Adam's two moments


@pytest.mark.slow
@pytest.mark.xdist_group("eight_devices")
@pytest.mark.parametrize("mesh", PLAN_MESHES)
def test_planned_state_is_the_live_state_on_eight_devices(eight_devices, mesh):
    planned, live = eight_devices["plan_state"][mesh]["planned"], eight_devices["plan_state"][mesh]["live"]
    assert len(live) == 8 and all(device == planned for device in live), (planned, live)
    program, _ = planner.build(recipe.recipe_of(plan_config()), sharding.mesh_of((1, 1, 1)))
    whole = state.state_bytes(program.abstract_state, program.shardings)
    assert planned["params"] < whole["params"] / 2  # sharded: a device holds a part


def test_compiled_arguments_are_the_planned_state_teachers_and_batch(one_device_plan):
    p = one_device_plan
    # jit leaves out inputs the step never reads (a schedule's hyperparameter it recomputes from the count):
    # a scalar or two fewer than the state holds.
    assert 0 <= p["state_total_bytes"] - p["compiled_bytes"]["arguments"] <= 16
    assert p["state_bytes"]["teachers"] > 0 and p["state_bytes"]["batch"] > 0
    assert any("bert_config.json" in note for note in p["notes"])
    assert all(v["runs"] == 0 for v in p["collectives"].values()) and p["projection"]["communication_s"] == 0
    assert p["fits"] and p["compiled_bytes"]["peak"] >= p["compiled_bytes"]["arguments"]
    t = p["projection"]
    assert t["at_mfu_s"] == pytest.approx(max(t["compute_s"] / 0.4, t["memory_s"])) and t["mfu"] == 0.4
    json.dumps(p)  # --json writes it as it is


@pytest.fixture
def plan_script(monkeypatch, capsys):
    """scripts/plan.py with the given arguments, in this process: (exit status, its one error line)."""

    def run(*args):
        module, values = script_flags(PLAN, monkeypatch)

        def job():
            module.parse(["plan.py", *args], flag_values=values)
            module.main([], flag_values=values)

        return stops_with_one_line(job, monkeypatch, capsys)

    return run


@pytest.mark.parametrize("args,message", [
    (["--devices", "0"], "--devices must be an integer >= 1"),
    (["--devices", "2", "--mesh", "2,2"], "--mesh takes data,fsdp,tensor sizes >= 1 (e.g. 8,1,1), got '2,2'"),
    (["--devices", "4", "--mesh", "2,1,1"], "--mesh 2,1,1 uses 2 devices, not --devices 4"),
    (["--devices", "2", "--mesh", "1,2,1", "--search"], "give --mesh or --search, not both"),
    (["--devices", "1", "--accelerator", "tpu"], "unknown accelerator 'tpu'; use one of v100-32gb"),
    (["--devices", "1", "--mfu", "0"], "--mfu must be in (0, 1]"),
    (["--devices", "2", "--search", "--workers", "0"], "--workers must be an integer >= 1"),
    (["--devices", "2", "--workers", "2"], "--workers applies to --search only"),
    (["--devices", "1", "--config.train.stepz=3"], "unknown config key 'train.stepz'"),
    (["--devices", "1", "--config.distill.teachers=/no/such/teacher"], "teacher '/no/such/teacher': its architecture"),
])
def test_bad_input_is_one_line_and_exit_status_2(plan_script, args, message):
    status, line = plan_script("--config", TINY, *args)
    assert status == 2 and message in line, line


def fake_measure(config, sizes, *, devices=None, config_dir=None, compile_step=True):
    """planner.measure without a compiler: a state of 8 GiB / fsdp per device, and a compiled peak of the
    state + 8 GiB / accumulation of activations, halved by remat."""
    d, f, t = sizes
    accum, remat = int(config.train.grad_accum_steps), bool(config.model.remat)
    state_bytes = {"params": 2**30 * 8 // f, "moments": 0, "masks": 0, "optimizer_other": 0, "teachers": 0,
                   "batch": 0}
    out = {"mesh": {"data": d, "fsdp": f, "tensor": t}, "devices": d * f * t, "accum_steps": accum, "remat": remat,
           "model": {"params": 10**6, "dtype": "float32", "teachers": []}, "batch": {"global_rows": 64, "seq_len": 128},
           "state_bytes": state_bytes, "state_total_bytes": sum(state_bytes.values()), "steps": 100, "notes": []}
    if compile_step:
        out["compiled_bytes"] = {"peak": out["state_total_bytes"] + int(2**30 * 8 / accum / (2 if remat else 1))}
        out["compile_seconds"] = 0.0
        out["flops"] = {"analytical_per_device": 1e12 * (4 / 3 if remat else 1) / (d * f * t)}
        out["_collectives"] = [hlo.Collective("all-gather", 2**30 // 8 * (f - 1), ((tuple(range(f))),), 12)]
    return out


def test_the_search_takes_the_least_change_that_fits_each_mesh(monkeypatch):
    monkeypatch.setattr(planner, "measure", fake_measure)
    small = dataclasses.replace(accelerators.accelerator("a100-40gb"), hbm_bytes=int(4.6 * 2**30 / 0.9))
    config = plan_config()
    config.train.global_batch_size = 64
    rows = planner.search(config, 8, small, log=lambda line: None)
    by_mesh = {tuple(r["mesh"].values()): r for r in rows}
    assert set(by_mesh) == {(8, 1, 1), (4, 2, 1), (2, 4, 1), (1, 8, 1), (4, 1, 2), (2, 2, 2), (1, 4, 2)}  # 2 heads
    assert not by_mesh[(8, 1, 1)]["fits"] and "compiled_bytes" not in by_mesh[(8, 1, 1)]  # its state alone: 8 GiB
    fsdp8 = by_mesh[(1, 8, 1)]  # 1 + 8/a GiB fits 4.6 GiB from a = 4 on
    assert (fsdp8["fits"], fsdp8["accum_steps"], fsdp8["remat"]) == (True, 4, False)
    fsdp2 = by_mesh[(4, 2, 1)]  # 4 + 8/a GiB never fits; with remat 4 + 4/a from a = 8 on
    assert (fsdp2["fits"], fsdp2["accum_steps"], fsdp2["remat"]) == (True, 8, True)
    fitting = [r for r in rows if r["fits"]]
    assert [r["projection"]["at_mfu_s"] for r in fitting] == sorted(r["projection"]["at_mfu_s"] for r in fitting)
    assert rows[-1]["fits"] is False and sum(r["fits"] for r in rows) == 5
    change = planner.smallest_change(config, (1, 8, 1), small)
    assert change["change"] == "train.grad_accum_steps=4" and change["plan"]["fits"]
    change = planner.smallest_change(config, (2, 4, 1), small)  # state 2 GiB: fits the state, then accumulation
    assert change["change"] == "train.grad_accum_steps=4"
    change = planner.smallest_change(config, (8, 1, 1), small)  # only fsdp shrinks an 8 GiB state
    assert change["change"] == "mesh data 1 x fsdp 8 x tensor 1, train.grad_accum_steps=4"


@pytest.mark.slow
def test_the_script_plans_on_two_fake_devices_and_writes_json(tmp_path):
    tiny = ["--config", TINY, "--devices", "2", "--config.model.num_hidden_layers=1", "--config.train.seq_len=32",
            "--config.model.max_position_embeddings=32"]
    out = subprocess.run([sys.executable, PLAN, *tiny, "--mesh", "1,2,1", "--accelerator", "v100-32gb", "--json",
                          str(tmp_path / "plan.json")], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    plan = json.loads((tmp_path / "plan.json").read_text())["plan"]
    assert plan["devices"] == 2 and plan["mesh"] == {"data": 1, "fsdp": 2, "tensor": 1} and plan["fits"]
    assert plan["collectives"]["all-gather"]["runs"] > 0  # fsdp gathers the params
    assert isinstance(plan["compiled_bytes"]["peak"], int) and "fits: yes" in out.stdout
    # the activation model beside XLA:CPU's temporaries, in --json and in the text
    assert isinstance(plan["activation_model"]["total"], int) and plan["activation_model"]["total"] > 0
    assert "kept for the backward pass; XLA:CPU temporaries: " in out.stdout
    # A recipe the mesh cannot split is bad input too, said in one line by the child.
    out = subprocess.run([sys.executable, PLAN, *tiny, "--mesh", "2,1,1", "--config.train.global_batch_size=3"],
                         cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "does not split over data x fsdp = 2 shards" in one_error_line(out.stderr)


# A child with 2 fake devices: the tiny recipe on fsdp 2 (all-gathers and all-reduces) compiled with the
# planner's options and with XLA's defaults; prints both compiles' figures as JSON.
_BOTH_COMPILES = """
import json, sys
sys.path.append("tests")
import jax
from eight_devices import plan_config
from jax_bert.plan import hlo, planner, recipe
from jax_bert.train import sharding, step_cost
config = plan_config()
config.sparsity.enabled = False  # dense: the same kinds of collectives, half the compile time
r = recipe.recipe_of(config)
mesh = sharding.mesh_of((1, 2, 1))
program, teachers = planner.build(r, mesh)
out = {}
for name, options in (("default", None), ("planner", planner.ANALYSIS_ONLY)):
    compiled, _ = step_cost.compile_train_step(program, mesh, teachers, rows=r.micro_rows, length=r.seq_len,
                                               slots=r.slots, compiler_options=options)
    cost = step_cost.cost_of(compiled)
    found, _ = hlo.collectives(compiled.as_text())
    out[name] = {"memory": [cost.argument_bytes, cost.output_bytes, cost.alias_bytes, cost.temp_bytes],
                 "flops": cost.flops, "collectives": sorted(map(repr, found)), "hlo": compiled.as_text()}
print(json.dumps(out))
"""


def test_the_planners_compile_reads_what_a_default_compile_reads():
    """ANALYSIS_ONLY skips LLVM's optimisation of machine code the plan never runs: XLA's memory, FLOPs,
    collectives and optimised HLO are those of a default compile, on a mesh with collectives."""
    out = subprocess.run([sys.executable, "-c", _BOTH_COMPILES], cwd=ROOT, env=subprocess_env(2),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    both = json.loads(out.stdout.strip().splitlines()[-1])
    default, planned = both["default"], both["planner"]
    assert any("all-gather" in c for c in default["collectives"]) and default["memory"][3] > 0
    assert planned == default


def test_the_search_skips_remat_when_the_peak_without_activations_is_over_the_budget(monkeypatch):
    """fsdp 2 given 1 GiB of temporaries that no micro-batch shrinks: 4 + 1 GiB is over 4.6 GiB whatever the
    accumulation, so after accumulation 1 and 2 (and 4, 8 extrapolated over) remat is not compiled."""
    compiled = []

    def measure(config, sizes, **kwargs):
        out = fake_measure(config, sizes, **kwargs)
        if kwargs.get("compile_step", True):
            compiled.append((tuple(sizes), out["accum_steps"], out["remat"]))
            if sizes[1] == 2:
                out["compiled_bytes"]["peak"] += 2**30
        return out

    monkeypatch.setattr(planner, "measure", measure)
    small = dataclasses.replace(accelerators.accelerator("a100-40gb"), hbm_bytes=int(4.6 * 2**30 / 0.9))
    config = plan_config()
    config.train.global_batch_size = 64
    lines = []
    rows = planner.search(config, 8, small, log=lines.append)
    fsdp2 = {tuple(r["mesh"].values()): r for r in rows}[(4, 2, 1)]
    assert not fsdp2["fits"] and "remat not compiled" in fsdp2["remat_skipped"]
    assert [c for c in compiled if c[0] == (4, 2, 1)] == [((4, 2, 1), 1, False), ((4, 2, 1), 2, False)]
    assert any("mesh 4x2x1: remat not compiled" in line for line in lines)
    assert ((1, 8, 1), 4, False) in compiled  # a mesh whose state leaves room still gets what fits


@pytest.mark.parametrize("extra_fsdp2_bytes", [0, 2**30])
def test_the_search_gives_the_same_rows_with_two_workers(monkeypatch, extra_fsdp2_bytes):
    """Two workers (threads here, for the stand-in compiler; processes in the script) plan meshes out of
    order, yet give one worker's rows: a mesh the fsdp rule skips is listed as skipped either way."""

    def measure(config, sizes, **kwargs):
        out = fake_measure(config, sizes, **kwargs)
        if kwargs.get("compile_step", True) and sizes[1] == 2:
            out["compiled_bytes"]["peak"] += extra_fsdp2_bytes
        return out

    monkeypatch.setattr(planner, "measure", measure)
    monkeypatch.setattr(planner, "_worker_pool", concurrent.futures.ThreadPoolExecutor)
    small = dataclasses.replace(accelerators.accelerator("a100-40gb"), hbm_bytes=int(4.6 * 2**30 / 0.9))
    config = plan_config()
    config.train.global_batch_size = 64
    one = planner.search(config, 8, small, log=lambda line: None)
    lines = []
    two = planner.search(config, 8, small, log=lines.append, workers=2)
    assert two == one and len(lines) >= len(one) - sum("skipped" in r for r in one)
    assert any("skipped" in r for r in one) == bool(extra_fsdp2_bytes)  # fsdp 2 fails: fsdp 1 is skipped
