#!/usr/bin/env bash
# Start N pretraining processes on this machine, joined by jax.distributed (CPU: gloo collectives).
#   bash scripts/launch_local.sh 2 --config configs/tiny.py --workdir runs/tiny_2proc
# The data caches are built first (scripts/prepare_data.py, same flags). Each process sees its own
# devices; the global batch is split across them. Process 0 logs.
set -euo pipefail
n=${1:?usage: launch_local.sh NUM_PROCESSES ARGS...}
shift
here=$(cd "$(dirname "$0")" && pwd)
port=${PORT:-$((20000 + RANDOM % 20000))}
# The tokenizer and block caches first, by one process: a run on several processes does not tokenise.
python "$here/prepare_data.py" "$@"
pids=()
for ((i = 0; i < n; i++)); do
  python "$here/pretrain.py" "$@" \
    --config.distributed.initialize=yes \
    --config.distributed.coordinator_address="127.0.0.1:$port" \
    --config.distributed.num_processes="$n" \
    --config.distributed.process_id="$i" &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' INT TERM
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
