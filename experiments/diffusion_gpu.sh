#!/usr/bin/env bash
# The GPU runs behind the diffusion figures of docs/phase2.md ("Model", "Training"), one stage per device call.
# Wheels as in docs/benchmarks.md, "Reproducing" (plus dacite), installed into /tmp/site; writes under $OUT.
#
#   bash experiments/diffusion_gpu.sh bench                # speed: fp32 and bf16, batch 512, 1 and 1024 robots
#   bash experiments/diffusion_gpu.sh model                # speed without MuJoCo (no wheels): the sampler's
#                                                          # loop rolled and unrolled, training fp32 and bf16
#   bash experiments/diffusion_gpu.sh bench_h32            # the same in bf16 with DC's horizon H = 32
#   DATA=DIR bash experiments/diffusion_gpu.sh fp32        # the published model on a collected dataset, float32
#   DATA=DIR bash experiments/diffusion_gpu.sh bf16        # the same run in bfloat16, then both loss curves
#   DATA=DIR bash experiments/diffusion_gpu.sh joint_pos   # the Joint-Pos ablation (bf16)
#
# Training stages stop after MINUTES (default 9) with a checkpoint; run the same stage again to resume.
set -euo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
RUNS=${RUNS:-/tmp/diffusion_runs}
MINUTES=${MINUTES:-9}
STEPS=${STEPS:-80000}
mkdir -p "$OUT" "$RUNS"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/gpus_diffusion_$1.txt" || true

train() {  # name, extra flags...: start or resume runs/$name, then copy its logs to $OUT
  local name=$1; shift
  if [ -d "$RUNS/$name/checkpoints" ]; then
    python -m mimic_jax.diffusion.train --resume "$RUNS/$name" --max-minutes "$MINUTES"
  else
    python -m mimic_jax.diffusion.train --data "${DATA:?set DATA to a dataset directory}" --preset full \
      --steps "$STEPS" --out "$RUNS/$name" --max-minutes "$MINUTES" "$@"
  fi
  cp "$RUNS/$name/metrics.jsonl" "$OUT/${name}_metrics.jsonl"
  cp "$RUNS/$name/loss_curve.png" "$OUT/${name}_loss_curve.png"
}

case "$1" in
bench)
  python experiments/bench_diffusion.py --robots 1 1024 --batch-size 512 --json "$OUT/bench_diffusion_fp32.json"
  python experiments/bench_diffusion.py --bf16 --robots 1 1024 --batch-size 512 \
    --json "$OUT/bench_diffusion_bf16.json"
  ;;
model)
  python experiments/bench_diffusion.py --only model --bf16 --calls 2 --robots 1 1024 --unroll 20 1 --guided-only \
    --repeats 30 --json "$OUT/bench_diffusion_model_bf16.json"
  python experiments/bench_diffusion.py --only model --calls 2 --robots 1 --unroll 20 1 --guided-only \
    --repeats 30 --json "$OUT/bench_diffusion_model_fp32.json"
  ;;
bench_h32)
  python experiments/bench_diffusion.py --bf16 --horizon 32 --robots 1 1024 --batch-size 512 \
    --json "$OUT/bench_diffusion_bf16_h32.json"
  ;;
fp32) train diffusion_fp32 ;;
bf16)
  train diffusion_bf16 --bf16
  if [ -f "$RUNS/diffusion_fp32/metrics.jsonl" ]; then
    python experiments/diffusion_figures.py curves "$RUNS/diffusion_fp32" "$RUNS/diffusion_bf16" \
      --out "$OUT/diffusion_bf16.png"
  fi
  ;;
joint_pos) train diffusion_joint_pos --bf16 --representation joint_pos ;;
*) echo "error: unknown stage '$1' (bench, model, bench_h32, fp32, bf16, joint_pos)" >&2; exit 2 ;;
esac
