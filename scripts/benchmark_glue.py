"""The GLUE benchmarks: the nine tasks with GLUE's token lengths, ours (length buckets, packed tokens)
against ours padded to max_length and Hugging Face PyTorch (--mode suite); N seeds fine-tuned in one
step against the same N seeds one after another (--mode seeds, the default); a hyper-parameter search
grid in one program against its members one after another (--mode search, glue/search_bench.py).

    python scripts/benchmark_glue.py --mode suite [--scale 0.002] [--seeds 3] [--buckets 4] [--unpacked] [--no_hf]
    python scripts/benchmark_glue.py [--seeds 10] [--task sst2] [--train 512] [--epochs 1]
        [--hidden 32] [--layers 2] [--max_length 64] [--batch_size 32] [--seed_loop vmap|map|auto]
    python scripts/benchmark_glue.py --mode search [--task sst2] [--lrs 3e-4,1e-3,3e-3,1e-2] [--seeds 2]

See glue/bench.py for what it runs and prints.
"""
from glue import bench

if __name__ == "__main__":
    bench.main()
