#!/usr/bin/env bash
# The runs behind docs/evaluation.md, "Robustness under model mismatch" (issue 19), one stage per device call.
# Expects the wheels installed into /tmp/site (docs/benchmarks.md, "Reproducing"); writes under $OUT.
#
#   RUN=runs/<policy> bash experiments/mismatch_gpu.sh suite    # the suite on MJX-Warp: every perturbation
#   bash experiments/mismatch_gpu.sh train                      # 2 GPUs: the same run without and with the
#                                                               #   mismatch options, then the suite on both
#   RUN=runs/<policy> bash experiments/mismatch_gpu.sh cpu      # on a CPU (no GPU needed): MJX-JAX and MuJoCo C
#
# `train` writes $OUT/<name>.tgz, the run directories without their training state (enough for
# python -m mimic_jax.eval); unpack them and run the `cpu` stage on each for the MuJoCo C numbers.
set -euo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
SET=${SET:-locomotion_basic}       # the motion set of the training comparison
ITERS=${ITERS:-320}                # PPO iterations per run: ~310 reached tracked >= 90% on locomotion_basic
ENVS=${ENVS:-16384}
EPISODES=${EPISODES:-8}            # episodes per clip where pushes act (deterministic perturbations: 1)
# The mismatch options of the robust run (docs/environment.md): every model perturbation of the suite,
# the action delay and the IMU tilt; pushes are already part of the published training.
MISMATCH=(--set env.randomization.link_mass_scale=0.9,1.1 --set env.randomization.torso_added_mass=-2,2
          --set env.randomization.motor_strength_scale=0.9,1.1 --set env.randomization.armature_scale=0.8,1.2
          --set env.randomization.joint_damping=0,0.05 --set env.randomization.joint_frictionloss=0,0.2
          --set env.randomization.action_delay_steps=0,2 --set env.randomization.imu_tilt_deg=2
          --set env.constraints_per_env=280)  # the default 250 + one dry-friction row per joint (Warp)
mkdir -p "$OUT"
quiet() { grep -Ev '^Module|^Warp|^   |iterations limit|warn_overflow' || true; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/gpus_$1.txt" 2>/dev/null || true

suite() {  # suite RUN NAME [extra eval flags]: the table, JSON, CSV and plot of one run
  local run=$1 name=$2; shift 2
  mkdir -p "$OUT/plots_$name"
  python -m mimic_jax.eval --run "$run" --suite mismatch --episodes "$EPISODES" "$@" --json "$OUT/mismatch_$name.json" \
    --csv "$OUT/mismatch_$name.csv" --plots "$OUT/plots_$name" 2>&1 | quiet | tee "$OUT/mismatch_$name.txt"
}

case "$1" in
suite)
  RUN=${RUN:?set RUN to a run directory}
  suite "$RUN" "$(basename "$RUN")_warp" --impl warp
  ;;
train)
  CUDA_VISIBLE_DEVICES=0 python -m mimic_jax.train --motion-set "$SET" --num-envs "$ENVS" --iterations "$ITERS" \
    --seed 0 --out "$OUT/runs/base" > "$OUT/train_base.log" 2>&1 &
  CUDA_VISIBLE_DEVICES=1 python -m mimic_jax.train --motion-set "$SET" --num-envs "$ENVS" --iterations "$ITERS" \
    --seed 0 "${MISMATCH[@]}" --out "$OUT/runs/mismatch" > "$OUT/train_mismatch.log" 2>&1 &
  wait
  tail -n 3 "$OUT"/train_*.log | quiet
  CUDA_VISIBLE_DEVICES=0 suite "$OUT/runs/base" base_warp --impl warp &
  CUDA_VISIBLE_DEVICES=1 suite "$OUT/runs/mismatch" mismatch_warp --impl warp &
  wait
  for name in base mismatch; do  # no training state: only what evaluation reads
    tar czf "$OUT/$name.tgz" -C "$OUT/runs" --exclude=carry "$name"
  done
  rm -rf "$OUT/runs"
  ;;
cpu)
  RUN=${RUN:?set RUN to a run directory}
  suite "$RUN" "$(basename "$RUN")_cpu" --impl jax --sim2sim
  ;;
*)
  echo "error: unknown stage '$1' (suite, train, cpu)" >&2
  exit 2
  ;;
esac
