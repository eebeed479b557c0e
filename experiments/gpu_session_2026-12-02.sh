#!/usr/bin/env bash
# The GPU runs of the 2026-12-02 session, one stage per device call (one H200; 30 minutes of device time in
# all, 10 minutes per call). Wheels: experiments/gpu_runs.sh's header and docs/benchmarks.md, "Reproducing";
# every call first runs `bash .whl/install.sh` (into /tmp/site). Writes under $OUT.
#
#   bash experiments/gpu_session_2026-12-02.sh diffbench   # pure JAX: diffusion training/sampling speed
#   bash experiments/gpu_session_2026-12-02.sh refactor    # bench_train at 16384: before vs after the refactor
#   bash experiments/gpu_session_2026-12-02.sh collisions  # self vs floor collisions; one GPU at 8192
#   bash experiments/gpu_session_2026-12-02.sh generalist  # the generalist tracker over all 13 built-in clips
#   bash experiments/gpu_session_2026-12-02.sh followup    # its robust evaluation, 1M-frame collection, mismatch
#
# `refactor` needs two source trees beside the checkout (ignored by git, carried by the device call):
#   bench_old/  = git archive 0a662af mimic_jax experiments   (before issue 12)
#   bench_core/ = git archive 7688b10 mimic_jax experiments   (the refactor alone, before self-collisions)
# Both read ./motions (the same clips) and have floor-only collisions, so they differ by the refactor only.
set -uo pipefail
export PYTHONUNBUFFERED=1 WARP_CACHE_PATH=/tmp/warp_cache
OUT=${OUT:-/tmp/out}
RUNS=/tmp/runs
mkdir -p "$OUT" "$RUNS"
quiet() { grep -Ev '^Module|^Warp|^   |iterations limit|warn_overflow' || true; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu_$1.txt" 2>/dev/null
new() { PYTHONPATH=/tmp/site:$PWD "$@"; }

case "$1" in
diffbench)
  new bash experiments/diffusion_gpu.sh bench 2>&1 | quiet | tail -n 40
  ;;
refactor)
  for tree in bench_old bench_core; do
    PYTHONPATH=/tmp/site:$PWD/$tree timeout 280 python $tree/experiments/bench_train.py --impl warp --num-envs 16384 \
      --calls 3 --iterations-per-call 5 --json "$OUT/bench_train_$tree.json" 2>&1 | quiet | tail -n 6
  done
  ;;
collisions)
  new timeout 330 python experiments/bench_train.py --impl warp --num-envs 8192 16384 --calls 3 \
    --iterations-per-call 5 --collisions floor --json "$OUT/bench_train_floor.json" 2>&1 | quiet | tail -n 8
  new timeout 220 python experiments/bench_train.py --impl warp --num-envs 16384 --calls 3 \
    --iterations-per-call 5 --collisions self --json "$OUT/bench_train_self.json" 2>&1 | quiet | tail -n 6
  ;;
generalist)
  MIN=${MIN:-8.2}
  new python experiments/time_to_policy.py --motion-set generalist --num-envs 16384 --max-minutes "$MIN" \
    --eval-every 45 --episodes 16 --target 1.01 --out "$RUNS/generalist" > "$OUT/generalist.log" 2>&1
  cp "$RUNS"/generalist/{params.npz,config.json,curve.jsonl,summary.json} "$OUT"/
  tail -n 3 "$OUT/generalist.log" | quiet
  ;;
followup)
  SRC=${SRC:-$RUNS/generalist}  # a time_to_policy output folder (params.npz, config.json)
  new python experiments/import_policy.py "$SRC" --motion-set generalist --out "$RUNS/generalist_run" 2>&1 | quiet
  new timeout 150 python -m mimic_jax.eval --run "$RUNS/generalist_run" --mode robust --episodes 20 \
    --json "$OUT/eval_robust.json" 2>&1 | quiet | tail -n 18
  new timeout 200 python -m mimic_jax.collect --run "$RUNS/generalist_run" --out "$RUNS/data" 2>&1 | quiet | tail -n 5
  cp "$RUNS/data/card.json" "$RUNS/data/card.md" "$OUT"/ 2>/dev/null
  new python -m mimic_jax.collect plot "$RUNS/data" --out "$OUT/demonstrations.png" --windows 3 2>&1 | tail -n 2
  new timeout 200 python -m mimic_jax.eval --run "$RUNS/generalist_run" --suite mismatch --impl warp --episodes 8 \
    --json "$OUT/mismatch_generalist_warp.json" 2>&1 | quiet | tail -n 30
  ;;
*)
  echo "usage: $0 diffbench|refactor|collisions|generalist|followup" >&2
  exit 2
  ;;
esac
