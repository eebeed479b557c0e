"""The model-mismatch suite and its training options.

Field tests need no MJX compile (MuJoCo C edits and mj_setConst) or one small program (the JAX derived
constants, compared with mj_setConst). The suite itself runs once on two short clips with a policy that needs
no training (``sim2sim.joint_replay_policy``): MuJoCo C always, MJX on the episode runner (one program of 8
episodes, marked slow).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from flax import struct
from mujoco import mjx

from mimic_jax.assets import g1
from mimic_jax.envs import model_constants, randomize
from mimic_jax.envs.config import EnvConfig, RandomizationConfig
from mimic_jax.evaluation import mismatch
from mimic_jax.evaluation import mismatch_report as mrep
from mimic_jax.evaluation.metrics import METRICS, Episodes
from mimic_jax.envs.imu import actor_layout, tilt_matrix, tilt_observation
from mimic_jax.evaluation.sensing import MismatchPolicy

# What mj_setConst rewrites after mass, inertia or armature edits (cam/light offsets move with the subtree com).
C_DERIVED = {"body_subtreemass", "body_invweight0", "dof_invweight0", "dof_M0", "actuator_acc0", "cam_poscom0",
             "light_poscom0"}


@pytest.fixture(scope="module")
def model():
    return g1.load_model()


@pytest.fixture(scope="module")
def index(model):
    return randomize.ModelIndex.of(model, int(g1.body_ids(model, [g1.ANCHOR_BODY])[0]))


@pytest.fixture(scope="module")
def mx(model):
    return mjx.put_model(model, impl="jax")


def _mj_fields(m: mujoco.MjModel) -> dict:
    out = {k: np.array(getattr(m, k)) for k in dir(m) if not k.startswith("_")
           and isinstance(getattr(m, k, None), np.ndarray)}
    for group in ("opt", "stat"):
        sub = getattr(m, group)
        out.update({f"{group}.{k}": np.array(getattr(sub, k)) for k in dir(sub) if not k.startswith("_")
                    and isinstance(getattr(sub, k), (np.ndarray, float, int))})
    return out


def _mjx_leaves(m) -> dict:
    return {jax.tree_util.keystr(k)[1:]: np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(m)[0]}


def _changed(a: dict, b: dict) -> set:
    return {k for k in a if a[k].shape != b[k].shape or not np.array_equal(a[k], b[k])}


# -- the edits, by hand ------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", mismatch.STANDARD, ids=lambda p: p.name)
def test_mujoco_model_changes_its_fields_and_nothing_else(model, index, p):
    base = _mj_fields(model)
    new = _mj_fields(mismatch.mujoco_model(model, p, index))
    named = {f for e in p.edits for f in e.fields}
    allowed = named | (C_DERIVED if model_constants.derived_fields(named) else set())
    assert _changed(base, new) <= allowed
    assert named <= _changed(base, new)


def test_edit_values_by_hand(model, index):
    def edited(name):
        return mismatch.mujoco_model(model, next(p for p in mismatch.STANDARD if p.name == name), index)

    torso, mass, inertia = index.torso_body, model.body_mass, model.body_inertia
    heavy = edited("mass_x1.1")
    np.testing.assert_allclose(heavy.body_mass, 1.1 * mass, rtol=1e-15)
    np.testing.assert_allclose(heavy.body_inertia, 1.1 * inertia, rtol=1e-15)
    assert heavy.body_subtreemass[1] == pytest.approx(1.1 * model.body_subtreemass[1], rel=1e-12)
    payload = edited("torso_+2kg")
    assert payload.body_mass[torso] == pytest.approx(mass[torso] + 2.0)
    np.testing.assert_allclose(payload.body_inertia[torso], inertia[torso] * (mass[torso] + 2.0) / mass[torso])
    others = np.arange(model.nbody) != torso
    np.testing.assert_array_equal(payload.body_mass[others], mass[others])
    assert payload.body_subtreemass[0] == pytest.approx(model.body_subtreemass[0] + 2.0)
    weak = edited("motor_x0.9")
    np.testing.assert_allclose(weak.actuator_gainprm[:, 0], 0.9 * model.actuator_gainprm[:, 0])
    np.testing.assert_allclose(weak.actuator_biasprm[:, 1], 0.9 * model.actuator_biasprm[:, 1])
    np.testing.assert_array_equal(weak.actuator_biasprm[:, 2], model.actuator_biasprm[:, 2])  # kd stays
    np.testing.assert_allclose(weak.actuator_forcerange, 0.9 * model.actuator_forcerange)
    np.testing.assert_allclose(weak.jnt_actfrcrange[1:], 0.9 * model.jnt_actfrcrange[1:])
    np.testing.assert_array_equal(weak.jnt_actfrcrange[0], model.jnt_actfrcrange[0])  # the free joint
    slippery = edited("foot_friction_0.3")
    feet = randomize.foot_geom_ids(model)
    assert feet.size == 14 and np.all(slippery.geom_friction[feet, 0] == 0.3)
    np.testing.assert_array_equal(slippery.geom_friction[feet, 1:], model.geom_friction[feet, 1:])
    joints = np.arange(model.nv) >= 6
    np.testing.assert_array_equal(edited("damping_0.05").dof_damping, np.where(joints, 0.05, 0.0))
    wrists = mismatch.wrist_dof_mask(model)
    assert wrists.sum() == 6
    np.testing.assert_array_equal(edited("dry_friction_0.2").dof_frictionloss,
                                  np.where(wrists, 0.1, np.where(joints, 0.2, 0.0)))
    np.testing.assert_allclose(edited("armature_x0.8").dof_armature, 0.8 * model.dof_armature)


def test_unknown_names_refused():
    with pytest.raises(ValueError, match="unknown perturbation"):
        mismatch.by_name(["mass_x2"])
    with pytest.raises(ValueError, match="unknown model edit"):
        mismatch.ModelEdit("gravity", 1.0)
    assert [p.name for p in mismatch.by_name(["delay_1", "nominal", "delay_1"])] == ["nominal", "delay_1"]


# -- MJX: the same models, derived constants in JAX --------------------------------------------------------
def test_mjx_model_matches_mujoco_model(model, index, mx):
    """Each MJX perturbation changes exactly ``p.fields``, to the values MuJoCo C (mj_setConst) has."""
    base = _mjx_leaves(mx)
    for p in mismatch.STANDARD:
        new = _mjx_leaves(mismatch.mjx_model(mx, p, index))
        assert _changed(base, new) == set(p.fields), p.name
        reference = mismatch.mujoco_model(model, p, index)
        for name in p.fields:
            np.testing.assert_allclose(new[name], getattr(reference, name), rtol=2e-5, atol=1e-7, err_msg=name)


def test_batched_model_gives_each_episode_its_perturbation(index, mx):
    perts = mismatch.by_name(["mass_x1.1", "motor_x0.9", "foot_friction_0.3"])
    condition = np.array([3, 0, 1, 2, 1])
    batched, in_axes = mismatch.batched_mjx_model(mx, perts, condition, index)
    axes = _batched_names(in_axes)
    assert axes == set().union(*(p.fields for p in perts))
    leaves = _mjx_leaves(batched)
    for n, c in enumerate(condition):
        single = _mjx_leaves(mismatch.mjx_model(mx, perts[c], index))
        for name in axes:
            np.testing.assert_array_equal(leaves[name][n], single[name], err_msg=f"{name} of episode {n}")


# -- training options --------------------------------------------------------------------------------------
OPTIONS = {"link_mass_scale": (0.9, 1.1), "torso_added_mass": (-2.0, 2.0), "motor_strength_scale": (0.9, 1.1),
           "armature_scale": (0.8, 1.2), "joint_damping": (0.0, 0.05), "joint_frictionloss": (0.0, 0.2)}


def _batched_names(in_axes) -> set:
    flat = jax.tree_util.tree_flatten_with_path(in_axes, is_leaf=lambda x: x is None)[0]
    return {jax.tree_util.keystr(k)[1:] for k, v in flat if v == 0}


def test_published_randomization_unchanged_by_default(model, mx):
    foot, torso = randomize.foot_geom_ids(model), int(g1.body_ids(model, [g1.ANCHOR_BODY])[0])
    cfg = RandomizationConfig()
    assert not randomize.mismatch_options_on(cfg) and randomize.max_action_delay(cfg) == 0
    _, in_axes = randomize.randomize_model(mx, jax.random.PRNGKey(0), 2, cfg, foot, torso)
    assert _batched_names(in_axes) == set(randomize.RANDOMIZED_FIELDS)
    with pytest.raises(ValueError, match="ModelIndex"):
        randomize.randomize_model(mx, jax.random.PRNGKey(0), 2, dataclasses.replace(cfg, joint_damping=(0, 1)),
                                  foot, torso)


OPTION_FIELDS = {"link_mass_scale": {"body_mass", "body_inertia"}, "torso_added_mass": {"body_mass", "body_inertia"},
                 "motor_strength_scale": set(mismatch.EDITS["motor_strength_scale"][0]),
                 "armature_scale": {"dof_armature"}, "joint_damping": {"dof_damping"},
                 "joint_frictionloss": {"dof_frictionloss"}}


def _ratio(m, mx, name):
    with np.errstate(divide="ignore", invalid="ignore"):  # the world body's mass, unused actuator columns
        return np.asarray(getattr(m, name)) / np.asarray(getattr(mx, name))


def test_training_options_change_their_fields_within_range(model, index, mx):
    foot, torso, joints = randomize.foot_geom_ids(model), index.torso_body, index.joint_dof_mask
    drawn = {}
    for option, interval in OPTIONS.items():
        cfg = dataclasses.replace(RandomizationConfig(), **{option: interval})
        m, in_axes = randomize.randomize_model(mx, jax.random.PRNGKey(1), 3, cfg, foot, torso, index=index)
        fields = OPTION_FIELDS[option]
        expect = set(randomize.RANDOMIZED_FIELDS) | fields | set(model_constants.derived_fields(fields))
        assert _batched_names(in_axes) == expect, option
        drawn[option] = m
    heavy = _ratio(drawn["link_mass_scale"], mx, "body_mass")[:, 1:]
    assert np.all((heavy > 0.9 - 1e-6) & (heavy < 1.1 + 1e-6)) and np.ptp(heavy) > 0.01
    np.testing.assert_allclose(_ratio(drawn["link_mass_scale"], mx, "body_inertia")[:, 1:],
                               np.repeat(heavy[..., None], 3, -1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(drawn["link_mass_scale"].body_subtreemass)[:, 0],
                               np.asarray(drawn["link_mass_scale"].body_mass).sum(1), rtol=1e-5)
    added = np.asarray(drawn["torso_added_mass"].body_mass)[:, torso] - float(mx.body_mass[torso])
    assert np.all(np.abs(added) <= 2.0 + 1e-5) and np.ptp(added) > 0.1
    kp = _ratio(drawn["motor_strength_scale"], mx, "actuator_gainprm")[..., 0]
    np.testing.assert_allclose(_ratio(drawn["motor_strength_scale"], mx, "actuator_forcerange")[..., 1], kp, rtol=1e-6)
    assert np.all((kp > 0.9 - 1e-6) & (kp < 1.1 + 1e-6))
    for option, name in (("joint_damping", "dof_damping"), ("joint_frictionloss", "dof_frictionloss")):
        values = np.asarray(getattr(drawn[option], name))
        assert np.all(values[:, ~joints] == 0) and np.all(values[:, joints] > 0), option
        assert np.all(values[:, joints] <= OPTIONS[option][1]), option


def test_training_options_parse_and_check(index, mx):
    from mimic_jax.presets import apply_settings
    from mimic_jax.ppo.trainer import TrainConfig

    cfg = apply_settings(TrainConfig(), ["env.randomization.link_mass_scale=0.9,1.1",
                                         "env.randomization.action_delay_steps=0,2"])
    assert cfg.env.randomization.link_mass_scale == (0.9, 1.1)
    assert randomize.max_action_delay(cfg.env.randomization) == 2
    for bad, field in (({"action_delay_steps": (2, 1)}, "action_delay_steps"), ({"joint_damping": (-0.1, 0.1)},
                       "joint_damping"), ({"link_mass_scale": (0.0, 1.0)}, "link_mass_scale"),
                       ({"imu_tilt_deg": 50.0}, "imu_tilt_deg")):
        with pytest.raises(ValueError, match=field):
            RandomizationConfig(**bad)
    with pytest.raises(ValueError, match="without mass"):
        randomize.mismatch_fields(mx, index, RandomizationConfig(torso_added_mass=(-9.0, 0.0)),
                                  jax.random.PRNGKey(0), 2)


# -- action delay and IMU tilt -----------------------------------------------------------------------------
def test_delay_action_by_hand():
    queue = jnp.zeros((3, 2))
    executed = []
    for k in range(4):
        queue, out = randomize.delay_action(queue, jnp.full(2, k + 1.0), 2)
        executed.append(float(out[0]))
    assert executed == [0.0, 0.0, 1.0, 2.0]  # the default pose until the first command arrives
    _, batch = randomize.delay_action(jnp.zeros((3, 3, 1)), jnp.array([[5.0], [6.0], [7.0]]), jnp.array([0, 1, 2]))
    assert np.asarray(batch)[:, 0].tolist() == [5.0, 0.0, 0.0]
    delays = [int(randomize.action_delay(jax.random.PRNGKey(s), RandomizationConfig(action_delay_steps=(0, 2))))
              for s in range(30)]
    assert set(delays) == {0, 1, 2}
    assert int(randomize.action_delay(jax.random.PRNGKey(0), RandomizationConfig(enabled=False,
                                                                                action_delay_steps=(1, 2)))) == 0


def test_env_delays_the_command_and_tilts_the_actor_imu(monkeypatch):
    """The environment's own options (training): the motors get the command of 2 steps ago, the policy sees
    its own command as the last action, and the actor (not the critic) reads a tilted IMU."""
    from mimic_jax.envs.config import NoiseConfig
    from mimic_jax.envs.observations import term_sizes
    from mimic_jax.envs.tracking import TrackingEnv
    from mimic_jax.motion.clip import make_clip
    from mimic_jax.motion.library import build_library

    cfg = EnvConfig(collisions="feet", noise=NoiseConfig(enabled=False),
                    randomization=RandomizationConfig(action_delay_steps=(2, 2), imu_tilt_deg=2.0))
    env = TrackingEnv(cfg, 1)
    # Physics is MJX's own; here only what the motors are told matters.
    monkeypatch.setattr(env, "physics", lambda m, data, action, default: data.replace(
        ctrl=default + env.action_scale * action))
    frames = 10
    clip = make_clip(np.tile([0, 0, g1.DEFAULT_ROOT_HEIGHT], (frames, 1)).astype(float),
                     np.tile([1.0, 0, 0, 0], (frames, 1)), np.tile(g1.joint_table().default_pos, (frames, 1)))
    lib = build_library([clip], ["stand"])
    actions = 0.1 * jnp.arange(1.0, 5.0)[:, None] * jnp.ones(29)

    @jax.jit
    def play(actions):
        state = env.reset(env.mx, lib, env.make_data(1), 0, 0, 0, env.default_pos, jax.random.PRNGKey(0))

        def body(state, action):
            state, _ = env.step(env.mx, lib, state, action)
            return state, (state.data.ctrl, state.last_action, state.obs)

        return state, jax.lax.scan(body, state, actions)[1]

    first, (ctrl, last, obs) = play(actions)
    assert int(first.action_delay) == 2
    layout = actor_layout(cfg, 1)
    lo, hi = layout["last_action"]
    for k in range(4):
        target = 0.1 * (k - 1) if k >= 2 else 0.0  # the command of two steps ago; the default pose before
        np.testing.assert_allclose(ctrl[k], env.default_pos + env.action_scale * target, atol=1e-6)
        np.testing.assert_allclose(last[k], actions[k])
        np.testing.assert_allclose(obs["actor"][k, lo:hi], actions[k])
    rot = np.asarray(first.imu_tilt)
    angle = math.degrees(math.acos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))
    assert 0.01 < angle <= 2.0 * math.sqrt(2) + 1e-4 and abs(rot[2, 2] - 1) > 0  # rolled and pitched, no yaw
    critic, start = {}, 0
    for name, size in term_sizes(cfg, 1)["critic"]:
        critic[name] = (start, start + size)
        start += size
    tilted = np.asarray(tilt_observation(obs["critic"][-1], critic, rot))  # the critic reads the true frame
    for name in ("base_ang_vel", "base_lin_vel", "ref_anchor_pos_b", "ref_anchor_ori_b"):
        np.testing.assert_allclose(obs["actor"][-1, slice(*layout[name])], tilted[slice(*critic[name])], atol=1e-6)
    assert not np.allclose(obs["actor"][-1, slice(*layout["base_lin_vel"])],  # reset noise: it moves
                           obs["critic"][-1, slice(*critic["base_lin_vel"])], atol=1e-4)


def test_tilt_observation_by_hand():
    layout = actor_layout(EnvConfig(), 2)
    size = max(hi for _, hi in layout.values())
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(size,)), jnp.float32)
    for name in ("ref_anchor_pos_b", "base_lin_vel", "base_ang_vel"):
        obs = obs.at[slice(*layout[name])].set(jnp.array([1.0, 2.0, 3.0]))
    obs = obs.at[slice(*layout["ref_anchor_ori_b"])].set(jnp.array([1.0, 0, 0, 1, 0, 0]))  # identity
    rot = tilt_matrix(0.0, 90.0)  # pitch: R^T maps (x, y, z) to (-z, y, x)
    out = np.asarray(tilt_observation(obs, layout, rot))
    for name in ("ref_anchor_pos_b", "base_lin_vel", "base_ang_vel"):
        np.testing.assert_allclose(out[slice(*layout[name])], [-3.0, 2.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(out[slice(*layout["ref_anchor_ori_b"])], [0, 0, 0, 1, 1, 0], atol=1e-6)
    untouched = np.ones(size, bool)
    for name in ("ref_anchor_pos_b", "base_lin_vel", "base_ang_vel", "ref_anchor_ori_b"):
        untouched[slice(*layout[name])] = False
    np.testing.assert_array_equal(out[untouched], np.asarray(obs)[untouched])
    np.testing.assert_array_equal(np.asarray(tilt_observation(obs, layout, np.eye(3))), np.asarray(obs))
    angle = math.degrees(math.acos((np.trace(tilt_matrix(2.0, 0.0)) - 1) / 2))
    assert angle == pytest.approx(2.0, rel=1e-4)


@struct.dataclass
class _EchoPolicy:
    """Commands its observed last action + 1 (so the wrapper's feedback is visible) and records x of the
    pelvis angular velocity it saw."""

    lo: int = struct.field(pytree_node=False)
    gyro: int = struct.field(pytree_node=False)

    def init(self, num_envs, key):
        return jnp.zeros(num_envs)

    def step(self, carry, obs, key):
        actor = obs["actor"]
        return actor[:, self.lo:self.lo + 29] + 1.0, actor[:, self.gyro]


def test_mismatch_policy_delays_tilts_and_feeds_back_its_command():
    layout = actor_layout(EnvConfig(), 1)
    inner = _EchoPolicy(lo=layout["last_action"][0], gyro=layout["base_ang_vel"][0])
    policy = MismatchPolicy(inner=inner, delay=jnp.array([0, 1]), tilt=jnp.asarray(np.stack([np.eye(3),
                            tilt_matrix(0.0, 90.0)]), jnp.float32), layout=tuple(layout.items()), max_delay=2)
    size = max(hi for _, hi in layout.values())
    obs = jnp.zeros((2, size)).at[:, slice(*layout["last_action"])].set(100.0)  # what the env reports: ignored
    obs = obs.at[:, slice(*layout["base_ang_vel"])].set(jnp.array([1.0, 2.0, 3.0]))
    carry = policy.init(2, jax.random.PRNGKey(0))
    executed = []
    for _ in range(3):
        action, carry = policy.step(carry, {"actor": obs}, None)
        executed.append(np.asarray(action)[:, 0].tolist())
    assert executed == [[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]]  # commands 1, 2, 3; env 1 one step late
    np.testing.assert_allclose(np.asarray(carry.inner), [1.0, -3.0], atol=1e-6)
    with pytest.raises(ValueError, match="delays"):
        policy.init(3, None)


# -- the suite ---------------------------------------------------------------------------------------------
def test_plan_and_select():
    from mimic_jax.evaluation.mismatch_suite import plan, program_key, select

    perts = mismatch.by_name(["delay_1", "pushes"])
    p = plan(perts, 2, 3)
    assert p.condition.tolist() == [0, 0, 1, 1] + [2] * 6
    assert p.motion_id.tolist() == [0, 1, 0, 1, 0, 0, 0, 1, 1, 1]
    keys = {q.name: program_key(q) for q in mismatch.STANDARD}
    assert keys["pushes"] == (True, False) and keys["joint_losses"] == (False, True)
    assert keys["dry_friction_0.2"] == (False, True) and keys["mass_x1.1"] == (False, False)
    eps = _fake_episodes(np.array([0, 1, 0, 1]), np.array([True, False, True, True]))
    sub = select(eps, np.array([False, True, True, False]))
    assert sub.motion_id.tolist() == [1, 0] and sub.success.tolist() == [False, True]
    assert sub.errors["mpjpe_global_mm"].shape == (3, 2) and sub.termination == ["anchor_height", ""]


def _fake_episodes(motion_id, success) -> Episodes:
    n = motion_id.size
    errors = {k: np.full((3, n), 10.0 * (i + 1)) for i, k in enumerate(METRICS)}
    if "anchor_xy_error_mm" in errors:
        errors["anchor_xy_error_mm"][:] = 100.0
    return Episodes(motion_id=motion_id, start_frame=np.zeros(n, int), length=np.full(n, 3), success=success,
                    termination=["" if s else "anchor_height" for s in success], errors=errors,
                    qpos0=np.zeros((n, 36)), qpos=np.zeros((3, n, 36)))


def test_report_table_json_csv_plot(tmp_path):
    from mimic_jax.evaluation.report import write_json

    perts = mismatch.by_name(["delay_2"])
    engines = {engine: {"nominal": _fake_episodes(np.array([0, 1]), np.array([True, True])),
                        "delay_2": _fake_episodes(np.array([0, 1]), np.array([True, False]))}
               for engine in ("mjx", "mujoco")}
    report = mrep.build_report({"run_dir": "r"}, {"suite": "mismatch"}, engines, perts, ["a", "b"], [4, 4], 0.02)
    assert report["perturbations"][1]["description"] == "action delay 2 control steps"
    section = report["engines"]["mujoco"]["delay_2"]
    assert section["aggregate"]["success_rate"] == 0.5 and section["clips"]["b"]["success_rate"] == 0.0
    table = mrep.format_table(report)
    assert "[mjx] mean over clips" in table and "[mujoco] success per clip" in table
    delay_line = next(line for line in table.splitlines() if line.startswith("delay_2") and "%" in line)
    assert "50%" in delay_line and delay_line.rstrip().endswith("b")
    data = json.loads(write_json(report, tmp_path / "m.json").read_text())
    assert data["target_success_rate"] == 0.95 and set(data["engines"]) == {"mjx", "mujoco"}
    rows = mrep.csv_rows(report)
    assert len(rows) == 2 * 2 * 3 and rows[2]["clip"] == "ALL"
    assert mrep.write_csv(report, tmp_path / "m.csv").read_text().count("\n") == 13
    png = mrep.plot_success(report, tmp_path / "plots" / "s.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def _clip(frames: int, amp: float):
    from mimic_jax.motion.clip import make_clip

    t = np.arange(frames)
    joints = np.tile(g1.joint_table().default_pos, (frames, 1))
    joints[:, g1.JOINT_NAMES.index("left_elbow_joint")] += amp * np.sin(t / 4)
    joints[:, g1.JOINT_NAMES.index("right_shoulder_pitch_joint")] += amp * np.sin(t / 5)
    return make_clip(np.tile([0, 0, g1.DEFAULT_ROOT_HEIGHT], (frames, 1)).astype(float),
                     np.tile([1.0, 0, 0, 0], (frames, 1)), joints, source="test")


@pytest.fixture(scope="module")
def replay():
    """(policy, library): the joint-replay policy (no training) on a standing and an arm-waving clip."""
    from mimic_jax.evaluation.sim2sim import joint_replay_policy
    from mimic_jax.motion.library import build_library
    from mimic_jax.ppo.config import PPOConfig
    from mimic_jax.ppo.trainer import TrainConfig

    lib = build_library([_clip(24, 0.0), _clip(16, 0.4)], ["stand", "wave"])
    cfg = TrainConfig(env=EnvConfig(collisions="feet"), ppo=PPOConfig(hidden_sizes=(32, 29)))
    return joint_replay_policy(cfg, ("stand", "wave")), lib


SMOKE = ("mass_x1.1", "delay_2", "imu_pitch_2deg")


def test_suite_on_mujoco(replay):
    from mimic_jax.evaluation.mismatch_suite import mujoco_suite
    from mimic_jax.evaluation.sim2sim import mujoco_episodes

    policy, lib = replay
    out = mujoco_suite(policy, lib, mismatch.by_name(SMOKE + ("dry_friction_0.2",)))
    plain = mujoco_episodes(policy, lib)
    nominal = out["nominal"]
    np.testing.assert_array_equal(nominal.errors["mpjpe_global_mm"], plain.errors["mpjpe_global_mm"])
    for name, eps in out.items():
        assert eps.length.tolist() == [23, 15] and eps.success.all(), name
    g = {k: np.nanmean(v.errors["joint_pos_error_rad"], axis=0) for k, v in out.items()}
    assert g["mass_x1.1"][0] > g["nominal"][0] + 1e-3  # a heavier robot sags further under the same gains
    assert g["delay_2"][0] == g["nominal"][0] and abs(g["delay_2"][1] - g["nominal"][1]) > 1e-4  # only the wave moves
    assert g["dry_friction_0.2"][0] < g["nominal"][0]  # friction holds the joints against the sag
    # The replay reads only the reference joints: a tilted IMU cannot change what it does.
    np.testing.assert_array_equal(out["imu_pitch_2deg"].errors["mpjpe_global_mm"], nominal.errors["mpjpe_global_mm"])


def test_mujoco_push_matches_the_environment():
    from mimic_jax.evaluation.sim2sim import PushSpec, _push

    model = g1.load_model()
    d = mujoco.MjData(model)
    angle = 0.7
    d.qpos[3:7] = [math.cos(angle / 2), 0, 0, math.sin(angle / 2)]  # yawed root
    spec = PushSpec(interval_s=(1.0, 3.0), lin=np.array([0.5, 0.5, 0.2]), ang=np.array([0.0, 0.0, 0.78]))
    rng = np.random.default_rng(3)
    _push(d, rng, spec)
    again = np.random.default_rng(3)
    d_lin, d_ang = again.uniform(-1, 1, 3) * spec.lin, again.uniform(-1, 1, 3) * spec.ang
    np.testing.assert_allclose(d.qvel[0:3], d_lin)
    np.testing.assert_allclose(d.qvel[3:6], d_ang, atol=1e-6)  # a yaw rate is the same in the yawed body frame


def test_cli_refuses_suite_with_other_protocols(tmp_path, capsys):
    from mimic_jax.eval import main

    assert main(["--run", str(tmp_path), "--suite", "mismatch", "--mode", "robust"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --suite mismatch") and "\n" not in err


@pytest.mark.slow
def test_suite_on_mjx_agrees_with_mujoco_and_writes_outputs(replay, tmp_path, monkeypatch):
    """The whole ``--suite mismatch`` path on 4 perturbations x 2 clips: one MJX program of 8 episodes."""
    pytest.importorskip("mimic_jax.envs.episodes", reason="needs the episode runner (engineer A)")
    from mimic_jax.evaluation import mismatch_suite

    policy, lib = replay
    monkeypatch.setattr(mismatch, "STANDARD", mismatch.by_name(SMOKE))
    args = argparse.Namespace(impl="jax", sim2sim=True, episodes=2, seed=0, json=tmp_path / "m.json",
                              csv=tmp_path / "m.csv", plots=tmp_path / "plots")
    report = mismatch_suite.main(args, {"run_dir": "replay"}, policy, lib, "test", False)
    mjx_sec, c_sec = report["engines"]["mjx"], report["engines"]["mujoco"]
    assert list(mjx_sec) == ["nominal", *SMOKE]
    for name in mjx_sec:
        for clip in ("stand", "wave"):
            a, b = mjx_sec[name]["clips"][clip], c_sec[name]["clips"][clip]
            assert a["success_rate"] == b["success_rate"] == 1.0
            assert a["mpjpe_global_mm"] == pytest.approx(b["mpjpe_global_mm"], rel=0.02), (name, clip)
            assert a["joint_pos_error_rad"] == pytest.approx(b["joint_pos_error_rad"], rel=0.02), (name, clip)
    assert mjx_sec["mass_x1.1"]["clips"]["stand"]["joint_pos_error_rad"] > \
        mjx_sec["nominal"]["clips"]["stand"]["joint_pos_error_rad"]
    assert json.loads((tmp_path / "m.json").read_text())["perturbations"][2]["delay_steps"] == 2
    assert (tmp_path / "plots" / "mismatch_success.png").exists() and (tmp_path / "m.csv").exists()
