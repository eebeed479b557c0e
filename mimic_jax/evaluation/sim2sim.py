"""Sim-to-sim: the same policy on plain MuJoCo (the C engine, ``mujoco.mj_step`` on the CPU).

Same robot model (``g1.load_model()``, physics dt and collision setting from the run's config), same
actuation (position actuators, ctrl = default + scale * action, ``decimation`` substeps per action), same
observations and terminations: the JAX functions of the environment run on the CPU on arrays read from
``MjData``, built exactly as the MJX environment builds them:

* body velocities come from ``cvel`` with ``envs.robot.body_velocities`` (so, as on MJX, they describe the
  start of the last substep), read right after the physics steps;
* positions and orientations come from ``mj_kinematics`` at the new qpos (as ``mjx.kinematics``).

The protocol is the clean one (``rollout`` module doc): frame 0 to the clip end, mean action, no noise.
Any difference from the MJX numbers is therefore the engines' (MJX's own collision, solver and float32
arithmetic against MuJoCo C in float64).

The mismatch suite (``evaluation/mismatch.py``) plays the same episodes on a perturbed ``MjModel`` and with
:class:`Conditions`: an action delay and an IMU tilt (``envs.randomize.delay_action``, ``envs/imu.py``: the
functions the MJX side uses) and the environment's pushes (the same schedule and ranges, drawn from NumPy).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from mimic_jax import math as jm
from mimic_jax.assets import g1
from mimic_jax.envs import observations as obs_lib
from mimic_jax.envs import terminations as term_lib
from mimic_jax.envs.randomize import delay_action
from mimic_jax.envs.robot import RobotState, body_velocities, robot_state
from mimic_jax.evaluation.metrics import METRICS, Episodes, frame_errors
from mimic_jax.evaluation.rollout import (Policy, act, eval_env_config, one_hot_rows, one_hot_slice,
                                          termination_names)
from mimic_jax.motion.library import ROOT_INDEX, MotionLibrary, RefFrame


class _Arrays(NamedTuple):
    """What the JAX side reads off ``MjData`` after the physics steps of one control step."""

    qpos: np.ndarray
    qvel: np.ndarray
    xpos: np.ndarray  # after mj_kinematics at the new qpos
    xquat: np.ndarray
    xpos_substep: np.ndarray  # as the last substep left it: the frame of cvel
    cvel: np.ndarray
    subtree_com: np.ndarray


class _VelocityView(NamedTuple):
    cvel: jnp.ndarray
    xpos: jnp.ndarray
    subtree_com: jnp.ndarray


def _read(d: mujoco.MjData, xpos_substep: np.ndarray) -> _Arrays:
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return _Arrays(f32(d.qpos), f32(d.qvel), f32(d.xpos), f32(d.xquat), f32(xpos_substep), f32(d.cvel),
                   f32(d.subtree_com))


class PushSpec(NamedTuple):
    """The environment's pushes: every U(interval_s) seconds a root velocity change U(-lin, lin) and an
    angular one U(-ang, ang), both world frame."""

    interval_s: tuple[float, float]
    lin: np.ndarray  # [3]
    ang: np.ndarray  # [3]


class Conditions(NamedTuple):
    """What one MuJoCo episode changes beyond its model (the mismatch suite; defaults: none)."""

    delay: int = 0  # control steps from the policy's command to the motors
    tilt: np.ndarray | None = None  # [3, 3] IMU frame in the body (``envs.imu.tilt_observation``)
    push: PushSpec | None = None
    seed: int = 0  # of the pushes


def make_control(policy: Policy):
    """jitted ``(arrays, ref, last_action, one_hot, default_pos, tilt=None) -> (next action, errors,
    terminations)``; ``tilt`` [3, 3] reads the observation in a tilted IMU frame."""
    from mimic_jax.envs.imu import actor_layout, tilt_observation

    cfg = eval_env_config(policy.env_cfg, "clean", "jax")
    body_ids = g1.body_ids(g1.load_model(), g1.TRACKED_BODY_NAMES)
    block = one_hot_slice(cfg, policy.num_motions)
    layout = actor_layout(cfg, policy.num_motions)

    def control(params, normalizer, a: _Arrays, ref: RefFrame, last_action, one_hot, default_pos, tilt=None):
        """The environment's observation, the policy, the metrics and the terminations of one instant."""
        lin, ang = body_velocities(_VelocityView(a.cvel, a.xpos_substep, a.subtree_com), body_ids)
        robot: RobotState = robot_state(a, body_ids, lin, ang)
        obs = obs_lib.observe(cfg, robot, ref, last_action, default_pos, 0, policy.num_motions,
                              jax.random.PRNGKey(0))
        actor = obs["actor"] if tilt is None else tilt_observation(obs["actor"], layout, tilt)
        action = act(policy.nets, block, params, normalizer, actor, one_hot)
        terms = term_lib.terminations(cfg.terminations, robot, ref)
        return action, frame_errors(robot, ref), terms

    return jax.jit(control)


def _ref(tables: dict, index: int) -> RefFrame:
    return RefFrame(**{k: v[index] for k, v in tables.items()})


def _reset(model, d: mujoco.MjData, ref: RefFrame, default_pos: np.ndarray) -> None:
    """The robot exactly at the reference (clean reset): pose, root and joint velocities."""
    mujoco.mj_resetData(model, d)
    quat = ref.body_quat[ROOT_INDEX]
    ang_b = np.asarray(jm.quat_rotate_inv(jnp.asarray(quat), jnp.asarray(ref.body_ang_vel[ROOT_INDEX])))
    d.qpos[:] = np.concatenate([ref.body_pos[ROOT_INDEX], quat, ref.joint_pos])
    d.qvel[:] = np.concatenate([ref.body_lin_vel[ROOT_INDEX], ang_b, ref.joint_vel])
    d.ctrl[:] = default_pos
    mujoco.mj_forward(model, d)


def _push_steps(rng: np.random.Generator, spec: PushSpec, control_dt: float) -> int:
    return int(rng.uniform(*spec.interval_s) / control_dt)


def _push(d: mujoco.MjData, rng: np.random.Generator, spec: PushSpec) -> None:
    """A random root velocity change, as ``TrackingEnv._push`` (angular part rotated into the body frame)."""
    d_lin = rng.uniform(-1.0, 1.0, 3) * spec.lin
    d_ang = rng.uniform(-1.0, 1.0, 3) * spec.ang
    d.qvel[0:3] += d_lin
    d.qvel[3:6] += np.asarray(jm.quat_rotate_inv(jnp.asarray(d.qpos[3:7]), jnp.asarray(d_ang)))


def _episode(policy: Policy, control, model, tables: dict, one_hot, cfg, cond: Conditions = Conditions()) -> dict:
    """One clean episode of one clip (``tables``: its reference arrays) under ``cond``; per-step errors, qpos
    and outcome."""
    table = g1.joint_table()
    default_pos, scale = table.default_pos.astype(np.float32), table.action_scale
    tilt = None if cond.tilt is None else np.asarray(cond.tilt, np.float32)
    rng = np.random.default_rng(cond.seed)
    timer = _push_steps(rng, cond.push, cfg.control_dt) if cond.push is not None else 0
    queue = np.zeros((cond.delay + 1, g1.NUM_JOINTS), np.float32)
    d = mujoco.MjData(model)
    _reset(model, d, _ref(tables, 0), default_pos)
    qpos0 = d.qpos.copy()
    action, _, _ = control(policy.params, policy.normalizer, _read(d, d.xpos.copy()), _ref(tables, 0),
                           np.zeros(g1.NUM_JOINTS, np.float32), one_hot, default_pos, tilt)
    rec = {"errors": [], "qpos": [], "terms": [], "failed": False}
    for frame in range(1, len(tables["joint_pos"])):
        if cond.push is not None:
            if timer <= 0:
                _push(d, rng, cond.push)
                timer = _push_steps(rng, cond.push, cfg.control_dt)
            else:
                timer -= 1
        queue, executed = delay_action(queue, action, cond.delay)
        d.ctrl[:] = default_pos + scale * np.asarray(executed)
        for _ in range(cfg.decimation):
            mujoco.mj_step(model, d)
        xpos_substep = d.xpos.copy()
        mujoco.mj_kinematics(model, d)
        last = action  # the policy's own command, whatever the motors got
        action, errors, terms = control(policy.params, policy.normalizer, _read(d, xpos_substep),
                                        _ref(tables, frame), last, one_hot, default_pos, tilt)
        terms = {k: bool(v) for k, v in terms.items()}
        terms["nonfinite"] = not (np.all(np.isfinite(d.qpos)) and np.all(np.isfinite(d.qvel)))
        rec["errors"].append({k: float(v) for k, v in errors.items()})
        rec["qpos"].append(d.qpos.copy())
        rec["terms"].append(terms)
        if any(terms.values()):
            rec["failed"] = True
            break
    rec["qpos0"] = qpos0
    return rec


def _clip_tables(lib: MotionLibrary, motion_id: int) -> dict:
    start, length = int(lib.clip_start[motion_id]), int(lib.clip_length[motion_id])
    fields = ("joint_pos", "joint_vel", "body_pos", "body_quat", "body_lin_vel", "body_ang_vel")
    return {f: np.asarray(getattr(lib, f)[start:start + length], np.float32) for f in fields}


def _to_episodes(records: list[dict], motion_id: np.ndarray | None = None) -> Episodes:
    """Pads per-episode records to [T, N] arrays (NaN errors, last qpos) as :class:`Episodes` (episode n of
    clip ``motion_id[n]``, default: one per clip in order)."""
    n = len(records)
    length = np.array([len(r["errors"]) for r in records], np.int32)
    steps = int(length.max())
    errors = {k: np.full((steps, n), np.nan) for k in METRICS}
    qpos = np.zeros((steps, n, records[0]["qpos0"].size), np.float32)
    term_names = list(records[0]["terms"][0]) if records[0]["terms"] else ["nonfinite"]
    terms = {k: np.zeros((steps, n), bool) for k in term_names}
    failed = np.zeros((steps, n), bool)
    for i, r in enumerate(records):
        for t, (e, q, tm) in enumerate(zip(r["errors"], r["qpos"], r["terms"])):
            for k in METRICS:
                errors[k][t, i] = e[k]
            for k in term_names:
                terms[k][t, i] = tm[k]
        qpos[:length[i], i] = np.array(r["qpos"])
        qpos[length[i]:, i] = r["qpos"][-1]
        failed[length[i] - 1, i] = r["failed"]
    motion_id = np.arange(n, dtype=np.int32) if motion_id is None else np.asarray(motion_id, np.int32)
    return Episodes(motion_id=motion_id, start_frame=np.zeros(n, np.int32), length=length,
                    success=~failed.any(axis=0), termination=termination_names(terms, failed, length),
                    errors=errors, qpos0=np.stack([r["qpos0"] for r in records]), qpos=qpos, engine="mujoco")


def mujoco_episodes(policy: Policy, lib: MotionLibrary, *, progress: bool = False, model=None,
                    conditions: Conditions | None = None, episodes: int = 1, seed: int = 0) -> Episodes:
    """Clean episodes (``episodes`` per clip of ``lib``) on MuJoCo C; the same :class:`Episodes` as
    ``mjx_episodes``. ``model`` replaces the robot model (a perturbed one), ``conditions`` adds a delay, an
    IMU tilt or pushes; episode k of a clip draws its pushes from ``seed + k``."""
    cfg = eval_env_config(policy.env_cfg, "clean", "jax")
    if model is None:
        model = g1.load_model(collisions=cfg.collisions)
    model.opt.timestep = cfg.physics_dt
    control = make_control(policy)
    rows = one_hot_rows(policy, lib.names)[0]
    motion_id = np.repeat(np.arange(lib.num_motions, dtype=np.int32), episodes)
    items = range(motion_id.size)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="sim2sim (MuJoCo)", unit="episode", leave=False)
    cond = conditions or Conditions()
    records = [_episode(policy, control, model, _clip_tables(lib, int(motion_id[i])), rows[motion_id[i]], cfg,
                        cond._replace(seed=seed + i % episodes)) for i in items]
    return _to_episodes(records, motion_id)


def joint_replay_policy(config, motion_names, offset: float = 100.0) -> Policy:
    """A policy without training for engine comparisons: it replays the reference joints open-loop.

    The actor MLP is set to compute exactly ``action = (ref_joint_pos - default) / action_scale`` from the
    observation (identity normalizer; every ELU is fed ``x + offset > 0``, where it is the identity, and the
    last layer removes the offset), so the PD targets are the reference joint angles. Nothing balances the
    robot: it stands and sways, and falls in most dynamic clips, identically in both engines if they agree.
    Needs hidden layers of at least 29 units.
    """
    from mimic_jax.evaluation.rollout import make_policy
    from mimic_jax.ppo.networks import make_networks

    sizes = obs_lib.observation_size(config.env, len(motion_names))
    nets = make_networks(sizes["actor"], sizes["critic"], g1.NUM_JOINTS, config.ppo)
    if min(config.ppo.hidden_sizes) < g1.NUM_JOINTS:
        raise ValueError(f"joint replay needs hidden layers of >= {g1.NUM_JOINTS} units, got {config.ppo.hidden_sizes}")
    params = jax.tree.map(np.zeros_like, jax.device_get(nets.init(jax.random.PRNGKey(0))))
    table, j = g1.joint_table(), np.arange(g1.NUM_JOINTS)
    mlp = params.policy["params"]["MLP_0"]
    first = mlp["hidden_0"]
    first["kernel"][j, j] = 1.0 / table.action_scale  # ref_joint_pos is the first observation term
    first["bias"][j] = offset - table.default_pos / table.action_scale
    for i in range(1, len(mlp)):
        mlp[f"hidden_{i}"]["kernel"][j, j] = 1.0
    params.policy["params"]["Dense_0"]["kernel"][j, j] = 1.0
    params.policy["params"]["Dense_0"]["bias"][:] = -offset
    return make_policy(config, jax.tree.map(jnp.asarray, params), nets.init_normalizer(), motion_names)
