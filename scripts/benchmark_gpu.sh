#!/usr/bin/env bash
# Every GPU check of docs/benchmarks.md and docs/study.md in one script, each part under its own time limit
# so that one slow part cannot starve the next (about 15 minutes on one H200 with the default limits):
#   1. the study's horizon pair on a GPU: static + KD against RigL + KD at HORIZON steps (default 10,000),
#      seeds 0, 1, 2 in turn, as many as HORIZON_S seconds allow (scripts/reproduce.py --horizon --horizons);
#   2. the pretraining step at BERT-base shape, bf16: tokens/s and MFU, dense and rigl80, lengths 128 and
#      512 (scripts/benchmark.py --mode gpu);
#   3. the planner's projection against the step run here: configs/rigl80.py on one GPU with the
#      accumulation the planner chose, step time and peak memory (scripts/benchmark_plan.py --mode device;
#      PLAN is scripts/plan.py's --json of it, made on any machine beforehand, see below);
#   4. GLUE fine-tuning at BERT-base shape, 10 seeds vmapped against one after another, bf16
#      (scripts/benchmark_glue.py).
# Run from the repository root:
#   python scripts/plan.py --config configs/rigl80.py --devices 1 --accelerator h200 \
#       --config.train.grad_accum_steps=2 --json plan.json       # the planner's smallest change that fits
#   PLAN=plan.json bash scripts/benchmark_gpu.sh OUT_DIR
# OUT_DIR gets one log per part (and plan.json), the GPU's name and horizon_rows.tgz (each horizon row's metrics and eval
# results, horizon.md, horizon.png); the study itself is kept in STUDY_DIR for a rerun to resume.
# PARTS (default "horizon pretraining plan glue") runs only the named parts, for a lease too short for all:
# on one H200 the horizon pair at 10,000 steps takes about 2 minutes per row after a 1-minute teacher, so
# one seed of it fills a 6-minute part (HORIZON_S), and three seeds a lease of their own.
set -uo pipefail
out=${1:?give the folder for the logs: bash scripts/benchmark_gpu.sh OUT_DIR}
parts=" ${PARTS:-horizon pretraining plan glue} "
for p in $parts; do
  case $p in horizon|pretraining|plan|glue) ;;
    *) echo "error: PARTS: unknown part '$p'; choose from horizon pretraining plan glue" >&2; exit 2 ;;
  esac
done
wanted() { [[ $parts == *" $1 "* ]]; }
mkdir -p "$out"
py=${PYTHON:-python}
horizon=${HORIZON:-10000}
study=${STUDY_DIR:-runs/study_tiny_gpu}
accum=${ACCUM_STEPS:-2}
export PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$PWD/.jax_cache}

part() {  # part NAME SECONDS COMMAND...: the command's output in OUT_DIR/NAME.log, stopped after SECONDS
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most $limit s): $*" | tee "$out/$name.log"
  local start=$SECONDS
  timeout --kill-after=15 "$limit" "$@" >> "$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$out/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1 || true
"$py" -c "import jax; print(jax.__version__, jax.devices())" >> "$out/gpu.txt" 2>&1

# seed-major, so that each finished seed is a whole pair; a rerun resumes the study where it stopped
wanted horizon && part horizon "${HORIZON_S:-360}" bash -c 'for n in 1 2 3; do
    "$1" scripts/reproduce.py --scale tiny --out "$2" --horizon --horizons "$3" --pretrain_seeds "$n" || exit
  done' _ "$py" "$study" "$horizon"
wanted horizon && tar -czf "$out/horizon_rows.tgz" --exclude=checkpoints --exclude=jax_cache --exclude=tensorboard \
  --exclude=tokenizer --exclude=hf -C "$(dirname "$study")" "$(basename "$study")" 2>/dev/null || true

wanted pretraining && part pretraining_128 "${PRETRAIN_S:-120}" "$py" scripts/benchmark.py --mode gpu --lengths 128 --batch 64
wanted pretraining && part pretraining_512 "${PRETRAIN_S:-120}" "$py" scripts/benchmark.py --mode gpu --lengths 512 --batch 32

if wanted plan && [ -n "${PLAN:-}" ]; then
  part plan "${PLAN_S:-90}" env XLA_PYTHON_CLIENT_MEM_FRACTION=0.90 "$py" scripts/benchmark_plan.py --mode device \
    --configs configs/rigl80.py --accum_steps "$accum" --plan "$PLAN" --steps 10 --out "$out/plan.json"
elif wanted plan; then
  echo "== plan: skipped: give PLAN=FILE, scripts/plan.py's --json of configs/rigl80.py on one device (above)" | tee "$out/plan.log"
fi

wanted glue && part glue "${GLUE_S:-180}" "$py" scripts/benchmark_glue.py --mode seeds --hidden 768 --layers 12 --heads 12 \
  --intermediate 3072 --vocab_size 28996 --max_length 128 --seeds 10 --lr 2e-5 --epochs 1 --train 320 \
  --validation 256 --repeats 2 --seed_loop vmap --task sst2 --dtype bfloat16
true  # the parts' exit statuses are in their logs
