"""Running the mismatch suite: every clip from frame 0 under every perturbation, on MJX and on MuJoCo C.

MJX: the episodes of all perturbations step together in one program of the episode runner
(``envs.episodes.run_episodes``), each episode on its own perturbed model (``mismatch.batched_mjx_model`` as the
runner's ``model_fn``: only the perturbed fields carry the batch axis) and behind its own delay and IMU tilt
(``sensing.MismatchPolicy``). Two kinds run in programs of their own: those with pushes (the environment has
the run's push config switched on) and those with dry friction (MJX's JAX backend has a friction row on
every joint there, and a row at zero friction would act as a soft velocity lock, so no episode without dry
friction may share their program); hence up to four programs. Everything else is the clean protocol: no
observation noise, no randomization, no reset noise, the mean action. A deterministic perturbation plays each
clip once; one with pushes ``episodes`` times (different pushes). On a CPU a program steps 8 episodes at a
time (the same compiled program for every 8).

MuJoCo C (``--sim2sim``): the same perturbations, one perturbed ``MjModel`` each (``mismatch.mujoco_model``),
the same delay and tilt functions and the same push schedule (``sim2sim.Conditions``).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.backend import resolve_impl
from mimic_jax.envs.config import EnvConfig
from mimic_jax.envs.imu import actor_layout, tilt_matrix
from mimic_jax.envs.randomize import ModelIndex, joint_dof_mask, model_index, with_frictionloss_rows
from mimic_jax.envs.tracking import TrackingEnv
from mimic_jax.evaluation import mismatch
from mimic_jax.evaluation.metrics import Episodes
from mimic_jax.evaluation.rollout import Policy, eval_env_config, one_hot_rows, termination_names
from mimic_jax.evaluation.sensing import MismatchPolicy
from mimic_jax.evaluation.sim2sim import Conditions, PushSpec, mujoco_episodes

MAX_DELAY = max(p.delay_steps for p in mismatch.STANDARD)
CPU_MAX_ENVS = 8  # jaxlib 0.10's batched Cholesky can hang with 16+ environments on a CPU (docs/training.md)


class Plan(NamedTuple):
    """Episodes of one program: the perturbation (index into its group) and the clip of each."""

    condition: np.ndarray  # [N] int32
    motion_id: np.ndarray  # [N] int32


def plan(perturbations, num_clips: int, episodes: int) -> Plan:
    """Every clip once per deterministic perturbation, ``episodes`` times per perturbation with pushes."""
    condition, motion_id = [], []
    for c, p in enumerate(perturbations):
        reps = episodes if p.pushes else 1
        condition += [c] * (num_clips * reps)
        motion_id += list(np.repeat(np.arange(num_clips), reps))
    return Plan(np.asarray(condition, np.int32), np.asarray(motion_id, np.int32))


def select(episodes: Episodes, mask: np.ndarray) -> Episodes:
    """The episodes where ``mask`` holds, as one :class:`Episodes`."""
    idx = np.flatnonzero(mask)
    return dataclasses.replace(
        episodes, motion_id=episodes.motion_id[idx], start_frame=episodes.start_frame[idx],
        length=episodes.length[idx], success=episodes.success[idx], termination=[episodes.termination[i] for i in idx],
        errors={k: v[:, idx] for k, v in episodes.errors.items()}, qpos0=episodes.qpos0[idx],
        qpos=None if episodes.qpos is None else episodes.qpos[:, idx])


def suite_env_config(train_cfg: EnvConfig, impl: str, *, pushes: bool, frictionloss: bool) -> EnvConfig:
    """The clean evaluation environment, with the run's pushes where asked, and room in Warp's constraint
    buffer for one dry-friction row per joint."""
    cfg = eval_env_config(train_cfg, "clean", impl)
    if pushes:
        push = dataclasses.replace(train_cfg.randomization.push, enabled=True)
        cfg = dataclasses.replace(cfg, randomization=dataclasses.replace(cfg.randomization, push=push))
    if frictionloss:
        cfg = dataclasses.replace(cfg, constraints_per_env=cfg.constraints_per_env + g1.NUM_JOINTS)
    return cfg


def push_spec(train_cfg: EnvConfig) -> PushSpec:
    """The run's pushes (``randomization.push``) for MuJoCo C."""
    p = train_cfg.randomization.push
    return PushSpec(interval_s=tuple(p.interval_s), lin=np.array([p.lin_vel_xy, p.lin_vel_xy, p.lin_vel_z]),
                    ang=np.array([p.ang_vel_roll_pitch, p.ang_vel_roll_pitch, p.ang_vel_yaw]))


@functools.lru_cache(maxsize=4)
def _environment(cfg: EnvConfig, num_motions: int, frictionloss: bool) -> TrackingEnv:
    """The suite's environment; with ``frictionloss`` its JAX-backend model has dry-friction rows on every
    joint (``randomize.with_frictionloss_rows``), so that its data, made from it, has room for them."""
    env = TrackingEnv(cfg, num_motions)
    if frictionloss:
        env.mx = with_frictionloss_rows(env.mx, joint_dof_mask(env.mj_model))
    return env


def _as_episodes(played, motion_id: np.ndarray) -> Episodes:
    failed = np.asarray(played.failed)
    length = np.sum(played.valid, axis=0).astype(np.int32)
    return Episodes(motion_id=motion_id, start_frame=np.zeros_like(motion_id), length=length,
                    success=~failed.any(axis=0), termination=termination_names(played.terminations, failed, length),
                    errors={k: np.asarray(v, np.float64) for k, v in played.records["errors"].items()},
                    qpos0=np.asarray(played.start_qpos), qpos=None, engine="mjx")


def _concatenate(parts: list[Episodes]) -> Episodes:
    if len(parts) == 1:
        return parts[0]
    cat = np.concatenate
    return Episodes(motion_id=cat([e.motion_id for e in parts]), start_frame=cat([e.start_frame for e in parts]),
                    length=cat([e.length for e in parts]), success=cat([e.success for e in parts]),
                    termination=[t for e in parts for t in e.termination],
                    errors={k: cat([e.errors[k] for e in parts], axis=1) for k in parts[0].errors},
                    qpos0=cat([e.qpos0 for e in parts]), qpos=None, engine="mjx")


def chunks(total: int, size: int | None) -> list[np.ndarray]:
    """Episode indices in runs of ``size`` (all at once for None), the last padded with its final index so
    that every run has the same shape and reuses one compiled program."""
    size = total if size is None else min(size, total)
    out = []
    for start in range(0, total, size):
        idx = np.arange(start, min(start + size, total))
        out.append(np.concatenate([idx, np.full(size - idx.size, idx[-1])]).astype(np.int32))
    return out


def _mjx_group(policy: Policy, lib, group, impl: str, episodes: int, key, max_envs: int | None) -> dict[str, Episodes]:
    """One program: every episode of the perturbations in ``group`` (one :func:`program_key`), ``max_envs``
    at a time."""
    from mimic_jax.envs.episodes import Start, make_world, run_episodes
    from mimic_jax.evaluation.rollout import TrackingRecorder

    pushes, frictionloss = program_key(group[0])
    cfg = suite_env_config(policy.env_cfg, impl, pushes=pushes, frictionloss=frictionloss)
    env = _environment(cfg, policy.num_motions, frictionloss)
    p = plan(group, lib.num_motions, episodes)
    one_hot = one_hot_rows(policy, lib.names)[0]
    layout = tuple(actor_layout(cfg, policy.num_motions).items())
    steps = int(np.max(np.asarray(lib.clip_length)) - 1)
    recorder = TrackingRecorder(tuple(int(i) for i in env.body_ids), qpos=False)
    parts = []
    for i, idx in enumerate(chunks(p.motion_id.size, max_envs)):
        condition, motion_id, n = p.condition[idx], p.motion_id[idx], idx.size
        k_world, k_run = jax.random.split(jax.random.fold_in(key, i))
        world = make_world(env, lib, n, k_world, randomize=False,
                           model_fn=mismatch.model_fn(group, condition, model_index(env)))
        delay, tilt = mismatch.episode_arrays(group, condition)
        runner = MismatchPolicy(inner=policy.runner_policy(one_hot[motion_id]), delay=jnp.asarray(delay),
                                tilt=jnp.asarray(tilt), layout=layout, max_delay=MAX_DELAY)
        zeros = jnp.zeros(n, jnp.int32)
        played = jax.device_get(run_episodes(env, world, runner, Start(jnp.asarray(motion_id), zeros, zeros), steps,
                                             k_run, recorder))
        keep = np.r_[True, idx[1:] != idx[:-1]]  # drop the padding
        parts.append(select(_as_episodes(played, motion_id), keep))
    everything = _concatenate(parts)
    return {q.name: select(everything, p.condition == c) for c, q in enumerate(group)}


def program_key(p: mismatch.Perturbation) -> tuple[bool, bool]:
    """(pushes, dry friction): perturbations that share a key run in one program."""
    return p.pushes, "dof_frictionloss" in p.fields


def mjx_suite(policy: Policy, lib, perturbations, *, episodes: int = 1, seed: int = 0, impl: str = "auto",
              max_envs: int | None = None) -> dict[str, Episodes]:
    """{perturbation name: its episodes} on MJX (module doc), in the order of ``perturbations``;
    ``max_envs`` episodes step together at most (default: all on a GPU, :data:`CPU_MAX_ENVS` on a CPU)."""
    impl = resolve_impl(impl)
    if max_envs is None and impl == "jax":
        max_envs = CPU_MAX_ENVS
    out: dict[str, Episodes] = {}
    groups: dict[tuple, list] = {}
    for p in perturbations:
        groups.setdefault(program_key(p), []).append(p)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(groups))
    for group, key in zip(groups.values(), keys):
        out.update(_mjx_group(policy, lib, group, impl, episodes, key, max_envs))
    return {p.name: out[p.name] for p in perturbations}


def mujoco_suite(policy: Policy, lib, perturbations, *, episodes: int = 1, seed: int = 0,
                 progress: bool = False) -> dict[str, Episodes]:
    """{perturbation name: its episodes} on MuJoCo C, one perturbed model per perturbation."""
    cfg = eval_env_config(policy.env_cfg, "clean", "jax")
    base = g1.load_model(collisions=cfg.collisions)
    index = ModelIndex.of(base, int(g1.body_ids(base, [g1.ANCHOR_BODY])[0]))
    items = perturbations
    if progress:
        from tqdm import tqdm

        items = tqdm(perturbations, desc="mismatch suite (MuJoCo)", unit="perturbation", leave=False)
    out = {}
    for p in items:
        cond = Conditions(delay=p.delay_steps, tilt=tilt_matrix(*p.imu_tilt_deg) if any(p.imu_tilt_deg) else None,
                          push=push_spec(policy.env_cfg) if p.pushes else None)
        out[p.name] = mujoco_episodes(policy, lib, model=mismatch.mujoco_model(base, p, index), conditions=cond,
                                      episodes=episodes if p.pushes else 1, seed=seed)
    return out


def evaluate(policy: Policy, lib, perturbations=mismatch.STANDARD, *, sim2sim: bool = False, episodes: int = 1,
             seed: int = 0, impl: str = "auto") -> dict[str, dict[str, Episodes]]:
    """{engine: {perturbation: episodes}}: MJX, and MuJoCo C with ``sim2sim``."""
    impl = resolve_impl(impl)
    programs = len({program_key(p) for p in perturbations})
    print(f"mismatch suite: {len(perturbations)} perturbations x {lib.num_motions} clips on MJX ({impl}); "
          f"{programs} programs compile (a minute or two each on a CPU)", file=sys.stderr)
    engines = {"mjx": mjx_suite(policy, lib, perturbations, episodes=episodes, seed=seed, impl=impl)}
    if sim2sim:
        engines["mujoco"] = mujoco_suite(policy, lib, perturbations, episodes=episodes, seed=seed,
                                         progress=sys.stderr.isatty())
    return engines


def main(args, run_info: dict, policy: Policy, lib, motion_set: str, generalization: bool) -> dict:
    """``python -m mimic_jax.eval --suite mismatch``: evaluate, print the tables, write ``--json``, ``--csv``
    and ``--plots DIR/mismatch_success.png``; returns the report."""
    from mimic_jax.evaluation import mismatch_report as mrep
    from mimic_jax.evaluation.report import write_json
    impl = resolve_impl(args.impl)
    engines = evaluate(policy, lib, mismatch.STANDARD, sim2sim=args.sim2sim, episodes=args.episodes, seed=args.seed,
                       impl=impl)
    control_dt = policy.env_cfg.control_dt
    evaluation = {"suite": "mismatch", "protocol": "clean, every clip from frame 0", "motion_set": motion_set,
                  "motions": list(lib.names), "generalization": generalization,
                  "episodes_per_clip": {"deterministic": 1, "with pushes": args.episodes}, "seed": args.seed,
                  "impl": impl, "control_dt": control_dt,
                  "one_hot": dict(zip(lib.names, one_hot_rows(policy, lib.names)[1]))}
    report = mrep.build_report(run_info, evaluation, engines, mismatch.STANDARD, lib.names, lib.clip_length,
                               control_dt)
    print(mrep.format_table(report))
    if args.json:
        print(f"wrote {write_json(report, args.json)}")
    if args.csv:
        print(f"wrote {mrep.write_csv(report, args.csv)}")
    if args.plots:
        print(f"wrote {mrep.plot_success(report, args.plots / 'mismatch_success.png')}")
    return report
