"""Benchmark the pretraining step (see benchmarks/pretraining.py for the modes and what they print).

    python scripts/benchmark.py --mode torch --preset small     # ours vs HF BertForMaskedLM + AdamW
    python scripts/benchmark.py --mode sparse --preset small    # dense vs static 80% vs RigL vs KD
    python scripts/benchmark.py --mode gpu                      # BERT-base bf16 tokens/s and MFU
"""
from benchmarks import pretraining

if __name__ == "__main__":
    pretraining.main()
