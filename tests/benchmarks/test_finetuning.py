"""The GLUE benchmarks' code paths run (tiny shapes, CPU): they are run by hand, so nothing else would
notice when a change breaks them. Timings are printed, never asserted."""
from benchmarks import finetuning, search


def test_glue_benchmark_runs_both_ways():
    out = finetuning.seeds_main(["--seeds", "2", "--train", "24", "--validation", "8", "--hidden", "16",
                                 "--max_length", "16", "--batch_size", "16", "--repeats", "1", "--seed_loop", "map"])
    assert [r["way"] for r in out["rows"]] == ["sequential", "vmapped"]
    assert all(r["cold_s"] > 0 and r["warm_s"] > 0 and r["tokens_per_s"] > 0 for r in out["rows"])
    assert out["steps"] == 2  # 24 examples at batch 16, one epoch
    assert out["max_logit_diff"] < 1e-4  # each seed of the together-run gets what it gets alone
    assert out["params_per_seed"] > 0


def test_glue_benchmark_gpu_options_run_on_tiny_shapes():
    """What scripts/benchmark_glue_gpu.sh runs (GLUE lengths, bf16), at tiny shapes."""
    out = finetuning.seeds_main(["--task", "rte", "--length_profile", "--dtype", "bfloat16", "--seeds", "2",
                      "--train", "20", "--validation", "8", "--hidden", "16", "--max_length", "128",
                      "--batch_size", "8", "--repeats", "1", "--seed_loop", "vmap"])
    assert sum(out["bucket_steps"].values()) == out["steps"] == 3
    assert out["max_logit_diff"] < 0.05  # bf16: seeds together and alone agree to bf16 precision


def test_suite_benchmark_runs_every_way_on_the_same_work():
    out = finetuning.suite_main(["--tasks", "cola,stsb", "--scale", "0.0001", "--min_train", "40",
                      "--min_eval", "20", "--seeds", "2", "--epochs", "1", "--hidden", "16", "--layers", "2",
                      "--heads", "2", "--intermediate", "32", "--vocab_size", "0", "--max_length", "64",
                      "--batch_size", "16", "--buckets", "4", "--unpacked", "--no_warm",
                      "--shape_min_steps", "0"])
    assert [r["task"] for r in out["records"]] == ["cola", "stsb"]
    for r in out["records"]:
        assert set(r["ways"]) == {"ours, 4 buckets, packed", "ours, 4 buckets", "ours, padded", "HF torch, padded"}
        assert r["train"] == 40 and r["examples"] == 80 and r["eval"] == 20
        assert r["max_logit_diff"] < 1e-4  # bucketed and padded compute the same thing
        assert r["bucket_steps"]["ours, padded"] == {64: 3}
        assert r["positions"]["ours, padded"] == 3 * 16 * 64 > r["positions"]["ours, 4 buckets, packed"]
    assert max(out["records"][0]["bucket_steps"]["ours, 4 buckets"]) < 64  # CoLA's short sentences
    assert set(out["ratios"]) == {f"ours, 4 buckets{p} vs {peer}" for p in ("", ", packed")
                                  for peer in ("ours, padded", "HF torch, padded")}
    assert all(t["examples_per_s"] > 0 and t["full_glue_h"] > 0 for t in out["totals"].values())


def test_vmap_step_benchmark_runs_every_way():
    rows = finetuning.vmap_step(0.1, seeds=2, batch=4, length=8, rounds=1)
    assert [r["way"] for r in rows] == ["one seed at a time", "vmap", "lax.map", "lax.map, batch_size 2"]
    assert all(r["median_s"] > 0 for r in rows)


def test_search_benchmark_runs_the_grid_both_ways():
    out = search.search_main(["--lrs", "1e-3,3e-3", "--warmups", "0,0.5", "--seeds", "1", "--train", "24",
                      "--validation", "8", "--hidden", "16", "--max_length", "16", "--batch_size", "16",
                      "--epochs", "1", "--repeats", "1", "--final_seeds", "1", "--seed_loop", "map"])
    assert out["members"] == 4 and [r["way"] for r in out["rows"]] == ["one after another", "one program"]
    assert out["max_logit_diff"] < 1e-4  # each member of the grid gets what it gets alone
    assert out["chosen"]["learning_rate"] in (1e-3, 3e-3) and set(out["quality"]) == {"chosen", "fixed"}


def test_step_profile_times_every_part_of_a_warm_step(capsys):
    from benchmarks import step_profile

    out = step_profile.profile_main(["--hidden", "32", "--layers", "1", "--vocab_size", "500", "--bucket", "32",
                                     "--batch_size", "8", "--tokens", "64", "--rounds", "2", "--seeds", "2"])
    parts = {r["part"]: r for r in out["rows"]}
    assert set(parts) == {"step", "grad", "optimizer", "embeddings", "host"}
    assert all(r["ms"] > 0 for r in parts.values()) and parts["step"]["of_step"] == 1.0
    assert out["tokens"] == 64 and "share of the step" in capsys.readouterr().out


def test_the_projection_plans_shapes_as_a_full_size_run_would():
    from argparse import Namespace

    from glue import synthetic

    cola = synthetic.GLUE_SIZES["cola"]["train"]
    default = Namespace(shape_min_steps=None)
    assert finetuning.full_size_min_steps("cola", cola, default) == 64  # the whole set: the planner's own
    assert finetuning.full_size_min_steps("cola", cola // 4, default) == 16
    assert finetuning.full_size_min_steps("cola", 40, default) == 0  # a tiny share: every shape its own
    assert finetuning.full_size_min_steps("cola", cola // 2, Namespace(shape_min_steps=10)) == 5
