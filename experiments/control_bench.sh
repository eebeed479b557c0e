#!/usr/bin/env bash
# The GPU runs behind docs/phase2.md, "Guidance and control" (issue 16), one stage per device call.
# Needs a trained diffusion model directory (issue 15) in $MODEL; writes under $OUT.
#
#   MODEL=runs/diffusion-... bash experiments/control_bench.sh bench     # every task, 100 episodes, weight sweep, MJX
#   MODEL=... bash experiments/control_bench.sh sim2sim                  # walk+perturb and joystick in MuJoCo C too
#   MODEL=... bash experiments/control_bench.sh videos                   # one video and one still per task
#   MODEL=... LAYOUT=joint_pos bash experiments/control_bench.sh bench   # the Joint-Pos model of the ablation
set -euo pipefail
export PYTHONUNBUFFERED=1
MODEL=${MODEL:?set MODEL to a trained diffusion model directory}
OUT=${OUT:-/tmp/out}
LAYOUT=${LAYOUT:-body_pos}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/gpus_$1.txt" || true

case "$1" in
bench)
  python -m mimic_jax.control bench --task all --model "$MODEL" --layout "$LAYOUT" --episodes 100 \
    --weights 0.5,1,2,4 --json "$OUT/control_bench_$LAYOUT.json" --plots "$OUT/control_plots_$LAYOUT" \
    | tee "$OUT/control_bench_$LAYOUT.txt"
  ;;
sim2sim)
  python -m mimic_jax.control bench --task perturb,joystick --model "$MODEL" --layout "$LAYOUT" --episodes 50 \
    --weights 1 --sim2sim --json "$OUT/control_sim2sim_$LAYOUT.json" | tee "$OUT/control_sim2sim_$LAYOUT.txt"
  ;;
videos)
  for task in perturb joystick waypoint obstacles inpaint; do
    python -m mimic_jax.control play --task "$task" --model "$MODEL" --seed 0 --video "$OUT/control_$task.mp4" \
      --still "$OUT/control_$task.png" --still-at 4
  done
  ;;
*)
  echo "error: unknown stage '$1' (bench, sim2sim, videos)" >&2
  exit 2
  ;;
esac
