"""Environment throughput against raw MJX physics, measured in the same run.

    python experiments/bench_env.py --impl warp --num-envs 4096 16384 --steps 200 --json out.json

env-steps/s counts control steps (50 Hz, 4 physics steps each) of all environments. "raw" steps the same
model with the same batch size and 4 ``mjx.step`` calls per control step and nothing else; "env" is the
whole tracking environment (observations, rewards, terminations, resets at sampled frames, sampler
counts) with random actions.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from mimic_jax import sampling
from mimic_jax.backend import resolve_impl
from mimic_jax.envs.autoreset import BatchedEnv
from mimic_jax.envs.config import EnvConfig
from mimic_jax.envs.tracking import TrackingEnv
from mimic_jax.motion.library import build_library


def load_bench_library(motion_set: str):
    """The named set's clips, or a 4 s standing clip when the set cannot be loaded."""
    try:
        from mimic_jax.motion.sets import load_motion_set, resolve_motion_set

        entries = load_motion_set(resolve_motion_set(motion_set))
        return build_library([c for _, c, _ in entries], [n for n, _, _ in entries]), motion_set
    except Exception as exc:  # the set is optional for a benchmark
        print(f"note: using a synthetic standing clip ({exc})", file=sys.stderr)
        from mimic_jax.assets import g1
        from mimic_jax.motion.clip import make_clip

        t = np.arange(200)
        root = np.stack([0 * t, 0 * t, 0 * t + 0.76], 1).astype(float)
        quat = np.tile([1.0, 0, 0, 0], (200, 1))
        return build_library([make_clip(root, quat, np.tile(g1.joint_table().default_pos, (200, 1)))],
                             ["stand"]), "synthetic_stand"


def _time(fn, *args, repeats=3):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return out, compile_s, float(np.median(times))


def bench(num_envs: int, steps: int, impl: str, lib, collisions: str = "self") -> dict:
    cfg = EnvConfig(impl=impl, collisions=collisions)
    env = TrackingEnv(cfg, lib.num_motions)
    scfg = sampling.SamplerConfig()
    benv = BatchedEnv(env, num_envs, scfg)
    sampler = sampling.init_sampler(np.asarray(lib.clip_length), lib.fps, scfg)
    world = benv.world(lib, jax.random.PRNGKey(0))
    m, in_axes = world.model, world.in_axes
    bs = jax.jit(benv.init)(world, sampler, jax.random.PRNGKey(1))

    @jax.jit
    def env_rollout(world, bs, key):
        def body(bs, k):
            action = 0.3 * jax.random.normal(k, (num_envs, env.action_size))
            bs, tr = benv.step(world, bs, action)
            return bs, tr.reward.mean()
        return jax.lax.scan(body, bs, jax.random.split(key, steps))

    @jax.jit
    def raw_rollout(m, data):
        step = jax.vmap(lambda mm, d: env.physics(mm, d, jnp.zeros(env.action_size), env.default_pos),
                        in_axes=(in_axes, 0))
        return jax.lax.scan(lambda d, _: (step(m, d), None), data, None, length=steps)[0]

    _, raw_compile, raw_s = _time(raw_rollout, m, bs.env.data)
    _, env_compile, env_s = _time(env_rollout, world, bs, jax.random.PRNGKey(2))
    raw_rate, env_rate = num_envs * steps / raw_s, num_envs * steps / env_s
    return {"num_envs": num_envs, "steps": steps, "impl": impl, "collisions": collisions,
            "raw_env_steps_per_s": raw_rate, "env_steps_per_s": env_rate, "env_over_raw": env_rate / raw_rate,
            "raw_compile_s": raw_compile, "env_compile_s": env_compile}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", default="auto", choices=["auto", "jax", "warp"])
    p.add_argument("--num-envs", type=int, nargs="+", default=[64])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--motion-set", default="locomotion_basic")
    p.add_argument("--json", default=None)
    p.add_argument("--collisions", default="self", choices=["self", "floor", "feet"],
                   help="env.collisions: self-collisions (default), robot-floor only, or feet only")
    args = p.parse_args(argv)
    impl = resolve_impl(args.impl)
    lib, set_name = load_bench_library(args.motion_set)
    device = jax.devices()[0].device_kind
    rows = []
    for n in args.num_envs:
        row = bench(n, args.steps, impl, lib, args.collisions)
        row.update(device=device, motion_set=set_name, date=time.strftime("%Y-%m-%d"), jax=jax.__version__,
                   mujoco_mjx=getattr(mjx, "__version__", "3.17"), host=platform.node())
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(f"{'envs':>7} {'raw steps/s':>12} {'env steps/s':>12} {'ratio':>6}")
    for r in rows:
        print(f"{r['num_envs']:>7} {r['raw_env_steps_per_s']:>12.0f} {r['env_steps_per_s']:>12.0f} "
              f"{r['env_over_raw']:>6.2f}")


if __name__ == "__main__":
    main()
