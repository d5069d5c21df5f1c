"""The GLUE benchmarks: the nine tasks with GLUE's token lengths, ours (length buckets, packed tokens)
against ours padded to max_length and Hugging Face PyTorch (--mode suite); N seeds fine-tuned in one
step against the same N seeds one after another (--mode seeds, the default); a hyper-parameter search
grid in one program against its members one after another (--mode search); the gradient step of 10 seeds
four ways, behind the choice of seed_loop (--mode vmap_step).

    python scripts/benchmark_glue.py --mode suite [--scale 0.002] [--seeds 3] [--buckets 4] [--unpacked] [--no_hf]
    python scripts/benchmark_glue.py [--seeds 10] [--task sst2] [--train 512] [--epochs 1]
        [--hidden 32] [--layers 2] [--max_length 64] [--batch_size 32] [--seed_loop vmap|map|auto]
    python scripts/benchmark_glue.py --mode search [--task sst2] [--lrs 3e-4,1e-3,3e-3,1e-2] [--seeds 2]
    python scripts/benchmark_glue.py --mode vmap_step [--dropout 0.1]
    python scripts/benchmark_glue.py --mode profile [--seeds 3] [--tokens 1280]   # where a warm step's time goes

benchmarks/finetuning.py (suite, seeds, vmap_step), benchmarks/search.py (search) and
benchmarks/step_profile.py (profile) say what each runs and prints.
"""
import argparse
import sys

from benchmarks import finetuning, search, step_profile

if __name__ == "__main__":
    mode = argparse.ArgumentParser(add_help=False)
    mode.add_argument("--mode", choices=("seeds", "suite", "search", "vmap_step", "profile"), default="seeds")
    args, rest = mode.parse_known_args(sys.argv[1:])
    modes = {"seeds": finetuning.seeds_main, "suite": finetuning.suite_main, "search": search.search_main,
             "vmap_step": finetuning.vmap_step_main, "profile": step_profile.profile_main}
    modes[args.mode](rest)
