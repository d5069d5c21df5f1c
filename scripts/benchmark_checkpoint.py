"""What the checkpoint checksums cost (see benchmarks/checkpoint.py).

    python scripts/benchmark_checkpoint.py [--preset base|small|tiny|tiny_run] [--repeats 3]
"""
from benchmarks import checkpoint

if __name__ == "__main__":
    checkpoint.main()
