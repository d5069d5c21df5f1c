"""Micro-benchmark behind the GLUE speed note: the gradient of a tiny BERT classifier for 10 seeds, one
seed at a time, vmapped, and looped with lax.map inside one step (see glue/bench.py).

    python scripts/benchmark_vmap_step.py 0.1    # dropout 0.1 (training)
    python scripts/benchmark_vmap_step.py 0.0    # no dropout
"""
from glue import bench

if __name__ == "__main__":
    bench.vmap_step_main()
