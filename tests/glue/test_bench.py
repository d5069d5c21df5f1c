"""The GLUE benchmarks' code paths run (tiny shapes, CPU): they are run by hand, so nothing else would
notice when a change breaks them. Timings are printed, never asserted."""
from glue import bench


def test_glue_benchmark_runs_both_ways():
    out = bench.main(["--seeds", "2", "--train", "24", "--validation", "8", "--hidden", "16", "--max_length", "16",
                      "--batch_size", "16", "--repeats", "1", "--seed_loop", "map"])
    assert [r["way"] for r in out["rows"]] == ["sequential", "vmapped"]
    assert all(r["cold_s"] > 0 and r["warm_s"] > 0 for r in out["rows"])
    assert out["steps"] == 2  # 24 examples at batch 16, one epoch
    assert out["max_logit_diff"] < 1e-4  # each seed of the together-run gets what it gets alone
    assert out["params_per_seed"] > 0


def test_vmap_step_benchmark_runs_every_way():
    rows = bench.vmap_step(0.1, seeds=2, batch=4, length=8, rounds=1)
    assert [r["way"] for r in rows] == ["one seed at a time", "vmap", "lax.map", "lax.map, batch_size 2"]
    assert all(r["median_s"] > 0 for r in rows)
