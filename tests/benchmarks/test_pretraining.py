"""The pretraining benchmark's code paths run (tiny shapes, CPU): it is run by hand, so nothing else
would notice when an engine change breaks it. Timings are printed, never asserted."""
from benchmarks import pretraining


def test_sparse_mode_runs_every_variant(tmp_path):
    out = pretraining.main(["--mode", "sparse", "--preset", "tiny", "--steps", "1", "--warmup", "1",
                            "--out", str(tmp_path / "sparse.json")])
    assert [r["variant"] for r in out["rows"]] == ["dense", "static80", "rigl80 plain step", "rigl80 update step",
                                                    "kd_float32"]
    assert all(r["median_s"] > 0 for r in out["rows"])
    assert (tmp_path / "sparse.json").exists()


def test_gpu_mode_runs_on_cpu_with_tiny_shapes():
    out = pretraining.main(["--mode", "gpu", "--preset", "tiny", "--steps", "1", "--warmup", "1"])
    rows = out["rows"]
    assert {(r["variant"], r["length"]) for r in rows} == {("dense", 32), ("rigl80", 32), ("dense", 64), ("rigl80", 64)}
    assert all(r["tokens_per_s"] > 0 and 0 <= r["mfu"] < 1 for r in rows)
