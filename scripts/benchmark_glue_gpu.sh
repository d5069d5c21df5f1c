#!/usr/bin/env bash
# The GPU figures of the GLUE benchmark (docs/benchmarks.md), for a lent GPU: BERT-base shape, 10 seeds
# of RTE and of SST-2 with GLUE's token lengths, seeds fine-tuned in one step (vmapped) against the
# same 10 seeds one after another, in float32 and in bf16 compute, with length buckets. Prints tokens
# per second and the speed-up for each. Run from the repository root:
#   bash scripts/benchmark_glue_gpu.sh [EXTRA FLAGS FOR glue/bench.py --mode seeds]
# Every configuration compiles one step per length bucket for 1 and for 10 seeds (about half a
# minute each on an H100); JAX_COMPILATION_CACHE_DIR keeps them for a rerun.
set -euo pipefail
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$PWD/.jax_cache}
base=(--mode seeds --hidden 768 --layers 12 --heads 12 --intermediate 3072 --vocab_size 28996
      --max_length 128 --seeds 10 --lr 2e-5 --epochs 1 --train 640 --validation 256 --repeats 2
      --seed_loop vmap --length_profile)
for task in rte sst2; do
  for dtype in float32 bfloat16; do
    echo "== $task, $dtype =="
    python scripts/benchmark_glue.py "${base[@]}" --task "$task" --dtype "$dtype" "$@"
  done
done
