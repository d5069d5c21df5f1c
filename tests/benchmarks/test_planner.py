"""The planner's device check (scripts/benchmark_plan.py --mode device) runs on the CPU with the tiny config:
the plan it reads is the one it reports against. Timings are printed, never asserted."""
import json
import os

import pytest

from benchmarks import planner as planner_benchmark
from helpers import ROOT
from jax_bert.plan import accelerators, planner
from jax_bert.train.config import load_config_file

TINY = os.path.join(ROOT, "configs", "tiny.py")


def test_device_mode_sets_the_measured_step_beside_the_plan_it_reads(tmp_path, capsys):
    plan = planner.plan(load_config_file(TINY).get_config(), (1, 1, 1), accelerators.accelerator("h200"),
                        config_dir=os.path.dirname(TINY))
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps({"config": TINY, "plan": plan}))  # as scripts/plan.py --json writes it
    out = planner_benchmark.main(["--mode", "device", "--configs", TINY, "--plan", str(plan_path), "--steps", "1",
                                  "--out", str(tmp_path / "device.json")])
    assert out["projected_at_peak_s"] == plan["projection"]["compute_s"]
    assert out["planned_peak_bytes"] == plan["compiled_bytes"]["peak"]
    assert out["measured_s"] > 0
    assert out["measured_mfu"] == pytest.approx(out["projected_at_peak_s"] / out["measured_s"])
    assert out["measured_peak_bytes"] is None  # XLA:CPU keeps no allocator statistics
    assert out["rows"] == plan["batch"]["global_rows"] and out["accum_steps"] == plan["accum_steps"]
    assert json.loads((tmp_path / "device.json").read_text())["measured_s"] == out["measured_s"]
    assert "measured / projected at MFU" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exit:  # a plan of another accumulation: refused before any compile
        planner_benchmark.main(["--mode", "device", "--configs", TINY, "--plan", str(plan_path), "--accum_steps", "2"])
    assert exit.value.code == 2
    assert "not a compiled one-device plan" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        planner_benchmark.main(["--mode", "device", "--configs", TINY, "--plan", str(tmp_path / "missing.json")])
    assert exit.value.code == 2 and "missing.json: no such file" in capsys.readouterr().err
