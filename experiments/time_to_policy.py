"""Wall-clock from a cold start to a policy that completes clips from frame 0, with periodic evaluation.

    python experiments/time_to_policy.py --motion-set motions/clips/walk_forward.npz --num-envs 4096 \
        --max-minutes 5 --target 0.95 --out runs/ttp_walk

Clock starts before the trainer is built (compilation included). Every ``--eval-every`` seconds the
deterministic policy is evaluated by the evaluation module (``mimic_jax.evaluation``, the same episode
runner and metrics as ``python -m mimic_jax.eval``) in its ``clean`` mode: every clip once from frame 0 to
its end, no noise, randomization or pushes. The final evaluation also runs its ``noisy`` mode: ``--episodes``
episodes per clip from frame 0 with the training's actor observation noise and pushes (no model
randomization, no reset noise).

Two success criteria are recorded per clip. ``success`` is the published one: the clip ends without a
termination (the terminations ignore horizontal position, so a policy that balances in place "succeeds" on a
walking clip). ``tracked`` also requires the anchor (torso) to stay within ``--max-drift`` metres of the
reference horizontally at every frame. ``--criterion`` picks which one ``--target`` applies to. Writes
``curve.jsonl``, ``summary.json`` and the final parameters (``params.npz``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from mimic_jax.backend import resolve_impl
from mimic_jax.checkpoint import config_to_dict
from mimic_jax.envs.config import EnvConfig
from mimic_jax.evaluation.metrics import summarize
from mimic_jax.evaluation.rollout import make_policy, mjx_episodes
from mimic_jax.motion.library import build_library
from mimic_jax.motion.sets import load_motion_set, resolve_motion_set
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.trainer import TrainConfig, Trainer, check_buffers

# curve.jsonl key suffix -> the evaluation summary field it reports, per clip
FIELDS = {"success": "success_rate", "tracked": "tracked_rate", "mpjpe_mm": "mpjpe_global_mm",
          "max_drift_m": "max_drift_m"}


def evaluate_modes(trainer: Trainer, carry, modes, episodes: int, max_drift: float, seed: int) -> dict:
    """{"<mode>_<field>": [per clip]} of the current policy in each evaluation mode."""
    ts = trainer.local_train_state(carry)
    policy = make_policy(trainer.cfg, ts.params, ts.normalizer, trainer.lib.names)
    out = {}
    for mode in modes:
        played = mjx_episodes(policy, trainer.lib, mode=mode, episodes=episodes, seed=seed,
                              impl=trainer.cfg.env.impl, qpos=False)
        per_clip, _ = summarize(played, trainer.lib.names, np.asarray(trainer.lib.clip_length),
                                trainer.cfg.env.control_dt, max_drift_m=max_drift)
        for suffix, field in FIELDS.items():
            out[f"{mode}_{suffix}"] = [per_clip[name][field] for name in trainer.lib.names]
    return out


def evaluate(trainer, carry, metrics, modes, args, t_start: float, it: int) -> dict:
    results = evaluate_modes(trainer, carry, modes, args.episodes, args.max_drift, seed=it)
    row = {"wall_s": time.perf_counter() - t_start, "iterations": it,
           "env_steps": it * args.num_envs * trainer.cfg.ppo.unroll_length,
           "reward_per_step": float(metrics["rollout/reward_per_step"]),
           "episode_length": float(metrics["episode/length"]), "clips": list(trainer.lib.names), **results}
    print(json.dumps({k: v for k, v in row.items() if k != "clips"}), flush=True)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--motion-set", default="motions/clips/walk_forward.npz")
    p.add_argument("--num-envs", type=int, default=4096)
    p.add_argument("--impl", default="auto", choices=["auto", "jax", "warp"])
    p.add_argument("--max-minutes", type=float, default=5.0)
    p.add_argument("--eval-every", type=float, default=30.0, help="seconds of training between evaluations")
    p.add_argument("--episodes", type=int, default=32, help="episodes per clip of the noisy evaluation")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--criterion", default="tracked", choices=["tracked", "published"],
                   help="which success rate --target applies to (see the module docstring)")
    p.add_argument("--max-drift", type=float, default=0.5, help="metres, for the tracked criterion")
    p.add_argument("--iterations-per-call", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/time_to_policy")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    impl = resolve_impl(args.impl)
    entries = load_motion_set(resolve_motion_set(args.motion_set))
    lib = build_library([c for _, c, _ in entries], [n for n, _, _ in entries])
    cfg = TrainConfig(env=EnvConfig(impl=impl), ppo=PPOConfig(num_envs=args.num_envs), seed=args.seed,
                      iterations_per_call=args.iterations_per_call)
    trainer = Trainer(cfg, lib, clip_weights=[w for _, _, w in entries])
    carry = trainer.init()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curve, reached, next_eval, it = [], None, 0.0, 0
    with open(out / "curve.jsonl", "w") as log:
        while True:  # at least one call, then until the time is up
            carry, metrics = trainer.train_step(carry)
            it += cfg.iterations_per_call
            jax.block_until_ready(metrics)
            check_buffers(metrics, cfg.env)
            wall = time.perf_counter() - t_start
            if wall > args.max_minutes * 60:
                break
            if wall < next_eval:
                continue
            row = evaluate(trainer, carry, metrics, ("clean",), args, t_start, it)
            log.write(json.dumps(row) + "\n")
            log.flush()
            curve.append(row)
            next_eval = row["wall_s"] + args.eval_every
            if min(row["clean_tracked" if args.criterion == "tracked" else "clean_success"]) >= args.target:
                reached = row["wall_s"]
                break
        final = evaluate(trainer, carry, metrics, ("clean", "noisy"), args, t_start, it)
        log.write(json.dumps(final) + "\n")
    ts = jax.device_get(trainer.local_train_state(carry))
    leaves = jax.tree.leaves({"params": ts.params, "normalizer": ts.normalizer})
    np.savez_compressed(out / "params.npz", **{f"leaf_{i:04d}": np.asarray(x) for i, x in enumerate(leaves)})
    (out / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=1))
    summary = {"motion_set": args.motion_set, "num_envs": args.num_envs, "device": jax.devices()[0].device_kind,
               "date": time.strftime("%Y-%m-%d"), "target": args.target, "criterion": args.criterion,
               "max_drift_m": args.max_drift, "seconds_to_target": reached,
               "final": final}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({"seconds_to_target": reached}))


if __name__ == "__main__":
    main()
