"""The tracking environment: reward and termination maths, the batched contract, randomization."""

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from mimic_jax import math as jm
from mimic_jax import sampling
from mimic_jax.assets import g1
from mimic_jax.envs import observations as obs_lib
from mimic_jax.envs import randomize
from mimic_jax.envs import rewards as rew
from mimic_jax.envs import terminations as term
from mimic_jax.envs.autoreset import BatchedEnv
from mimic_jax.envs.config import EnvConfig, RewardConfig, TerminationConfig, evaluation_config
from mimic_jax.envs.robot import RobotState, penalised_bodies, undesired_contacts
from mimic_jax.envs.tracking import TrackingEnv
from mimic_jax.motion.clip import make_clip
from mimic_jax.motion.library import ANCHOR_INDEX, END_EFFECTOR_INDEX, RefFrame, build_library

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


def _yaw(angle):
    return jnp.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)], jnp.float32)


def _frame(body_pos, body_quat) -> RefFrame:
    zeros = jnp.zeros((14, 3))
    return RefFrame(joint_pos=jnp.zeros(29), joint_vel=jnp.zeros(29), body_pos=jnp.asarray(body_pos, jnp.float32),
                    body_quat=jnp.asarray(body_quat, jnp.float32), body_lin_vel=zeros, body_ang_vel=zeros)


def test_reanchoring_with_yawed_robot():
    """Reference bodies move onto the robot: rotated by the yaw between the anchors (90 degrees here), the
    reference anchor put at the robot anchor's x, y and at the reference anchor's own height."""
    ref_anchor = np.array([1.0, 2.0, 0.9])
    offsets = np.zeros((14, 3))
    offsets[0] = [0.1, 0.0, -0.2]  # pelvis: 10 cm ahead of, 20 cm below the anchor
    offsets[1] = [0.0, 0.3, -0.5]
    ref_quat = np.tile([1.0, 0.0, 0.0, 0.0], (14, 1))
    tilt = 0.4
    ref_quat[1] = [np.cos(tilt / 2), np.sin(tilt / 2), 0.0, 0.0]  # rolled about x
    ref_quat[ANCHOR_INDEX] = np.asarray(_yaw(0.3))
    ref = _frame(ref_anchor + offsets, ref_quat)
    robot_pos = np.zeros((14, 3))
    robot_pos[ANCHOR_INDEX] = [5.0, -1.0, 0.7]  # 20 cm lower than the reference anchor
    robot_quat = np.tile([1.0, 0.0, 0.0, 0.0], (14, 1))
    robot_quat[ANCHOR_INDEX] = np.asarray(_yaw(0.3 + np.pi / 2))
    robot = RobotState(body_pos=jnp.asarray(robot_pos, jnp.float32), body_quat=jnp.asarray(robot_quat, jnp.float32),
                       body_lin_vel=jnp.zeros((14, 3)), body_ang_vel=jnp.zeros((14, 3)), joint_pos=jnp.zeros(29),
                       joint_vel=jnp.zeros(29), root_lin_vel_b=jnp.zeros(3), root_ang_vel_b=jnp.zeros(3))
    pos, quat = rew.relative_reference(robot, ref)
    # Rz(90): (x, y) -> (-y, x); anchor (5, -1, 0.9).
    np.testing.assert_allclose(pos[0], [5.0, -0.9, 0.7], atol=1e-6)
    np.testing.assert_allclose(pos[1], [4.7, -1.0, 0.4], atol=1e-6)
    np.testing.assert_allclose(pos[ANCHOR_INDEX], [5.0, -1.0, 0.9], atol=1e-6)
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    np.testing.assert_allclose(quat[0], [c, 0.0, 0.0, s], atol=1e-6)
    a, b = np.cos(tilt / 2), np.sin(tilt / 2)
    np.testing.assert_allclose(quat[1], [c * a, c * b, s * b, s * a], atol=1e-6)  # Rz(90) Rx(0.4)
    np.testing.assert_allclose(np.abs(quat[ANCHOR_INDEX] @ np.asarray(_yaw(0.3 + np.pi / 2))), 1.0, atol=1e-6)
    # A robot whose bodies sit exactly there tracks the body terms perfectly despite the 90-degree turn.
    matched = robot.replace(body_pos=pos.at[ANCHOR_INDEX].set(robot.body_pos[ANCHOR_INDEX]), body_quat=quat)
    terms = _terms(matched, ref)
    np.testing.assert_allclose([terms["body_ori"]], [1.0], atol=1e-5)
    # Only the anchor's own 20 cm height offset is left: mean over 14 bodies of 0.04 m^2.
    np.testing.assert_allclose(terms["body_pos"], np.exp(-0.04 / 14 / 0.09), rtol=1e-5)


def test_observation_values():
    """Each term's slice of both observation vectors against hand-computed values (robot anchor yawed 90 degrees)."""
    table = g1.joint_table()
    cfg = evaluation_config(EnvConfig())
    pos = np.zeros((14, 3))
    pos[ANCHOR_INDEX] = [1.0, 2.0, 0.8]
    pos[0] = pos[ANCHOR_INDEX] + [0.0, 1.0, 0.0]  # 1 m along world y from the anchor: +x in the anchor frame
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (14, 1))
    quat[ANCHOR_INDEX] = np.asarray(_yaw(np.pi / 2))
    joints = table.default_pos + 0.1
    robot = RobotState(body_pos=jnp.asarray(pos, jnp.float32), body_quat=jnp.asarray(quat, jnp.float32),
                       body_lin_vel=jnp.zeros((14, 3)), body_ang_vel=jnp.zeros((14, 3)),
                       joint_pos=jnp.asarray(joints, jnp.float32), joint_vel=jnp.full(29, -2.0),
                       root_lin_vel_b=jnp.array([0.5, 0.0, 0.0]), root_ang_vel_b=jnp.array([0.0, 0.0, 1.0]))
    ref_pos = np.tile([1.5, 2.0, 0.9], (14, 1))
    ref = _frame(ref_pos, np.tile([1.0, 0.0, 0.0, 0.0], (14, 1)))
    ref = ref.replace(joint_pos=jnp.full(29, 0.2), joint_vel=jnp.full(29, 3.0))
    last = jnp.linspace(-1.0, 1.0, 29)
    obs = obs_lib.observe(cfg, robot, ref, last, jnp.asarray(table.default_pos, jnp.float32), jnp.int32(1), 3,
                          jax.random.PRNGKey(0))
    yaw_minus_90 = [0.0, 1.0, -1.0, 0.0, 0.0, 0.0]  # Rz(-90) = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], 2 columns
    body_pos_b = np.zeros((14, 3))
    body_pos_b[0] = [1.0, 0.0, 0.0]
    body_pos_b[1:] = [-2.0, 1.0, -0.8]  # the other bodies at the world origin: R(-90) (-1, -2, -0.8)
    body_pos_b[ANCHOR_INDEX] = 0.0
    body_ori_b = np.tile(yaw_minus_90, 14)
    body_ori_b[6 * ANCHOR_INDEX:6 * ANCHOR_INDEX + 6] = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    expected = {
        "ref_joint_pos": np.full(29, 0.2), "ref_joint_vel": np.full(29, 3.0),
        "ref_anchor_pos_b": [0.0, -0.5, 0.1],  # R(-90) (0.5, 0, 0.1)
        "ref_anchor_ori_b": yaw_minus_90, "body_pos_b": body_pos_b.reshape(-1), "body_ori_b": body_ori_b,
        "base_lin_vel": [0.5, 0.0, 0.0], "base_ang_vel": [0.0, 0.0, 1.0], "joint_pos": np.full(29, 0.1),
        "joint_vel": np.full(29, -2.0), "last_action": np.asarray(last), "motion_one_hot": [0.0, 1.0, 0.0],
    }
    for group, terms in obs_lib.term_sizes(cfg, 3).items():
        start = 0
        for name, size in terms:
            np.testing.assert_allclose(obs[group][start:start + size], expected[name], atol=1e-6,
                                       err_msg=f"{group}/{name}")
            start += size
        assert start == obs[group].shape[0]
    noisy = obs_lib.observe(EnvConfig(), robot, ref, last, jnp.asarray(table.default_pos, jnp.float32),
                            jnp.int32(1), 3, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(noisy["critic"], obs["critic"])  # the critic sees no noise
    gap = np.abs(np.asarray(noisy["actor"] - obs["actor"]))
    start = 0
    scales = {"ref_anchor_pos_b": 0.25, "ref_anchor_ori_b": 0.05, "base_lin_vel": 0.5, "base_ang_vel": 0.2,
              "joint_pos": 0.01, "joint_vel": 0.5}
    for name, size in obs_lib.term_sizes(cfg, 3)["actor"]:
        bound = scales.get(name, 0.0)
        assert np.all(gap[start:start + size] <= bound + 1e-6), name
        assert bool(gap[start:start + size].max() > 0.2 * bound) == (bound > 0), name
        start += size


J = {name: i for i, name in enumerate(g1.JOINT_NAMES)}
EPISODE_STEPS = EnvConfig().episode_steps  # 500


def _self_contact_pose(qpos: np.ndarray) -> np.ndarray:
    """qpos lifted 1 m off the floor, the left upper arm and elbow pressed 7-11 mm into the torso capsule."""
    qpos = qpos.copy()
    qpos[2] += 1.0
    qpos[7 + J["left_shoulder_roll_joint"]] = -0.2
    return qpos


@pytest.fixture(scope="module")
def stepped(lib):
    """One jitted, vmapped reset and one jitted, vmapped step of the clean environment, on six states:

    0, 1: clip 0 at frame 10 with 498 / 499 control steps done (the step makes 499 / 500 = the time limit);
    2, 3: clip 1 (100 frames) at frames 97 / 98 (the step reaches frame 98 / 99 = the clip's last frame);
    4: clip 0 at frame 40, in the air, the left arm pressed into the torso (held there by the action);
    5: clip 0 at frame 30, as reset (checked against the reference);
    6: clip 0 at frame 40, in the air, the waist at -2 rad turning at +50 rad/s towards a PD target of +2.5 rad
       (its motor's limit is 32 rad/s).
    """
    env = TrackingEnv(evaluation_config(EnvConfig()), lib.num_motions)
    motion = jnp.array([0, 0, 1, 1, 0, 0, 0], jnp.int32)
    frame = jnp.array([10, 10, 97, 98, 40, 30, 40], jnp.int32)
    n = motion.shape[0]
    reset = jax.jit(jax.vmap(lambda m, lib, d, mi, f, k: env.reset(m, lib, d, mi, f, jnp.int32(0), env.default_pos, k),
                             in_axes=(None, None, None, 0, 0, 0)))
    fresh = reset(env.mx, lib, env.make_data(1), motion, frame, jax.random.split(jax.random.PRNGKey(0), n))
    qpos = np.array(fresh.data.qpos)
    qvel = np.array(fresh.data.qvel)
    qpos[4] = _self_contact_pose(qpos[4])
    qpos[6, 2] += 1.0
    qpos[6, 7 + J["waist_yaw_joint"]] = -2.0
    qvel[6, 6 + J["waist_yaw_joint"]] = 50.0
    target = qpos[:, 7:].copy()
    target[6, J["waist_yaw_joint"]] = 2.5
    actions = np.array(jax.random.uniform(jax.random.PRNGKey(1), (n, 29), minval=-1.0, maxval=1.0))
    hold = (target - np.asarray(env.default_pos)) / np.asarray(env.action_scale)
    actions[[4, 6]] = hold[[4, 6]]
    states = fresh.replace(step=jnp.array([498, 499, 0, 0, 0, 0, 0], jnp.int32),
                           data=fresh.data.replace(qpos=jnp.asarray(qpos), qvel=jnp.asarray(qvel)))
    step = jax.jit(jax.vmap(env.step, in_axes=(None, None, 0, 0)))
    out, info = step(env.mx, lib, states, jnp.asarray(actions))
    return {"env": env, "reset": fresh, "before": states, "actions": actions, "after": out, "info": info}


def test_reset_without_noise_reproduces_reference(lib, stepped):
    env, state = stepped["env"], jax.tree.map(lambda x: x[5], stepped["reset"])
    ref = lib.frame(jnp.int32(0), jnp.int32(30))
    np.testing.assert_allclose(state.data.xpos[env.body_ids], ref.body_pos, atol=2e-5)
    np.testing.assert_allclose(np.abs(np.sum(state.data.xquat[env.body_ids] * ref.body_quat, -1)), 1.0, atol=1e-5)
    # Free-joint angular velocity is stored in the body frame.
    w_world = jm.quat_rotate(state.data.qpos[3:7], state.data.qvel[3:6])
    np.testing.assert_allclose(w_world, ref.body_ang_vel[0], atol=1e-5)
    sizes = env.observation_size
    assert sizes == {"actor": 160 + 2, "critic": 286 + 2}
    assert state.obs["actor"].shape == (sizes["actor"],) and state.obs["critic"].shape == (sizes["critic"],)
    no_se = TrackingEnv(dataclasses.replace(env.cfg, state_estimation=False), 2)
    assert no_se.observation_size["actor"] == 154 + 2


def test_step_flags_fire_at_exact_steps(stepped):
    """The time limit fires on the step that makes 500 control steps, the clip end on the step that reaches the
    clip's last frame; neither the step before."""
    info, after = stepped["info"], stepped["after"]
    assert np.asarray(info.time_out)[:4].tolist() == [False, True, False, False]
    assert np.asarray(info.clip_end)[:4].tolist() == [False, False, False, True]
    assert np.asarray(after.step)[:4].tolist() == [499, 500, 1, 1]
    assert np.asarray(after.frame)[:4].tolist() == [11, 11, 98, 99]


def test_action_to_ctrl_map(stepped):
    """ctrl = default pose + per-joint action scale * action, scale = 0.25 effort / kp of the motor class."""
    env, actions = stepped["env"], stepped["actions"]
    table = g1.joint_table()
    np.testing.assert_allclose(stepped["after"].data.ctrl, table.default_pos + table.action_scale * actions,
                               rtol=1e-6, atol=1e-6)
    scale = {"7520_14": 22.0 / 40.1792, "7520_22": 34.75 / 99.0984, "5020": 6.25 / 14.2506,
             "2x5020": 6.25 / 14.2506, "4010": 1.25 / 16.7783}  # 0.5475, 0.3507, 0.4386, 0.4386, 0.0745
    np.testing.assert_allclose(env.action_scale, [scale[c] for c in table.motor_class], rtol=1e-6)
    assert table.motor_class[J["left_knee_joint"]] == "7520_22" and table.motor_class[J["waist_roll_joint"]] == "2x5020"


def _mujoco_c(env, state, action, substeps: int):
    """The same state on MuJoCo C (no joint speed limit), after ``substeps`` physics steps."""
    model = g1.load_model(collisions=env.cfg.collisions)
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = np.asarray(state.data.qpos), np.asarray(state.data.qvel)
    data.ctrl[:] = np.asarray(state.default_pos) + np.asarray(env.action_scale) * action
    for _ in range(substeps):
        mujoco.mj_step(model, data)
    mujoco.mj_forward(model, data)
    return model, data


def test_joint_speeds_clamped_to_motor_limits(stepped):
    env = stepped["env"]
    speed = np.abs(np.asarray(stepped["after"].data.qvel[:, 6:]))
    assert np.all(speed <= g1.joint_table().velocity_limit + 1e-5)
    before = jax.tree.map(lambda x: x[6], stepped["before"])
    _, data = _mujoco_c(env, before, stepped["actions"][6], env.cfg.decimation)
    # Without the limit the PD, pulling towards a target 4.5 rad ahead, keeps the waist above 45 rad/s (51 on
    # MuJoCo C); with it, every substep ends at 32 rad/s.
    assert data.qvel[6 + J["waist_yaw_joint"]] > 45.0
    np.testing.assert_allclose(stepped["after"].data.qvel[6, 6 + J["waist_yaw_joint"]], 32.0, rtol=1e-6)


def test_self_contacts_are_undesired_contacts(stepped):
    """The MJX step counts the bodies touching with more than 1 N, self-contacts included, as MuJoCo C does."""
    env = stepped["env"]
    before = jax.tree.map(lambda x: x[4], stepped["before"])
    model, data = _mujoco_c(env, before, stepped["actions"][4], env.cfg.decimation - 1)  # start of the last one
    forces = data.cfrc_ext[:, 3:6] - data.xfrc_applied[:, :3]
    touching = {model.body(b).name for b in penalised_bodies(model) if np.linalg.norm(forces[b]) > 1.0}
    assert "torso_link" in touching and len(touching) >= 2  # the arm against the torso, and more of the arm
    assert float(stepped["info"].terms["undesired_contacts"][4]) == len(touching)
    assert np.all(np.asarray(stepped["info"].terms["undesired_contacts"])[[0, 1, 5]] == 0)  # standing on the feet


def test_undesired_contact_rule():
    """Strictly more than 1 N; the ankle-roll and wrist-yaw links may touch."""
    model = g1.load_model()
    bodies = penalised_bodies(model)
    names = {model.body(b).name for b in bodies}
    assert len(names) == 26 and not names & set(g1.ALLOWED_CONTACT_BODIES) and "pelvis" in names
    forces = np.zeros((model.nbody, 3))
    forces[g1.body_ids(model, ["left_knee_link", "torso_link", "pelvis"]), 2] = [1.0, 1.01, -5.0]
    forces[g1.body_ids(model, g1.ALLOWED_CONTACT_BODIES), 0] = 100.0
    assert float(undesired_contacts(jnp.asarray(forces), bodies)) == 2.0
    for mode, expected in (("self", True), ("floor", False)):
        m = g1.load_model(collisions=mode)
        data = mujoco.MjData(m)
        data.qpos[:] = _self_contact_pose(m.key("knees_bent").qpos)
        mujoco.mj_forward(m, data)
        count = float(undesired_contacts(jnp.asarray(data.cfrc_ext[:, 3:6]), penalised_bodies(m)))
        assert (count >= 1) is expected, mode


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
    # Env 0 one step before the time limit, env 1 one frame before its clip's last frame: both truncate (bootstrap)
    # on this step, without failing; the time limit starts a new episode, the clip end keeps the clock running.
    motion1 = int(bs.env.motion_id[1])
    envs = bs.env.replace(step=bs.env.step.at[0].set(EPISODE_STEPS - 1).at[1].set(7),
                          frame=bs.env.frame.at[1].set(int(lib.clip_length[motion1]) - 2))
    bs, tr = step(world, bs.replace(env=envs), jnp.zeros((6, 29)))
    assert bool(tr.truncated[0]) and bool(tr.truncated[1]) and not np.any(np.asarray(tr.terminated))
    assert bool(tr.info.time_out[0]) and bool(tr.info.clip_end[1]) and not bool(tr.info.clip_end[0])
    assert int(bs.env.step[0]) == 0 and int(bs.env.step[1]) == 8
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
