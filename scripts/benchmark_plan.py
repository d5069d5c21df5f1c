"""The planner's time model against this CPU (see benchmarks/planner.py): this CPU's matmul peak, the
tiny and small presets' projected and measured step times, their ratio (this CPU's MFU), and XLA's
FLOPs against the analytical count.

    python scripts/benchmark_plan.py [--presets tiny,small] [--steps 10] [--out FILE]
"""
from benchmarks import planner

if __name__ == "__main__":
    planner.main()
