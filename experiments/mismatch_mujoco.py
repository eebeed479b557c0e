"""The model-mismatch suite on MuJoCo C alone (no MJX programs to compile: quick on a CPU) for a run.

    python experiments/mismatch_mujoco.py RUN OUT.json EPISODES_WITH_PUSHES

Prints one line per perturbation (success, tracked, MPJPE global and local, clips below 95 %) and writes OUT.json.
"""
import json, sys, time
import numpy as np
from mimic_jax.checkpoint import load_run
from mimic_jax.evaluation import mismatch
from mimic_jax.evaluation.metrics import summarize
from mimic_jax.evaluation.mismatch_suite import mujoco_suite
from mimic_jax.evaluation.rollout import policy_from_run
from mimic_jax.motion.library import build_library
from mimic_jax.motion.sets import load_motion_set, resolve_motion_set

run = load_run(sys.argv[1])
policy = policy_from_run(run)
entries = load_motion_set(resolve_motion_set(run.motion_set))
lib = build_library([c for _, c, _ in entries], [n for n, _, _ in entries])
t0 = time.time()
out = mujoco_suite(policy, lib, mismatch.STANDARD, episodes=int(sys.argv[3]), seed=0, progress=True)
rows = {}
for name, eps in out.items():
    per_clip, overall = summarize(eps, lib.names, np.asarray(lib.clip_length), 0.02)
    failing = [c for c, r in per_clip.items() if r["success_rate"] < 0.95] if isinstance(per_clip, dict) else None
    rows[name] = {"overall": overall, "failing_clips": failing}
    print(name, round(overall["success_rate"], 3), round(overall["tracked_rate"], 3),
          round(overall["mpjpe_global_mm"], 1), round(overall["mpjpe_local_mm"], 1), failing, flush=True)
json.dump({"run": sys.argv[1], "engine": "mujoco", "episodes_with_pushes": int(sys.argv[3]), "seconds": time.time() - t0,
           "rows": rows}, open(sys.argv[2], "w"), indent=1, default=float)
