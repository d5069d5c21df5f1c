"""SQuAD fine-tuning speed, ours (seeds in one compiled step) against Hugging Face BertForQuestionAnswering
(PyTorch, seeds one after another) on SQuAD-shaped synthetic data; benchmarks/squad.py says what it runs.

    python scripts/benchmark_squad.py [--seeds 3] [--train 96] [--epochs 1] [--preset small] [--no_hf]
"""
from benchmarks import squad as squad_benchmark

if __name__ == "__main__":
    squad_benchmark.main()
