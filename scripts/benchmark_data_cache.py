"""What the data cache's checksums cost (see benchmarks/data_cache.py).

    python scripts/benchmark_data_cache.py [--mib 1024] [--repeats 3]
"""
from benchmarks import data_cache

if __name__ == "__main__":
    data_cache.main()
