"""End-to-end training throughput (rollout + update) beside raw MJX physics, in the same run.

    python experiments/bench_train.py --num-envs 4096 16384 --calls 5 --iterations-per-call 4 --json out.json

env-steps/s counts control steps of all environments per second of training (policy inference, physics,
observations, rewards, resets, sampler, GAE and the PPO epochs), first call (compilation) excluded.

With several devices (``--devices 2``) ``--num-envs`` is the global batch; the raw physics rate is measured
on the first device with its share of the environments, and ``train_over_raw`` compares the training rate
with that rate times the number of devices. ``--processes N`` runs one process per GPU (``jax.distributed``)
instead of one process driving them all. ``--breakdown-envs N`` also times the rollout program and the PPO
update program on their own (several devices in one process: the rollouts only), to show where an
iteration's time goes. ``--xla-cache DIR`` turns on JAX's persistent compilation cache (the Warp kernel
cache is separate: ``WARP_CACHE_PATH``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp

from mimic_jax import distributed
from mimic_jax.backend import resolve_impl
from mimic_jax.envs.config import EnvConfig
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.trainer import TrainConfig, Trainer

from bench_env import load_bench_library  # noqa: E402  (same folder)


def raw_physics_rate(trainer: Trainer, steps: int = 50) -> float:
    env, world = trainer.env, trainer.shards[0].world
    in_axes = world.in_axes
    data = trainer.init().envs[0].env.data

    @jax.jit
    def run(m, d):
        step = jax.vmap(lambda mm, dd: env.physics(mm, dd, jnp.zeros(env.action_size), env.default_pos),
                        in_axes=(in_axes, 0))
        return jax.lax.scan(lambda dd, _: (step(m, dd), None), d, None, length=steps)[0]

    jax.block_until_ready(run(world.model, data))
    t0 = time.perf_counter()
    jax.block_until_ready(run(world.model, data))
    return trainer.envs_per_device * steps / (time.perf_counter() - t0)


def breakdown(trainer: Trainer, carry, repeats: int = 3) -> dict:
    """Seconds per iteration of the rollout program and of the PPO update program, each run on its own. With
    several local devices: the rollouts of all of them, dispatched together as in training (no update)."""
    from mimic_jax.ppo.update import sgd_update

    ts = trainer.local_train_state(carry)
    envs = list(carry.envs)

    def rollouts():
        outs = []
        for i, sh in enumerate(trainer.shards):
            params = jax.device_put((ts.params, ts.normalizer), sh.device)
            res = trainer._rollout(*params, sh.world, envs[i])
            envs[i] = res.state
            outs.append(res.rollout)
        return outs

    jax.block_until_ready(rollouts())  # compile
    t0 = time.perf_counter()
    for _ in range(repeats):
        outs = rollouts()
    jax.block_until_ready(outs)
    rollout_s = (time.perf_counter() - t0) / repeats
    if len(trainer.shards) > 1:
        return {"rollouts_all_local_devices_s_per_iteration": rollout_s}
    out = outs[0]
    update = jax.jit(lambda t, o, k: sgd_update(trainer.nets, t, o, k, trainer.cfg.ppo))
    key = jax.random.PRNGKey(0)
    jax.block_until_ready(update(ts, out, key))
    t0 = time.perf_counter()
    for _ in range(repeats):
        res = update(ts, out, key)
    jax.block_until_ready(res)
    update_s = (time.perf_counter() - t0) / repeats
    return {"rollout_s_per_iteration": rollout_s, "update_s_per_iteration": update_s}


def bench(num_envs: int, calls: int, per_call: int, impl: str, lib, devices: int, split: bool = False,
          graph_mode: str = "warp", collisions: str = "self") -> dict:
    env = EnvConfig(impl=impl, warp_graph_mode=graph_mode, collisions=collisions)
    cfg = TrainConfig(env=env, ppo=PPOConfig(num_envs=num_envs), iterations_per_call=per_call, num_devices=devices)
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
    row = {"num_envs": num_envs, "devices": len(trainer.devices), "processes": jax.process_count(), "impl": impl,
           "warp_graph_mode": graph_mode, "collisions": collisions,
           "train_env_steps_per_s": steps / wall, "first_call_s": compile_s, "setup_s": setup_s,
           "iterations": per_call * (calls + 1), "final_reward_per_step": float(metrics["rollout/reward_per_step"])}
    row["seconds_per_iteration"] = wall / (per_call * calls)
    # Per device, before the raw-physics and breakdown programs allocate their own state. The process's peak so
    # far: run sizes in increasing order.
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**30 for d in trainer.local_devices]
    row["peak_gpu_memory_gb"] = max(peaks)
    n_dev = len(trainer.devices)
    row["raw_env_steps_per_s"] = raw_physics_rate(trainer) * n_dev  # first device's share, times the devices
    row["train_over_raw"] = row["train_env_steps_per_s"] / row["raw_env_steps_per_s"]
    if split:
        row.update(breakdown(trainer, carry))
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
    p.add_argument("--breakdown-envs", type=int, nargs="*", default=[],
                   help="for these sizes (one device), also time the rollout and the update on their own")
    p.add_argument("--xla-cache", default=None, help="directory for JAX's persistent compilation cache")
    p.add_argument("--warp-graph-mode", default="warp", choices=["warp", "jax", "none"])
    p.add_argument("--collisions", default="self", choices=["self", "floor", "feet"],
                   help="env.collisions: self-collisions (default), robot-floor only, or feet only")
    p.add_argument("--processes", type=int, default=1,
                   help="one process per GPU (jax.distributed); --devices then counts all processes' devices")
    args = p.parse_args(argv)
    if args.processes > 1 and not distributed.is_child():
        raise SystemExit(distributed.launch([sys.executable, *sys.argv], args.processes))
    distributed.initialize_from_env()
    main_process = jax.process_index() == 0
    if args.xla_cache:
        jax.config.update("jax_compilation_cache_dir", args.xla_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    impl = resolve_impl(args.impl)
    lib, set_name = load_bench_library(args.motion_set)
    rows = []
    for n in args.num_envs:
        devices = 0 if jax.process_count() > 1 else args.devices
        row = bench(n, args.calls, args.iterations_per_call, impl, lib, devices, n in args.breakdown_envs,
                    args.warp_graph_mode, args.collisions)
        row.update(device=jax.devices()[0].device_kind, motion_set=set_name, date=time.strftime("%Y-%m-%d"),
                   jax=jax.__version__, xla_cache=bool(args.xla_cache))
        rows.append(row)
        if not main_process:
            continue
        print(json.dumps(row), flush=True)
        if args.json:  # after every size, so a later failure keeps the rows measured so far
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
                f.write("\n")
    if not main_process:
        return
    print(f"{'envs':>7} {'dev':>3} {'train steps/s':>14} {'raw steps/s':>12} {'ratio':>6} {'1st call s':>10} {'GB':>6}")
    for r in rows:
        print(f"{r['num_envs']:>7} {r['devices']:>3} {r['train_env_steps_per_s']:>14.0f} "
              f"{r.get('raw_env_steps_per_s', float('nan')):>12.0f} {r.get('train_over_raw', float('nan')):>6.2f} "
              f"{r['first_call_s']:>10.1f} {r['peak_gpu_memory_gb']:>6.1f}")


if __name__ == "__main__":
    main()
