"""TrackingEnv: pure reset/step of one environment on MJX (vmapped by ``autoreset``).

Timing: the reference advances one frame per control step; after a step the robot (at time t + dt) is
compared with the reference frame of time t + dt, so observations, rewards and terminations all see the
robot and the reference at the same instant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
from flax import struct
from mujoco import mjx

from mimic_jax import math as jm
from mimic_jax.assets import g1
from mimic_jax.envs import imu
from mimic_jax.envs import observations as obs_lib
from mimic_jax.envs import randomize
from mimic_jax.envs import rewards as rew_lib
from mimic_jax.envs import terminations as term_lib
from mimic_jax.envs.config import EnvConfig
from mimic_jax.envs.robot import body_velocities, contact_forces, penalised_bodies, robot_state, undesired_contacts
from mimic_jax.motion.library import ROOT_INDEX, MotionLibrary, RefFrame


@struct.dataclass
class EnvState:
    data: mjx.Data
    motion_id: jnp.ndarray  # int32
    frame: jnp.ndarray  # int32, reference frame of the current instant
    start_bin: jnp.ndarray  # int32, sampler bin the episode (or clip segment) started in
    step: jnp.ndarray  # int32, control steps since the episode started
    last_action: jnp.ndarray  # [29]
    default_pos: jnp.ndarray  # [29], randomized default pose, fixed for the env's life
    push_timer: jnp.ndarray  # int32 control steps until the next push
    action_queue: jnp.ndarray  # [max delay + 1, 29] the last commands, newest first (randomize.delay_action)
    action_delay: jnp.ndarray  # int32 control steps from a command to the motors, drawn per episode
    imu_tilt: jnp.ndarray  # [3, 3] IMU frame in the body, drawn per episode (envs/imu.py)
    rng: jnp.ndarray
    obs: dict


@struct.dataclass
class StepInfo:
    reward: jnp.ndarray
    terms: dict  # unweighted reward terms
    terminations: dict  # bool per named termination
    terminated: jnp.ndarray  # failure (any termination, or non-finite physics)
    time_out: jnp.ndarray
    clip_end: jnp.ndarray
    nonfinite: jnp.ndarray


SOLVER_LIMIT_BITS = (1 << 9) | (1 << 10)  # MuJoCo Warp OverflowType.ITERATIONS | LS_ITERATIONS
BUFFER_OVERFLOW_BITS = (1 << 0) | (1 << 2) | (1 << 3)  # NEFC | BROADPHASE | NARROWPHASE (contacts)


def _quiet(mx):
    """MJX-Warp prints a warning every step in which a fallen robot hits the solver iteration limit (10, as
    in the public MuJoCo port). Those steps are expected; buffer overflows stay reported (and are turned
    into an error by ``buffer_overflow``)."""
    impl = getattr(mx.opt, "_impl", None)
    if impl is not None and hasattr(impl, "warn_overflow"):
        return mx.replace(opt=mx.opt.replace(_impl=impl.replace(warn_overflow=int(impl.warn_overflow)
                                                               & ~SOLVER_LIMIT_BITS)))
    return mx


def buffer_overflow(data) -> jnp.ndarray:
    """True where MJX-Warp ran out of contact or constraint buffer this step (always False on JAX)."""
    impl = getattr(data, "_impl", None)
    flags = getattr(impl, "overflow", None)
    if flags is None:
        return jnp.zeros((), bool)
    return jnp.any((flags & BUFFER_OVERFLOW_BITS) != 0)


class TrackingEnv:
    """The BeyondMimic tracking problem for our G1. Static tables live here; state lives in ``EnvState``."""

    def __init__(self, cfg: EnvConfig, num_motions: int, model: mujoco.MjModel | None = None):
        self.cfg = cfg
        self.num_motions = int(num_motions)
        self.mj_model = model if model is not None else g1.load_model(collisions=cfg.collisions)
        self.mj_model.opt.timestep = cfg.physics_dt
        # This process's first device: with several processes (jax.distributed), jax.devices()[0], MJX's
        # default, can belong to another process.
        self.device = jax.local_devices()[0]
        extra = {"graph_mode": _graph_mode(cfg.warp_graph_mode)} if cfg.impl == "warp" else {}
        self.mx = _quiet(mjx.put_model(self.mj_model, impl=cfg.impl, device=self.device, **extra))
        if cfg.randomization.enabled and cfg.randomization.joint_frictionloss[1] > 0:  # rows for the randomized values
            self.mx = randomize.with_frictionloss_rows(self.mx, randomize.joint_dof_mask(self.mj_model))
        table = g1.joint_table()
        self.action_scale = jnp.asarray(table.action_scale, jnp.float32)
        self.velocity_limit = jnp.asarray(table.velocity_limit, jnp.float32) if cfg.joint_velocity_limits else None
        self.default_pos = jnp.asarray(table.default_pos, jnp.float32)
        center, half = (table.lower + table.upper) / 2, (table.upper - table.lower) / 2
        self.soft_lower = jnp.asarray(center - cfg.soft_limit_factor * half, jnp.float32)
        self.soft_upper = jnp.asarray(center + cfg.soft_limit_factor * half, jnp.float32)
        self.body_ids = g1.body_ids(self.mj_model, g1.TRACKED_BODY_NAMES)
        self.torso_id = int(g1.body_ids(self.mj_model, [g1.ANCHOR_BODY])[0])
        self.penalised_bodies = penalised_bodies(self.mj_model)
        self.observation_size = obs_lib.observation_size(cfg, self.num_motions)
        self.action_size = g1.NUM_JOINTS
        self.max_action_delay = randomize.max_action_delay(cfg.randomization)
        self.actor_layout = imu.actor_layout(cfg, self.num_motions)

    # -- data -------------------------------------------------------------------------------------------
    def make_data(self, num_envs: int) -> mjx.Data:
        """One env's data (vmapped by the caller); Warp buffers are sized for the whole batch."""
        if self.cfg.impl == "warp":
            return mjx.make_data(self.mj_model, impl="warp", naconmax=self.cfg.contacts_per_env * num_envs,
                                 njmax=self.cfg.constraints_per_env, device=self.device)
        return mjx.make_data(self.mx, device=self.device)

    # -- reset ------------------------------------------------------------------------------------------
    def _reset_pose(self, ref: RefFrame, key):
        r = self.cfg.reset
        k = jax.random.split(key, 6)
        u = lambda kk, shape, s: jax.random.uniform(kk, shape, minval=-1.0, maxval=1.0) * s  # noqa: E731
        pos = ref.body_pos[ROOT_INDEX] + u(k[0], (3,), jnp.array([r.pos_xy, r.pos_xy, r.pos_z]))
        rpy = u(k[1], (3,), jnp.array([r.rot_roll_pitch, r.rot_roll_pitch, r.rot_yaw]))
        quat = jm.quat_normalize(jm.quat_mul(jm.quat_from_euler_xyz(*rpy), ref.body_quat[ROOT_INDEX]))
        lin = ref.body_lin_vel[ROOT_INDEX] + u(k[2], (3,), jnp.array([r.lin_vel_xy, r.lin_vel_xy, r.lin_vel_z]))
        ang_w = ref.body_ang_vel[ROOT_INDEX] + u(
            k[3], (3,), jnp.array([r.ang_vel_roll_pitch, r.ang_vel_roll_pitch, r.ang_vel_yaw]))
        joints = jnp.clip(ref.joint_pos + u(k[4], (29,), r.joint_pos), self.soft_lower, self.soft_upper)
        # MuJoCo's free-joint angular velocity is in the body frame.
        qvel = jnp.concatenate([lin, jm.quat_rotate_inv(quat, ang_w), ref.joint_vel])
        return jnp.concatenate([pos, quat, joints]), qvel

    def reset(self, m, lib: MotionLibrary, data: mjx.Data, motion_id, frame, start_bin, default_pos, key):
        """A fresh episode of one env at (motion_id, frame), robot at the reference plus noise."""
        k_pose, k_obs, k_push, k_next = jax.random.split(key, 4)
        ref = lib.frame(motion_id, frame)
        qpos, qvel = self._reset_pose(ref, k_pose)
        data = data.replace(qpos=qpos, qvel=qvel, ctrl=default_pos, qacc_warmstart=jnp.zeros_like(data.qacc_warmstart))
        data = mjx.kinematics(m, data)
        lin, ang = ref.body_lin_vel, ref.body_ang_vel  # fresh data has no cvel yet; not used by observations
        robot = robot_state(data, self.body_ids, lin, ang)
        zeros = jnp.zeros(self.action_size)
        tilt = randomize.imu_tilt(key, self.cfg.randomization)
        obs = self._sense(obs_lib.observe(self.cfg, robot, ref, zeros, default_pos, motion_id, self.num_motions,
                                          k_obs), tilt)
        return EnvState(data=data, motion_id=motion_id, frame=frame, start_bin=start_bin,
                        step=jnp.zeros((), jnp.int32), last_action=zeros, default_pos=default_pos,
                        push_timer=self._push_interval(k_push),
                        action_queue=jnp.zeros((self.max_action_delay + 1, self.action_size)),
                        action_delay=randomize.action_delay(key, self.cfg.randomization), imu_tilt=tilt,
                        rng=k_next, obs=obs)

    def _sense(self, obs: dict, tilt) -> dict:
        """The actor's observation read through the episode's IMU (unchanged unless imu_tilt_deg is set)."""
        if not randomize.imu_tilt_on(self.cfg.randomization):
            return obs
        return {**obs, "actor": imu.tilt_observation(obs["actor"], self.actor_layout, tilt)}

    def _push_interval(self, key):
        lo, hi = self.cfg.randomization.push.interval_s
        steps = jax.random.uniform(key, (), minval=lo, maxval=hi) / self.cfg.control_dt
        return steps.astype(jnp.int32)

    # -- step -------------------------------------------------------------------------------------------
    def _push(self, data, state: EnvState, key):
        """Pushes: every U(interval_s) s add a random root velocity (``randomization.push``, world frame)."""
        p = self.cfg.randomization.push
        k1, k2, k3 = jax.random.split(key, 3)
        span_lin = jnp.array([p.lin_vel_xy, p.lin_vel_xy, p.lin_vel_z])
        span_ang = jnp.array([p.ang_vel_roll_pitch, p.ang_vel_roll_pitch, p.ang_vel_yaw])
        d_lin = jax.random.uniform(k1, (3,), minval=-1.0, maxval=1.0) * span_lin
        d_ang = jm.quat_rotate_inv(data.qpos[3:7], jax.random.uniform(k2, (3,), minval=-1.0, maxval=1.0) * span_ang)
        push = (state.push_timer <= 0) & p.enabled
        qvel = data.qvel.at[0:6].add(jnp.where(push, jnp.concatenate([d_lin, d_ang]), 0.0))
        timer = jnp.where(push, self._push_interval(k3), state.push_timer - 1)
        return data.replace(qvel=qvel), timer

    def physics(self, m, data, action, default_pos):
        data = data.replace(ctrl=default_pos + self.action_scale * action)
        return jax.lax.fori_loop(0, self.cfg.decimation, lambda _, d: self._substep(m, d), data)

    def _substep(self, m, data):
        """One ``mjx.step``, then the joint speeds clamped to the motor limits (what PhysX does with Isaac Lab's
        ``velocity_limit_sim`` in the public code; MuJoCo has no joint speed limit of its own)."""
        data = mjx.step(m, data)
        if self.velocity_limit is None:
            return data
        return data.replace(qvel=data.qvel.at[6:].set(jnp.clip(data.qvel[6:], -self.velocity_limit,
                                                                self.velocity_limit)))

    def step(self, m, lib: MotionLibrary, state: EnvState, action) -> tuple[EnvState, StepInfo]:
        """One control step without reset: physics, then reward and terminations at the new instant."""
        k_push, k_obs, k_next = jax.random.split(state.rng, 3)
        data, push_timer = self._push(state.data, state, k_push)
        # With an action delay the motors get an older command; the policy's own command is its last action.
        queue, executed = randomize.delay_action(state.action_queue, action, state.action_delay)
        data = self.physics(m, data, executed, state.default_pos)
        lin, ang = body_velocities(data, self.body_ids)
        data = mjx.kinematics(m, data)
        nonfinite = ~(jnp.all(jnp.isfinite(data.qpos)) & jnp.all(jnp.isfinite(data.qvel)))
        frame = state.frame + 1
        ref = lib.frame(state.motion_id, frame)
        robot = robot_state(data, self.body_ids, lin, ang)
        n_contacts = undesired_contacts(contact_forces(data), self.penalised_bodies)
        terms = rew_lib.reward_terms(self.cfg.rewards, robot, ref, action, state.last_action, self.soft_lower,
                                     self.soft_upper, n_contacts)
        reward = rew_lib.total_reward(self.cfg.rewards, terms, self.cfg.control_dt)
        terms_done = term_lib.terminations(self.cfg.terminations, robot, ref)
        terminated = nonfinite | jnp.any(jnp.stack(list(terms_done.values())))
        obs = self._sense(obs_lib.observe(self.cfg, robot, ref, action, state.default_pos, state.motion_id,
                                          self.num_motions, k_obs), state.imu_tilt)
        # A blown-up environment reports zeros, not NaN: its terms are summed into the batch's metrics.
        terms = {k: jnp.where(nonfinite, 0.0, v) for k, v in terms.items()}
        info = StepInfo(reward=jnp.where(nonfinite, 0.0, reward), terms=terms, terminations=terms_done,
                        terminated=terminated, time_out=state.step + 1 >= self.cfg.episode_steps,
                        clip_end=frame >= lib.clip_length[state.motion_id] - 1, nonfinite=nonfinite)
        new_state = state.replace(data=data, frame=frame, step=state.step + 1, last_action=action,
                                  push_timer=push_timer, action_queue=queue, rng=k_next, obs=obs)
        return new_state, info


def _graph_mode(name: str):
    from mujoco.mjx.warp import types as warp_types

    modes = {"warp": "WARP", "jax": "JAX", "none": "NONE"}
    if name not in modes:
        raise ValueError(f"env.warp_graph_mode must be one of {sorted(modes)}, not {name!r}")
    return getattr(warp_types.GraphMode, modes[name])
