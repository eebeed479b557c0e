"""Speed of the phase-2 diffusion model: training steps/s and the latency of one guided K-step sample.

    python experiments/bench_diffusion.py --json bench.json                    # the published size (GPU)
    python experiments/bench_diffusion.py --bf16 --robots 1 1024 --batch-size 512
    python experiments/bench_diffusion.py --tiny                              # a tiny model (CPU, tests)

Targets (one H200): one guided 20-step sample <= 5 ms for 1 robot and <= 150 ms for 1024 robots. Random
weights and random data of the real shapes (speed does not depend on their values); the guidance cost is a
joystick cost (1/2 sum_t ||v_xy,t - g||^2 on the decoded root velocity). Every figure excludes the first
call (compilation) and waits for the result (``block_until_ready``); latencies are medians over
``--repeats`` calls. Prints one JSON object.

``replan``: one whole control step of the guided controller (``control.simulate.GuidedController.step``, what
the control bench runs at 50 Hz): encode the robots' states, slide and re-anchor the history, take each
robot's joystick costs of that step from a task plan (``control.guidance``: velocity + yaw-rate terms, the
fixed joystick sequence), then the K-step sample with ``jax.grad`` guidance at every level; the robots stand
in the default pose (MuJoCo C forward kinematics), no physics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from mimic_jax import states as st
from mimic_jax.diffusion.config import DEMO, Config, ModelConfig
from mimic_jax.diffusion.data import WindowData
from mimic_jax.diffusion.learner import init_state, train_fn
from mimic_jax.diffusion.model import DiffusionModel, count_params
from mimic_jax.diffusion.normalize import fit_normalizer
from mimic_jax.diffusion.sample import History, make_guidance, sample
from mimic_jax.diffusion.schedule import make_schedule

TINY = ModelConfig(layers=1, width=32, heads=2, horizon=8)


def joystick_cost(inp, goal):
    """1/2 sum_t ||v_xy,t - goal||^2 over the plan's root velocity (metres per second)."""
    v = st.root_lin_vel(st.BODY_POS, inp.states)[:, :2]
    return 0.5 * jnp.sum(jnp.square(v - goal))


def _config(args) -> Config:
    base = Config(model=TINY, train=DEMO.config.train) if args.tiny else Config()
    model = dataclasses.replace(base.model, compute_dtype="bfloat16" if args.bf16 else "float32",
                                **({"horizon": args.horizon} if args.horizon else {}))
    train = dataclasses.replace(base.train, batch_size=args.batch_size, steps_per_call=args.steps_per_call)
    return dataclasses.replace(base, model=model, train=train)


def _fake_data(cfg: Config, key, windows: int = 64, steps: int = 125) -> WindowData:
    rep = st.layout(cfg.model.representation)
    k1, k2 = jax.random.split(key)
    return WindowData(states=0.3 * jax.random.normal(k1, (windows, steps, rep.size)),
                      labels=0.3 * jax.random.normal(k2, (windows, steps, 29)),
                      train=jnp.arange(windows, dtype=jnp.int32), val=jnp.zeros(0, jnp.int32))


def _normalizer(cfg: Config, data: WindowData):
    rep = st.layout(cfg.model.representation)
    return fit_normalizer(np.asarray(data.states), np.asarray(data.labels), rep.global_mask,
                          emphasis=cfg.diffusion.emphasis, std_floor=cfg.diffusion.std_floor)


def bench_training(cfg: Config, calls: int) -> dict:
    data = _fake_data(cfg, jax.random.PRNGKey(1))
    norm, sched = _normalizer(cfg, data), make_schedule(cfg.diffusion)
    fn, state = train_fn(cfg), init_state(cfg, jax.random.PRNGKey(0))
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(fn(state, data, norm, sched))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(calls):
        state, metrics = fn(state, data, norm, sched)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - t0
    steps = calls * cfg.train.steps_per_call
    return {"params": count_params(state.params), "first_call_s": round(first, 2), "steps": steps,
            "steps_per_s": steps / seconds, "ms_per_step": 1e3 * seconds / steps,
            "samples_per_s": steps * cfg.train.batch_size / seconds}


def _history(cfg: Config, robots: int, key) -> History:
    rep, n = st.layout(cfg.model.representation), cfg.model.history
    k1, k2 = jax.random.split(key)
    frame = st.Frame(origin=jnp.zeros((robots, 3)), yaw=jnp.tile(jnp.array([1.0, 0, 0, 0]), (robots, 1)))
    return History(states=0.3 * jax.random.normal(k1, (robots, n + 1, rep.size)),
                   actions=0.3 * jax.random.normal(k2, (robots, n, 29)), frame=frame)


def _random_model(cfg: Config) -> DiffusionModel:
    """Random weights, and a normalizer fitted to random data of the real shapes."""
    data = _fake_data(cfg, jax.random.PRNGKey(1))
    return DiffusionModel(params=init_state(cfg, jax.random.PRNGKey(0)).params, normalizer=_normalizer(cfg, data),
                          schedule=make_schedule(cfg.diffusion), cfg=cfg)


def _latency(run, warmup, inputs) -> dict:
    """``run(warmup)`` once (compilation: ``first_call_s``), then ``run(x)`` for each input, each waited for."""
    t0 = time.perf_counter()
    jax.block_until_ready(run(warmup))
    first = time.perf_counter() - t0
    times = []
    for x in inputs:
        t0 = time.perf_counter()
        jax.block_until_ready(run(x))
        times.append(time.perf_counter() - t0)
    return {"first_call_s": round(first, 2), "median_ms": 1e3 * statistics.median(times),
            "p90_ms": 1e3 * float(np.percentile(times, 90))}


def bench_sampling(cfg: Config, robots: list[int], repeats: int, unrolls: list[int] = (1,),
                   guided_only: bool = False) -> dict:
    model = _random_model(cfg)
    guidance = make_guidance(joystick_cost, jnp.array([0.5, 0.0]), 0.1, cfg.diffusion.levels)
    keys = [jax.random.PRNGKey(i) for i in range(repeats)]
    out = {}
    for n, unroll in ((n, u) for n in robots for u in unrolls):
        history = _history(cfg, n, jax.random.PRNGKey(n))
        for name, g in (("guided", guidance), ("unguided", None))[: 1 if guided_only else 2]:
            run = lambda key, g=g, unroll=unroll: sample(model, history, key, g, unroll=unroll)  # noqa: E731
            key = f"{name}_{n}" if len(unrolls) == 1 else f"{name}_{n}_unroll{unroll}"
            out[key] = {"robots": n, "guided": g is not None, "unroll": unroll,
                        **_latency(run, jax.random.PRNGKey(0), keys)}
            print(json.dumps({key: out[key]}), file=sys.stderr, flush=True)  # a cut-short run keeps what it had
    return out


def _standing_obs(robots: int) -> dict:
    """The controller's observation of ``robots`` robots standing in the default pose at the origin."""
    import mujoco

    from mimic_jax.assets import g1
    from mimic_jax.diffusion.policy import mujoco_obs

    mj, table = g1.load_model(), g1.joint_table()
    d = mujoco.MjData(mj)
    d.qpos[:] = g1.qpos_from(np.array([0.0, 0.0, g1.DEFAULT_ROOT_HEIGHT]), np.array([1.0, 0, 0, 0]), table.default_pos)
    mujoco.mj_forward(mj, d)
    one = mujoco_obs([d], g1.body_ids(mj, g1.TRACKED_BODY_NAMES))["robot"]
    robot = jax.tree.map(lambda x: jnp.repeat(x, robots, axis=0), one)
    return {"robot": robot, "step": jnp.full((robots,), 10, jnp.int32)}


def bench_replan(cfg: Config, robots: list[int], repeats: int) -> dict:
    """Latency of one guided controller step (module doc) per robot count."""
    from mimic_jax.control import guidance as G
    from mimic_jax.control import protocols as proto
    from mimic_jax.control.simulate import GuidedController

    model = _random_model(cfg)
    step = jax.jit(lambda policy, carry, obs, key: policy.step(carry, obs, key))
    out = {}
    for n in robots:
        start = st.Frame(origin=np.zeros((n, 3), np.float32), yaw=np.tile(np.float32([1, 0, 0, 0]), (n, 1)))
        plan = G.plan("joystick", proto.joystick(proto.JoystickProtocol(), n, 0), start)
        policy = GuidedController(model=model, plan=plan, weight=jnp.float32(G.GuidanceConfig().joystick_weight))
        carry, obs = policy.init(n, jax.random.PRNGKey(0)), _standing_obs(n)
        keys = [jax.random.split(jax.random.PRNGKey(i), n) for i in range(repeats)]
        run = lambda k, policy=policy, carry=carry, obs=obs: step(policy, carry, obs, k)  # noqa: E731
        out[f"replan_{n}"] = {"robots": n, "guided": True,
                              **_latency(run, jax.random.split(jax.random.PRNGKey(2), n), keys)}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="a tiny model (1 layer, width 32, H 8) for CPUs and tests")
    p.add_argument("--bf16", action="store_true", help="bfloat16 activations")
    p.add_argument("--horizon", type=int, help="H (default: the config's, 16)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--steps-per-call", type=int, default=50)
    p.add_argument("--calls", type=int, default=4, help="timed training calls (after one warm-up call)")
    p.add_argument("--robots", type=int, nargs="+", default=[1, 1024])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--unroll", type=int, nargs="+",
                   help="denoising steps per loop iteration of the sampler, one figure each (default 1)")
    p.add_argument("--guided-only", action="store_true", help="no unguided sampling figures")
    p.add_argument("--only", choices=("all", "replan", "model"), default="all",
                   help="replan: only the guided controller step; model: training and bare sampling only "
                        "(no MuJoCo needed)")
    args = p.parse_args(argv)
    cfg = _config(args)
    device = jax.devices()[0]
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "device": f"{device.platform}: {device.device_kind}",
              "host": platform.node(), "jax": jax.__version__, "levels": cfg.diffusion.levels,
              "model": dataclasses.asdict(cfg.model), "batch_size": cfg.train.batch_size}
    if args.only != "model":
        result["replan"] = bench_replan(cfg, args.robots, args.repeats)
    if args.only != "replan":
        result["training"] = bench_training(cfg, args.calls)
        print(json.dumps({"training": result["training"]}), file=sys.stderr, flush=True)
        result["sampling"] = bench_sampling(cfg, args.robots, args.repeats, args.unroll or [1],
                                            args.guided_only)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
