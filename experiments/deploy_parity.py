"""The deployed folder against the JAX sim-to-sim, on every clip of a run's set (both on MuJoCo C, CPU).

    python experiments/deploy_parity.py --run runs/generalist-20261201-120000 --out runs/generalist-.../deploy

Exports the run's latest checkpoint (``export_deployment``: ONNX, deploy.yaml, model), plays every clip
of the run's motion set (or ``--motion-set``) with ``evaluation.sim2sim.mujoco_episodes`` (the environment's
JAX observation and policy on MuJoCo C) and with ``mimic_jax.deploy`` (sensors -> numpy observation ->
onnxruntime, the exported model), and writes ``parity.json`` and a table: per clip, both engines' success,
played length and MPJPE, and how far the two trajectories' qpos ever got apart. Needs no GPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mimic_jax.checkpoint import load_run
from mimic_jax.deploy.bundle import open_bundle
from mimic_jax.deploy.reference import Reference
from mimic_jax.deploy.runner import one_hot_for, run_episode
from mimic_jax.evaluation.metrics import summarize
from mimic_jax.evaluation.rollout import policy_from_run
from mimic_jax.evaluation.sim2sim import mujoco_episodes
from mimic_jax.export.writer import export_deployment
from mimic_jax.motion.library import build_library
from mimic_jax.motion.sets import load_motion_set, resolve_motion_set


def _reference(lib, clip: int) -> Reference:
    """Clip ``clip`` of the library (tracked bodies in deploy.yaml order) as the runner's reference."""
    start, length = int(lib.clip_start[clip]), int(lib.clip_length[clip])
    fields = {f: np.asarray(getattr(lib, f)[start:start + length], np.float64)
              for f in ("joint_pos", "joint_vel", "body_pos", "body_quat", "body_lin_vel", "body_ang_vel")}
    return Reference(name=lib.names[clip], source="motion library", **fields)


def _row(name: str, jax_clip: dict, deploy: dict, qpos_gap: float, apart_step: int | None) -> dict:
    keys = ("success_rate", "mean_episode_length_s", "mpjpe_global_mm", "joint_pos_error_rad")
    return {"clip": name, "sim2sim": {k: jax_clip[k] for k in keys}, "deploy": {k: deploy[k] for k in keys},
            "max_qpos_gap": qpos_gap, "first_step_apart_1e-4": apart_step}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, required=True, help="run directory or checkpoint")
    p.add_argument("--motion-set", help="default: the run's own set")
    p.add_argument("--out", type=Path, required=True, help="folder for the export and parity.json")
    args = p.parse_args(argv)
    run = load_run(args.run)
    policy = policy_from_run(run)
    clips = load_motion_set(resolve_motion_set(args.motion_set or run.motion_set))
    lib = build_library([c for _, c, _ in clips], [n for n, _, _ in clips])
    export_deployment(args.out / "policy.onnx", policy)
    bundle = open_bundle(args.out / "policy.onnx")
    t0 = time.perf_counter()
    episodes = mujoco_episodes(policy, lib, progress=True)
    per_clip, _ = summarize(episodes, lib.names, np.asarray(lib.clip_length), policy.env_cfg.control_dt)
    t1 = time.perf_counter()
    rows = []
    for clip, name in enumerate(lib.names):
        episode = run_episode(bundle, _reference(lib, clip), one_hot_for(bundle.config, name)[0])
        steps = min(len(episode.qpos), int(episodes.length[clip]))
        gap = np.abs(episode.qpos[:steps] - episodes.qpos[:steps, clip]).max(axis=1)
        apart = np.flatnonzero(gap > 1e-4)
        rows.append(_row(name, per_clip[name], episode.summary, float(gap.max()),
                         int(apart[0]) + 1 if apart.size else None))
    t2 = time.perf_counter()
    result = {"run": str(run.checkpoint), "clips": rows, "seconds": {"sim2sim": t1 - t0, "deploy": t2 - t1}}
    (args.out / "parity.json").write_text(json.dumps(result, indent=2))
    print(f"{'clip':<18} {'succ jax/dep':>12} {'len s jax/dep':>14} {'MPJPE-g jax/dep':>16} {'max dqpos':>10} apart@")
    for r in rows:
        j, d = r["sim2sim"], r["deploy"]
        print(f"{r['clip']:<18} {j['success_rate']:>5.0%}/{d['success_rate']:<5.0%} "
              f"{j['mean_episode_length_s']:>6.2f}/{d['mean_episode_length_s']:<6.2f} "
              f"{j['mpjpe_global_mm']:>7.1f}/{d['mpjpe_global_mm']:<7.1f} {r['max_qpos_gap']:>10.2e} "
              f"{r['first_step_apart_1e-4'] or '-'}")
    print(f"wrote {args.out / 'parity.json'} (sim2sim {t1 - t0:.1f} s, deploy {t2 - t1:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
