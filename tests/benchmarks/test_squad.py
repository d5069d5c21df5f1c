"""The SQuAD benchmark's code path runs (tiny shapes, CPU): it is run by hand, so nothing else would notice
when a change breaks it. Timings are printed, never asserted."""
from benchmarks import squad as squad_benchmark


def test_squad_benchmark_runs_ours_and_hugging_face():
    out = squad_benchmark.main(["--seeds", "2", "--train", "6", "--preset", "tiny", "--max_length", "64",
                                "--doc_stride", "16", "--batch_size", "4"])
    assert out["features"] >= 6 and 0 < out["mean_tokens"] <= 64
    assert set(out["seconds"]) == {"ours cold", "ours warm", "ours warm, a full-size run's shapes",
                                   "hf seeds one after another"}
    assert all(v > 0 for v in out["examples_per_second"].values()) and out["ratio_warm"] > 0
    assert out["ratio_full_size_shapes"] > 0
