"""Our G1 model against the figures it was written from."""

import json

import mujoco
import numpy as np
import pytest

from mimic_jax.assets import build_g1, g1


@pytest.fixture(scope="module")
def model():
    return g1.load_model()


def test_committed_xml_matches_builder():
    facts = build_g1.load_facts()
    assert build_g1.ROBOT_XML.read_text() == build_g1.to_text(build_g1.build_robot(facts))
    assert build_g1.SCENE_XML.read_text() == build_g1.to_text(build_g1.build_scene())


def test_total_mass(model):
    assert abs(model.body_mass.sum() - 33.341) < 0.01


def test_names_and_order(model):
    joints = [model.joint(i).name for i in range(1, model.njnt)]
    bodies = [model.body(i).name for i in range(1, model.nbody)]
    assert tuple(joints) == g1.JOINT_NAMES and len(joints) == 29
    assert tuple(bodies) == g1.BODY_NAMES and len(bodies) == 30
    assert model.nq == 36 and model.nv == 35 and model.nu == 29
    assert g1.JOINT_NAMES[12:15] == ("waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint")
    assert g1.ISAAC_JOINT_NAMES[:4] == ("left_hip_pitch_joint", "right_hip_pitch_joint", "waist_yaw_joint",
                                        "left_hip_roll_joint")
    assert sorted(g1.ISAAC_JOINT_NAMES) == sorted(g1.JOINT_NAMES)
    assert len(g1.TRACKED_BODY_NAMES) == 14 and g1.ANCHOR_BODY in g1.TRACKED_BODY_NAMES
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "imu_in_pelvis") >= 0


@pytest.mark.parametrize("joint, cls, kp, kd, effort", [
    ("left_hip_pitch_joint", "7520_14", 40.1792, 2.5579, 88.0),
    ("left_knee_joint", "7520_22", 99.0984, 6.3088, 139.0),
    ("left_elbow_joint", "5020", 14.2506, 0.9072, 25.0),
    ("left_wrist_yaw_joint", "4010", 16.7783, 1.0681, 5.0),
    ("left_ankle_pitch_joint", "2x5020", 2 * 14.2506, 2 * 0.9072, 50.0),
    ("waist_roll_joint", "2x5020", 2 * 14.2506, 2 * 0.9072, 50.0),
])
def test_actuator_gains(model, joint, cls, kp, kd, effort):
    table = g1.joint_table()
    j = g1.JOINT_NAMES.index(joint)
    assert table.motor_class[j] == cls
    a = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, joint.removesuffix("_joint"))
    assert model.actuator_trnid[a, 0] == mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
    np.testing.assert_allclose(model.actuator_gainprm[a, 0], kp, rtol=1e-4)
    np.testing.assert_allclose(-model.actuator_biasprm[a, 1:3], [kp, kd], rtol=1e-4)
    np.testing.assert_allclose(model.actuator_forcerange[a], [-effort, effort])
    dof = model.jnt_dofadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)]
    np.testing.assert_allclose(model.dof_armature[dof], table.armature[j])
    # The BeyondMimic rule: kp = armature * (2 pi 10)^2, kd = 4 armature (2 pi 10).
    w = 2 * np.pi * 10
    np.testing.assert_allclose([table.kp[j], table.kd[j]], [table.armature[j] * w**2, 4 * table.armature[j] * w],
                               rtol=2e-3)


def test_options_and_feet(model):
    assert model.opt.timestep == 0.005
    assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    foot = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "left_foot3_collision")
    shin = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "left_shin_collision")
    assert (model.geom_condim[foot], model.geom_priority[foot], model.geom_friction[foot, 0]) == (3, 1, 0.6)
    assert (model.geom_condim[shin], model.geom_priority[shin]) == (1, 0)
    assert [model.key(i).name for i in range(model.nkey)] == ["home", "knees_bent"]
    np.testing.assert_allclose(model.key_qpos[1, 7:], g1.joint_table().default_pos)


def _collides(model, a, b) -> bool:
    """MuJoCo's contype/conaffinity rule (the parent-child filter never applies to the pairs asked here)."""
    ct, ca = model.geom_contype, model.geom_conaffinity
    return bool((ct[a] & ca[b]) | (ct[b] & ca[a]))


def _group_pairs(model) -> set[frozenset]:
    geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] and model.geom_contype[g]]
    groups = {g: build_g1.collision_group(model.body(model.geom_bodyid[g]).name) for g in geoms}
    return {frozenset((groups[a], groups[b])) for i, a in enumerate(geoms) for b in geoms[i + 1:]
            if _collides(model, a, b)}


def test_collision_modes():
    self_model = g1.load_model(collisions="self")
    floor = mujoco.mj_name2id(self_model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    robot = [g for g in range(self_model.ngeom) if self_model.geom_bodyid[g] and self_model.geom_contype[g]]
    assert len(robot) == 33 and all(_collides(self_model, floor, g) for g in robot)
    expected = {frozenset(p) for p in [("left_leg", "right_leg"), ("left_leg", "torso"), ("right_leg", "torso"),
                                       ("left_arm", "right_arm")]}
    expected |= {frozenset((arm, other)) for arm in ("left_arm", "right_arm")
                 for other in ("pelvis", "torso", "left_leg", "right_leg")}
    assert _group_pairs(self_model) == expected
    # 1 pelvis, 2 torso, 11 per leg (hip, thigh, shin, brace, 7 foot capsules), 4 per arm geoms:
    # legs 11 * 11, legs-torso 2 * 11 * 2, arms-pelvis 2 * 4, arms-torso 2 * 4 * 2, arms-legs 4 * 4 * 11, arms 4 * 4.
    pairs = sum(_collides(self_model, a, b) for i, a in enumerate(robot) for b in robot[i + 1:])
    assert pairs == 121 + 44 + 8 + 16 + 176 + 16
    floor_model = g1.load_model(collisions="floor")
    assert _group_pairs(floor_model) == set()
    assert all(_collides(floor_model, floor, g) for g in robot)
    feet = g1.load_model(collisions="feet")
    colliding = [feet.geom(g).name for g in range(feet.ngeom) if feet.geom_contype[g] and feet.geom_bodyid[g]]
    assert len(colliding) == 14 and all(build_g1.FOOT_GEOM.match(n) for n in colliding)
    assert _group_pairs(feet) == set()
    with pytest.raises(ValueError, match="collisions must be one of"):
        g1.load_model(collisions="none")


@pytest.mark.parametrize("key", ["home", "knees_bent"])
def test_keyframes_free_of_self_contact(key):
    """In the air, the keyframe poses touch nothing: no pair of the self-collision table is in contact."""
    model = g1.load_model()
    data = mujoco.MjData(model)
    data.qpos[:] = model.key(key).qpos
    data.qpos[2] += 1.0
    mujoco.mj_forward(model, data)
    assert data.ncon == 0


def test_velocity_limits():
    table = g1.joint_table()
    limits = dict(zip(g1.JOINT_NAMES, table.velocity_limit))
    # Per motor class (facts file): 7520_14 32, 7520_22 20, 5020 37 (also the doubled linkage joints), 4010 22.
    expected = {"left_hip_pitch_joint": 32.0, "waist_yaw_joint": 32.0, "left_hip_roll_joint": 20.0,
                "right_knee_joint": 20.0, "left_ankle_pitch_joint": 37.0, "waist_pitch_joint": 37.0,
                "left_elbow_joint": 37.0, "right_wrist_roll_joint": 37.0, "left_wrist_yaw_joint": 22.0}
    assert {k: limits[k] for k in expected} == expected
    assert set(table.velocity_limit) == {20.0, 22.0, 32.0, 37.0}


def _quat_to_mat(q):
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _axis_angle_mat(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _chain_by_hand(facts, root_pos, root_quat, q_by_joint):
    """Independent FK: chain parent frames, body offsets and joint rotations from the facts with numpy."""
    frames = {"world": (np.zeros(3), np.eye(3))}
    joint_of = {j["body"]: j for j in facts["joints"]}
    for body in facts["bodies"]:
        p_pos, p_rot = frames[body["parent"]]
        if body["parent"] == "world":
            pos, rot = np.asarray(root_pos), _quat_to_mat(root_quat)
        else:
            pos = p_pos + p_rot @ np.asarray(body["pos"])
            rot = p_rot @ _quat_to_mat(body["quat_wxyz"])
            joint = joint_of.get(body["name"])
            if joint is not None:
                rot = rot @ _axis_angle_mat(joint["axis"], q_by_joint[joint["name"]])
        frames[body["name"]] = (pos, rot)
    return frames


def test_forward_kinematics_matches_hand_chain(model):
    facts = json.loads(build_g1.FACTS_PATH.read_text())
    rng = np.random.default_rng(0)
    data = mujoco.MjData(model)
    table = g1.joint_table()
    for _ in range(4):
        q = rng.uniform(table.lower, table.upper)
        root_pos = rng.normal(size=3)
        root_quat = rng.normal(size=4)
        root_quat /= np.linalg.norm(root_quat)
        data.qpos[:] = np.concatenate([root_pos, root_quat, q])
        mujoco.mj_kinematics(model, data)
        frames = _chain_by_hand(facts, root_pos, root_quat, dict(zip(g1.JOINT_NAMES, q)))
        for i, name in enumerate(g1.BODY_NAMES):
            np.testing.assert_allclose(data.xpos[i + 1], frames[name][0], atol=1e-6)
            np.testing.assert_allclose(data.xmat[i + 1].reshape(3, 3), frames[name][1], atol=1e-6)


def test_compiles_for_mjx():
    from mujoco import mjx
    import jax

    model = g1.load_model()
    mx = mjx.put_model(model, impl="jax")
    dx = mjx.make_data(mx)
    dx = jax.jit(mjx.forward)(mx, dx.replace(qpos=mx.qpos0))
    assert np.all(np.isfinite(np.asarray(dx.qacc)))
