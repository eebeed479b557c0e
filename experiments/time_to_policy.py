"""Wall-clock from a cold start to a policy that completes clips from frame 0, with periodic evaluation.

    python experiments/time_to_policy.py --motion-set motions/clips/walk_forward.npz --num-envs 4096 \
        --max-minutes 5 --target 0.95 --out runs/ttp_walk

Clock starts before the trainer is built (compilation included). Every ``--eval-every`` seconds the
deterministic policy plays every clip of the set from frame 0 to its end in ``--episodes`` environments
per clip, twice: clean (no noise, randomization or pushes: the episodes are identical up to physics
nondeterminism) and noisy (actor observation noise and pushes on, no model randomization).

Two success criteria are recorded per clip. ``success`` is the published one: the clip ends without a
termination (the terminations ignore horizontal position, so a policy that balances in place "succeeds" on a
walking clip). ``tracked`` also requires the anchor (torso) to stay within ``--max-drift`` metres of the
reference horizontally at every frame. ``--criterion`` picks which one ``--target`` applies to. Writes
``curve.jsonl``, ``summary.json`` and the final parameters (``params.npz``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.backend import resolve_impl
from mimic_jax.checkpoint import config_to_dict
from mimic_jax.envs.config import EnvConfig, evaluation_config
from mimic_jax.envs.tracking import TrackingEnv
from mimic_jax.motion.library import build_library
from mimic_jax.motion.sets import load_motion_set, resolve_motion_set
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.trainer import TrainConfig, Trainer, check_buffers


def make_evaluator(env_cfg: EnvConfig, lib, nets, episodes: int, max_drift: float):
    """A jitted function (params, normalizer, lib, key) -> per clip [M]: (success, tracked, mpjpe_mm, length,
    max_drift_m)."""
    anchor = g1.TRACKED_BODY_NAMES.index(g1.ANCHOR_BODY)
    env = TrackingEnv(env_cfg, lib.num_motions)
    m_count = lib.num_motions
    n = m_count * episodes
    motion = jnp.repeat(jnp.arange(m_count, dtype=jnp.int32), episodes)
    steps = int(np.max(np.asarray(lib.clip_length))) - 1
    template = env.make_data(n)
    offsets = jnp.zeros((n, env.action_size))

    def run(params, normalizer, lib, key):
        keys = jax.random.split(key, n)
        reset = jax.vmap(env.reset, in_axes=(None, None, None, 0, None, None, 0, 0))
        state = reset(env.mx, lib, template, motion, jnp.int32(0), jnp.int32(0), env.default_pos + offsets, keys)
        last = lib.clip_length[motion] - 1

        def body(carry, _):
            state, alive, done, err_sum, count, drift = carry
            action = nets.deterministic_action(params, normalizer, state.obs)
            state, info = jax.vmap(env.step, in_axes=(None, None, 0, 0))(env.mx, lib, state, action)
            ref = lib.frame(state.motion_id, state.frame)
            pos = state.data.xpos[:, env.body_ids]
            err = jnp.mean(jnp.linalg.norm(pos - ref.body_pos, axis=-1), axis=-1)
            horizontal = jnp.linalg.norm(pos[:, anchor, :2] - ref.body_pos[:, anchor, :2], axis=-1)
            live = alive & ~done
            alive = alive & ~(info.terminated & live)
            done = done | (state.frame >= last)
            drift = jnp.maximum(drift, jnp.where(live, horizontal, 0.0))
            return (state, alive, done, err_sum + jnp.where(live, err, 0.0), count + live, drift), None

        init = (state, jnp.ones(n, bool), jnp.zeros(n, bool), jnp.zeros(n), jnp.zeros(n), jnp.zeros(n))
        (state, alive, done, err_sum, count, drift), _ = jax.lax.scan(body, init, None, length=steps)
        per_clip = lambda x: jnp.mean(x.reshape(m_count, episodes), axis=1)  # noqa: E731
        tracked = alive & (drift <= max_drift)
        return (per_clip(alive.astype(jnp.float32)), per_clip(tracked.astype(jnp.float32)),
                per_clip(1000 * err_sum / jnp.maximum(count, 1)), per_clip(count), per_clip(drift))

    return jax.jit(run)


def evaluate(trainer, carry, metrics, evaluators: dict, t_start: float, it: int, num_envs: int) -> dict:
    ts = trainer.local_train_state(carry)
    key = jax.random.PRNGKey(it)
    rows = {name: [np.asarray(x).tolist() for x in fn(ts.params, ts.normalizer, trainer.lib, key)]
            for name, fn in evaluators.items()}
    row = {"wall_s": time.perf_counter() - t_start, "iterations": it,
           "env_steps": it * num_envs * trainer.cfg.ppo.unroll_length,
           "reward_per_step": float(metrics["rollout/reward_per_step"]),
           "episode_length": float(metrics["episode/length"]), "clips": list(trainer.lib.names),
           **{f"{k}_success": v[0] for k, v in rows.items()}, **{f"{k}_tracked": v[1] for k, v in rows.items()},
           **{f"{k}_mpjpe_mm": v[2] for k, v in rows.items()}, **{f"{k}_max_drift_m": v[4] for k, v in rows.items()}}
    print(json.dumps({k: v for k, v in row.items() if k != "clips"}), flush=True)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--motion-set", default="motions/clips/walk_forward.npz")
    p.add_argument("--num-envs", type=int, default=4096)
    p.add_argument("--impl", default="auto", choices=["auto", "jax", "warp"])
    p.add_argument("--max-minutes", type=float, default=5.0)
    p.add_argument("--eval-every", type=float, default=30.0, help="seconds of training between evaluations")
    p.add_argument("--episodes", type=int, default=32)
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
    clean = make_evaluator(evaluation_config(cfg.env), lib, trainer.nets, args.episodes, args.max_drift)
    clean_cfg = evaluation_config(cfg.env)
    noisy_cfg = dataclasses.replace(clean_cfg, noise=cfg.env.noise,
                                    randomization=dataclasses.replace(clean_cfg.randomization, push=True))
    noisy = make_evaluator(noisy_cfg, lib, trainer.nets, args.episodes, args.max_drift)
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
            row = evaluate(trainer, carry, metrics, {"clean": clean}, t_start, it, args.num_envs)
            log.write(json.dumps(row) + "\n")
            log.flush()
            curve.append(row)
            next_eval = row["wall_s"] + args.eval_every
            if min(row["clean_tracked" if args.criterion == "tracked" else "clean_success"]) >= args.target:
                reached = row["wall_s"]
                break
        final = evaluate(trainer, carry, metrics, {"clean": clean, "noisy": noisy}, t_start, it, args.num_envs)
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
