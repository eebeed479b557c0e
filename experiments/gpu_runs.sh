#!/usr/bin/env bash
# The GPU runs behind docs/benchmarks.md (issue: throughput and time-to-policy), one stage per device call.
# Expects the wheels installed into /tmp/site (see docs/benchmarks.md, "Reproducing") and writes under $OUT.
#
#   bash experiments/gpu_runs.sh ttp      # two time-to-policy runs at once, one per GPU (2-GPU machine)
#   bash experiments/gpu_runs.sh bench1   # one GPU, cold Warp kernel cache: 4096/16384/32768 envs + breakdown
#   bash experiments/gpu_runs.sh bench2   # fresh processes with warm caches, then 2-GPU scaling
#   bash experiments/gpu_runs.sh bench3   # 2 GPUs: independent runs, one process per GPU, one process for both
set -euo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
quiet() { grep -Ev '^Module|^Warp|^   |iterations limit|warn_overflow' || true; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/gpus_$1.txt" || true

case "$1" in
ttp)
  MIN=${MIN:-8.2}
  CUDA_VISIBLE_DEVICES=0 WARP_CACHE_PATH=/tmp/wc_ttp0 python experiments/time_to_policy.py \
    --motion-set locomotion_basic --num-envs 16384 --max-minutes "$MIN" --eval-every 40 --episodes 16 \
    --target 0.9 --out "$OUT/ttp_loco16k" > "$OUT/ttp_loco16k.log" 2>&1 &
  CUDA_VISIBLE_DEVICES=1 WARP_CACHE_PATH=/tmp/wc_ttp1 python experiments/time_to_policy.py \
    --motion-set dynamic_skills --num-envs 16384 --max-minutes "$MIN" --eval-every 40 --episodes 16 \
    --target 1.01 --out "$OUT/ttp_dyn16k" > "$OUT/ttp_dyn16k.log" 2>&1 &
  wait
  tail -n 4 "$OUT"/ttp_*.log | quiet
  ;;
bench1)
  CUDA_VISIBLE_DEVICES=0 WARP_CACHE_PATH=/tmp/wc_bench python experiments/bench_train.py --impl warp \
    --num-envs 4096 16384 32768 --calls 2 --iterations-per-call 5 --breakdown-envs 16384 \
    --xla-cache /tmp/xla_cache --json "$OUT/bench_train_1gpu.json" 2>&1 | quiet
  ;;
bench2)
  # First call in a fresh process: warm Warp kernel cache and warm XLA cache, then warm Warp cache only.
  CUDA_VISIBLE_DEVICES=0 WARP_CACHE_PATH=/tmp/wc_bench python experiments/bench_train.py --impl warp \
    --num-envs 16384 --calls 2 --iterations-per-call 5 --xla-cache /tmp/xla_cache \
    --json "$OUT/bench_train_warm_both.json" 2>&1 | quiet
  CUDA_VISIBLE_DEVICES=0 WARP_CACHE_PATH=/tmp/wc_bench python experiments/bench_train.py --impl warp \
    --num-envs 16384 --calls 2 --iterations-per-call 5 --json "$OUT/bench_train_warm_warp.json" 2>&1 | quiet
  # One iteration per call instead of five (host round trip every iteration).
  CUDA_VISIBLE_DEVICES=0 WARP_CACHE_PATH=/tmp/wc_bench python experiments/bench_train.py --impl warp \
    --num-envs 16384 --calls 10 --iterations-per-call 1 --xla-cache /tmp/xla_cache \
    --json "$OUT/bench_train_1_per_call.json" 2>&1 | quiet
  # Two GPUs: the same global batch (16384 = 2 x 8192) and the same per-GPU batch (32768 = 2 x 16384).
  WARP_CACHE_PATH=/tmp/wc_bench python experiments/bench_train.py --impl warp --devices 2 \
    --num-envs 16384 32768 --calls 2 --iterations-per-call 5 --json "$OUT/bench_train_2gpu.json" 2>&1 | quiet
  ;;
bench3)
  # Two GPUs, three ways. (a) Two independent one-GPU runs at once, one per GPU: the ceiling for two GPUs.
  for i in 0 1; do
    CUDA_VISIBLE_DEVICES=$i WARP_CACHE_PATH=/tmp/wc_$i python experiments/bench_train.py --impl warp \
      --num-envs 16384 --calls 2 --iterations-per-call 5 --json "$OUT/bench_train_independent_gpu$i.json" \
      > "$OUT/independent_gpu$i.log" 2>&1 &
  done
  wait
  grep -h '^ *16384' "$OUT"/independent_gpu*.log || tail -n 5 "$OUT"/independent_gpu*.log
  # (b) One process per GPU, one learner (jax.distributed): same global batch, then same per-GPU batch.
  WARP_CACHE_PATH=/tmp/wc_0 python experiments/bench_train.py --impl warp --processes 2 \
    --num-envs 16384 32768 --calls 2 --iterations-per-call 5 --json "$OUT/bench_train_2proc.json" 2>&1 | quiet \
    || echo "one process per GPU: failed"
  # (c) One process driving both GPUs, with XLA instead of Warp capturing the CUDA graphs (no Python
  # callback per physics call, if MJX-Warp's kernels allow it).
  WARP_CACHE_PATH=/tmp/wc_0 timeout 200 python experiments/bench_train.py --impl warp --devices 2 \
    --num-envs 32768 --calls 2 --iterations-per-call 5 --warp-graph-mode jax \
    --json "$OUT/bench_train_2dev_graph_jax.json" 2>&1 | quiet | tail -n 20
  ;;
*)
  echo "usage: $0 ttp|bench1|bench2|bench3" >&2
  exit 2
  ;;
esac
