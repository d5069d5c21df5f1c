"""What preparing a corpus costs in memory and time, against its size (see benchmarks/data_prepare.py).

    python scripts/benchmark_data_prepare.py [--mb 40 400] [--formats txt jsonl parquet] [--code DIR] [--vocab]
"""
from benchmarks import data_prepare

if __name__ == "__main__":
    data_prepare.main()
