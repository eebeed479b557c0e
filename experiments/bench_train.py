"""End-to-end training throughput (rollout + update) beside raw MJX physics, in the same run.

    python experiments/bench_train.py --num-envs 4096 16384 --calls 5 --iterations-per-call 4 --json out.json

env-steps/s counts control steps of all environments per second of training (policy inference, physics,
observations, rewards, resets, sampler, GAE and the PPO epochs), first call (compilation) excluded.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp

from mimic_jax.envs.config import EnvConfig
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.trainer import TrainConfig, Trainer

from bench_env import load_bench_library  # noqa: E402  (same folder)


def raw_physics_rate(trainer: Trainer, steps: int = 50) -> float:
    env, sh = trainer.env, trainer.shards[0]
    in_axes = trainer.in_axes
    data = trainer.init().envs[0].env.data

    @jax.jit
    def run(m, d):
        step = jax.vmap(lambda mm, dd: env.physics(mm, dd, jnp.zeros(env.action_size), env.default_pos),
                        in_axes=(in_axes, 0))
        return jax.lax.scan(lambda dd, _: (step(m, dd), None), d, None, length=steps)[0]

    jax.block_until_ready(run(sh.model, data))
    t0 = time.perf_counter()
    jax.block_until_ready(run(sh.model, data))
    return trainer.envs_per_device * steps / (time.perf_counter() - t0)


def bench(num_envs: int, calls: int, per_call: int, impl: str, lib, devices: int) -> dict:
    cfg = TrainConfig(env=EnvConfig(impl=impl), ppo=PPOConfig(num_envs=num_envs), iterations_per_call=per_call,
                      num_devices=devices)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, lib)
    carry = trainer.init()
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    carry, metrics = trainer.train_step(carry)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(calls):
        carry, metrics = trainer.train_step(carry)
    jax.block_until_ready(metrics)
    wall = time.perf_counter() - t0
    steps = num_envs * cfg.ppo.unroll_length * per_call * calls
    row = {"num_envs": num_envs, "devices": len(trainer.devices), "impl": impl,
           "train_env_steps_per_s": steps / wall, "first_call_s": compile_s, "setup_s": setup_s,
           "iterations": per_call * (calls + 1), "final_reward_per_step": float(metrics["rollout/reward_per_step"])}
    if len(trainer.devices) == 1:
        row["raw_env_steps_per_s"] = raw_physics_rate(trainer)
        row["train_over_raw"] = row["train_env_steps_per_s"] / row["raw_env_steps_per_s"]
    stats = jax.devices()[0].memory_stats() or {}
    row["peak_gpu_memory_gb"] = stats.get("peak_bytes_in_use", 0) / 2**30
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", default="auto", choices=["auto", "jax", "warp"])
    p.add_argument("--num-envs", type=int, nargs="+", default=[64])
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--iterations-per-call", type=int, default=2)
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--motion-set", default="locomotion_basic")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    impl = args.impl if args.impl != "auto" else ("warp" if jax.default_backend() == "gpu" else "jax")
    lib, set_name = load_bench_library(args.motion_set)
    rows = []
    for n in args.num_envs:
        row = bench(n, args.calls, args.iterations_per_call, impl, lib, args.devices)
        row.update(device=jax.devices()[0].device_kind, motion_set=set_name, date=time.strftime("%Y-%m-%d"),
                   jax=jax.__version__)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(f"{'envs':>7} {'dev':>3} {'train steps/s':>14} {'raw steps/s':>12} {'ratio':>6} {'1st call s':>10} {'GB':>6}")
    for r in rows:
        print(f"{r['num_envs']:>7} {r['devices']:>3} {r['train_env_steps_per_s']:>14.0f} "
              f"{r.get('raw_env_steps_per_s', float('nan')):>12.0f} {r.get('train_over_raw', float('nan')):>6.2f} "
              f"{r['first_call_s']:>10.1f} {r['peak_gpu_memory_gb']:>6.1f}")


if __name__ == "__main__":
    main()
