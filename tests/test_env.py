"""The tracking environment: reward and termination maths, the batched contract, randomization."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimic_jax import math as jm
from mimic_jax import sampling
from mimic_jax.assets import g1
from mimic_jax.envs import randomize
from mimic_jax.envs import rewards as rew
from mimic_jax.envs import terminations as term
from mimic_jax.envs.autoreset import BatchedEnv
from mimic_jax.envs.config import EnvConfig, RewardConfig, TerminationConfig, evaluation_config
from mimic_jax.envs.robot import RobotState
from mimic_jax.envs.tracking import TrackingEnv
from mimic_jax.motion.clip import make_clip
from mimic_jax.motion.library import ANCHOR_INDEX, END_EFFECTOR_INDEX, build_library

TRACKING = ("anchor_pos", "anchor_ori", "body_pos", "body_ori", "body_lin_vel", "body_ang_vel")


def _walk_clip(frames=150, speed=0.5):
    t = np.arange(frames) / 50.0
    root = np.stack([speed * t, 0.1 * np.sin(t), 0.76 + 0.01 * np.sin(3 * t)], 1)
    yaw = 0.3 * np.sin(t)
    quat = np.stack([np.cos(yaw / 2), 0 * t, 0 * t, np.sin(yaw / 2)], 1)
    joints = np.tile(g1.joint_table().default_pos, (frames, 1))
    joints[:, 3] += 0.2 * np.sin(2 * t)
    joints[:, 15] += 0.3 * np.sin(t)
    return make_clip(root, quat, joints)


@pytest.fixture(scope="module")
def lib():
    return build_library([_walk_clip(), _walk_clip(100, 0.2)], ["walk", "slow"])


def _robot_from_ref(ref) -> RobotState:
    return RobotState(body_pos=ref.body_pos, body_quat=ref.body_quat, body_lin_vel=ref.body_lin_vel,
                      body_ang_vel=ref.body_ang_vel, joint_pos=ref.joint_pos, joint_vel=ref.joint_vel,
                      root_lin_vel_b=jnp.zeros(3), root_ang_vel_b=jnp.zeros(3))


def _terms(robot, ref, cfg=RewardConfig()):
    table = g1.joint_table()
    return rew.reward_terms(cfg, robot, ref, jnp.zeros(29), jnp.zeros(29), jnp.asarray(table.lower),
                            jnp.asarray(table.upper), 0.0)


def test_perfect_tracking_rewards_are_one(lib):
    ref = lib.frame(jnp.int32(0), jnp.int32(40))
    terms = _terms(_robot_from_ref(ref), ref)
    for name in TRACKING:
        np.testing.assert_allclose(terms[name], 1.0, atol=1e-6, err_msg=name)
    assert not any(bool(v) for v in term.terminations(TerminationConfig(), _robot_from_ref(ref), ref).values())


def test_anchor_offset_gives_exp_minus_one(lib):
    ref = lib.frame(jnp.int32(0), jnp.int32(40))
    robot = _robot_from_ref(ref)
    robot = robot.replace(body_pos=robot.body_pos.at[ANCHOR_INDEX].add(jnp.array([0.3, 0.0, 0.0])))
    np.testing.assert_allclose(_terms(robot, ref)["anchor_pos"], np.exp(-1.0), rtol=1e-5)
    # A horizontal anchor shift is removed by the re-anchoring of the body terms except for the anchor body.
    shifted = _robot_from_ref(ref).replace(body_pos=_robot_from_ref(ref).body_pos + jnp.array([0.3, 0.0, 0.0]))
    np.testing.assert_allclose(_terms(shifted, ref)["body_pos"], 1.0, atol=1e-5)


def test_orientation_kernel(lib):
    ref = lib.frame(jnp.int32(0), jnp.int32(10))
    robot = _robot_from_ref(ref)
    tilt = jm.quat_from_euler_xyz(jnp.float32(0.4), jnp.float32(0.0), jnp.float32(0.0))
    robot = robot.replace(body_quat=robot.body_quat.at[ANCHOR_INDEX].set(
        jm.quat_mul(tilt, robot.body_quat[ANCHOR_INDEX])))
    np.testing.assert_allclose(_terms(robot, ref)["anchor_ori"], np.exp(-1.0), rtol=1e-4)


@pytest.mark.parametrize("name, threshold", [("anchor_height", 0.25), ("end_effector_height", 0.25)])
def test_height_terminations_fire_at_threshold(lib, name, threshold):
    ref = lib.frame(jnp.int32(0), jnp.int32(20))
    cfg = TerminationConfig()
    for delta, fires in ((threshold - 1e-3, False), (threshold + 1e-3, True)):
        robot = _robot_from_ref(ref)
        if name == "anchor_height":
            pos = robot.body_pos.at[ANCHOR_INDEX, 2].add(-delta)
        else:
            pos = robot.body_pos.at[END_EFFECTOR_INDEX[0], 2].add(delta)
        out = term.terminations(cfg, robot.replace(body_pos=pos), ref)
        assert bool(out[name]) is fires, (name, delta)


def test_tilt_termination_fires_at_threshold(lib):
    ref = lib.frame(jnp.int32(0), jnp.int32(0))
    cfg = TerminationConfig()
    # Pitching by theta changes the gravity z component in the anchor frame by 1 - cos(theta).
    for target, fires in ((cfg.anchor_tilt - 1e-3, False), (cfg.anchor_tilt + 1e-3, True)):
        theta = np.arccos(1.0 - target)
        robot = _robot_from_ref(ref)
        q = jm.quat_mul(jm.quat_from_euler_xyz(0.0, jnp.float32(theta), 0.0), robot.body_quat[ANCHOR_INDEX])
        out = term.terminations(cfg, robot.replace(body_quat=robot.body_quat.at[ANCHOR_INDEX].set(q)), ref)
        assert bool(out["anchor_tilt"]) is fires


def test_reset_without_noise_reproduces_reference(lib):
    cfg = evaluation_config(EnvConfig())
    env = TrackingEnv(cfg, lib.num_motions)
    data = env.make_data(1)
    reset = jax.jit(lambda m, lib, d, f, k: env.reset(m, lib, d, jnp.int32(0), f, jnp.int32(0), env.default_pos, k))
    state = reset(env.mx, lib, data, jnp.int32(30), jax.random.PRNGKey(0))
    ref = lib.frame(jnp.int32(0), jnp.int32(30))
    np.testing.assert_allclose(state.data.xpos[env.body_ids], ref.body_pos, atol=2e-5)
    np.testing.assert_allclose(np.abs(np.sum(state.data.xquat[env.body_ids] * ref.body_quat, -1)), 1.0, atol=1e-5)
    # Free-joint angular velocity is stored in the body frame.
    w_world = jm.quat_rotate(state.data.qpos[3:7], state.data.qvel[3:6])
    np.testing.assert_allclose(w_world, ref.body_ang_vel[0], atol=1e-5)
    sizes = env.observation_size
    assert sizes == {"actor": 160 + 2, "critic": 286 + 2}
    assert state.obs["actor"].shape == (sizes["actor"],) and state.obs["critic"].shape == (sizes["critic"],)
    no_se = TrackingEnv(dataclasses.replace(cfg, state_estimation=False), 2)
    assert no_se.observation_size["actor"] == 154 + 2


def test_randomization_distinct_within_ranges():
    env = TrackingEnv(EnvConfig(), 1)
    cfg = env.cfg.randomization
    feet = randomize.foot_geom_ids(env.mj_model)
    model, in_axes = randomize.randomize_model(env.mx, jax.random.PRNGKey(0), 16, cfg, feet, env.torso_id)
    friction = np.asarray(model.geom_friction[:, feet, 0])
    assert np.all((friction >= 0.3) & (friction <= 1.2)) and len(np.unique(friction[:, 0])) == 16
    offset = np.asarray(model.body_ipos[:, env.torso_id] - env.mx.body_ipos[env.torso_id])
    assert np.all(np.abs(offset) <= np.array([0.025, 0.05, 0.05]) + 1e-7)
    assert len(np.unique(offset[:, 0])) == 16
    assert in_axes.geom_friction == 0 and in_axes.body_ipos == 0 and in_axes.body_mass is None


@pytest.mark.slow
def test_batched_contract(lib):
    """Jitted reset/step, sizes, no NaN over 50 random steps, no recompilation after the first step."""
    env = TrackingEnv(EnvConfig(), lib.num_motions)
    scfg = sampling.SamplerConfig()
    benv = BatchedEnv(env, 6, scfg)
    sampler = sampling.init_sampler(np.asarray(lib.clip_length), lib.fps, scfg)
    world = benv.world(lib, jax.random.PRNGKey(0))
    bs = jax.jit(benv.init)(world, sampler, jax.random.PRNGKey(1))
    step = jax.jit(benv.step)
    key = jax.random.PRNGKey(2)
    for i in range(50):
        action = 0.5 * jax.random.normal(jax.random.fold_in(key, i), (6, 29))
        bs, tr = step(world, bs, action)
        assert np.all(np.isfinite(np.asarray(bs.env.obs["actor"]))) and np.all(np.isfinite(np.asarray(tr.reward)))
    assert step._cache_size() == 1
    assert bs.env.obs["actor"].shape == (6, env.observation_size["actor"])
    assert bs.env.obs["critic"].shape == (6, env.observation_size["critic"])
    assert set(tr.info.terms) == set(rew.weights(RewardConfig()))
    assert set(tr.info.terminations) == {"anchor_height", "anchor_tilt", "end_effector_height"}
    frames = np.asarray(bs.env.frame)
    assert np.all(frames < np.asarray(lib.clip_length)[np.asarray(bs.env.motion_id)])
