"""Deployment: the exported folder (ONNX + deploy.yaml + model) run by ``mimic_jax.deploy`` without JAX.

One module fixture exports a policy with random weights and a random normalizer through the real export path
(no training, no MJX program): the runner's observations and actions are checked step by step against the
environment's JAX observation and the JAX policy, and its episodes and metrics against
``evaluation.sim2sim`` on the same clips. Every refusal is tested on a tampered copy of the folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import yaml

from mimic_jax import math as jm
from mimic_jax.assets import g1
from mimic_jax.deploy import maths
from mimic_jax.deploy import metrics as np_metrics
from mimic_jax.deploy.__main__ import main as deploy_main
from mimic_jax.deploy.bundle import open_bundle
from mimic_jax.deploy.reference import from_clip_file
from mimic_jax.deploy.runner import one_hot_for, run_episode
from mimic_jax.envs.config import EnvConfig, TerminationConfig
from mimic_jax.envs.robot import RobotState
from mimic_jax.envs.terminations import terminations as jax_terminations
from mimic_jax.evaluation import metrics as jax_metrics
from mimic_jax.motion.library import RefFrame

onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

NAMES = ("stand", "sway")


def _clip(frames: int, sway: float):
    from mimic_jax.motion.clip import make_clip

    t = np.arange(frames)
    root = np.stack([0 * t, sway * np.sin(t / 8), 0 * t + g1.DEFAULT_ROOT_HEIGHT], 1).astype(float)
    return make_clip(root, np.tile([1.0, 0, 0, 0], (frames, 1)), np.tile(g1.joint_table().default_pos, (frames, 1)),
                     source="test")


def _policy(env_cfg: EnvConfig, action_gain: float = 1.0):
    """Random actor weights and a random, mild observation normalizer (no training)."""
    from mimic_jax.envs.observations import observation_size
    from mimic_jax.evaluation.rollout import make_policy
    from mimic_jax.ppo.config import PPOConfig
    from mimic_jax.ppo.networks import make_networks
    from mimic_jax.ppo.trainer import TrainConfig

    cfg = TrainConfig(env=env_cfg, ppo=PPOConfig(hidden_sizes=(32, 32)))
    sizes = observation_size(cfg.env, len(NAMES))
    nets = make_networks(sizes["actor"], sizes["critic"], g1.NUM_JOINTS, cfg.ppo)
    k_params, k_mean, k_std = jax.random.split(jax.random.PRNGKey(3), 3)
    params = nets.init(k_params)
    last = params.policy["params"]["Dense_0"]
    last["kernel"] = last["kernel"] * action_gain
    norm = nets.init_normalizer()
    norm = norm.replace(mean={k: 0.1 * jax.random.normal(k_mean, v.shape) for k, v in norm.mean.items()},
                        std={k: 1.0 + 0.5 * jax.random.uniform(k_std, v.shape) for k, v in norm.std.items()})
    return make_policy(cfg, params, norm, NAMES)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Clip files, their library, and three exported folders: ``calm`` (stands through both clips), ``wild``
    (actions 5x larger: falls after 0.44-0.46 s in both) and ``blind`` (no state estimation: 154 + 2 inputs)."""
    from mimic_jax.export.writer import export_deployment
    from mimic_jax.motion.clip import load_clip, save_clip
    from mimic_jax.motion.library import build_library

    root = tmp_path_factory.mktemp("deploy")
    files = [save_clip(root / "stand.npz", _clip(40, 0.0)), save_clip(root / "sway.npz", _clip(30, 0.03))]
    lib = build_library([load_clip(f) for f in files], list(NAMES))
    out = {"root": root, "lib": lib, "files": dict(zip(NAMES, files))}
    for name, gain, estimation in (("calm", 1.0, True), ("wild", 5.0, True), ("blind", 1.0, False)):
        policy = _policy(EnvConfig(collisions="feet", state_estimation=estimation), gain)
        export_deployment(root / name / "policy.onnx", policy, lib=lib, motion="sway")
        out[name] = policy
    return out


# -- numpy definitions == the JAX ones -------------------------------------------------------------------
def _random_poses(rng, n: int) -> np_metrics.Pose:
    """n random poses [n, ...] (float32, unit quaternions) around standing height."""
    quat = rng.normal(size=(n, 14, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    pose = (rng.normal(size=(n, 14, 3)) * 0.3 + [0, 0, 0.8], quat, rng.normal(size=(n, 29)), rng.normal(size=(n, 29)))
    return np_metrics.Pose(*(x.astype(np.float32) for x in pose))


def test_maths_match_jax():
    rng = np.random.default_rng(0)
    q, p, v = (rng.normal(size=(8, n)).astype(np.float32) for n in (4, 4, 3))  # JAX computes in float32
    q, p = q / np.linalg.norm(q, axis=-1, keepdims=True), p / np.linalg.norm(p, axis=-1, keepdims=True)
    pairs = [(maths.quat_mul(q, p), jm.quat_mul(q, p)), (maths.quat_rotate_inv(q, v), jm.quat_rotate_inv(q, v)),
             (maths.rot6d(q), jm.rot6d(q)), (maths.yaw_quat(q), jm.yaw_quat(q)),
             (maths.gravity_in_frame(q), jm.gravity_in_frame(q)),
             (maths.rotation_angle(q, p), jax_metrics.rotation_angle(q, p))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, np.asarray(theirs), atol=2e-6)
    np.testing.assert_allclose(maths.rot6d([np.cos(0.25), 0, 0, np.sin(0.25)]),  # 0.5 rad about z, by hand
                               [np.cos(0.5), -np.sin(0.5), np.sin(0.5), np.cos(0.5), 0, 0], atol=1e-15)


def test_metrics_and_terminations_match_jax():
    layout = np_metrics.BodyLayout(anchor=7, root=0, end_effectors=(3, 6, 10, 13))
    assert np_metrics.METRICS == jax_metrics.METRICS
    rng, n = np.random.default_rng(1), 64
    robot, ref = _random_poses(rng, n), _random_poses(rng, n)
    near = rng.random(n) < 0.5  # half the references close to the robot: terminations both fire and not
    ref = ref._replace(body_pos=np.where(near[:, None, None], robot.body_pos + 0.05 * ref.body_pos, ref.body_pos))
    thresholds = {"anchor_height": 0.25, "anchor_tilt": 0.8, "end_effector_height": 0.25}
    assert thresholds == vars(TerminationConfig())

    def jax_side(r: np_metrics.Pose, f: np_metrics.Pose):
        zeros = jnp.zeros((14, 3))
        state = RobotState(body_pos=r.body_pos, body_quat=r.body_quat, body_lin_vel=zeros, body_ang_vel=zeros,
                           joint_pos=r.joint_pos, joint_vel=r.joint_vel, root_lin_vel_b=zeros[0],
                           root_ang_vel_b=zeros[0])
        frame = RefFrame(joint_pos=f.joint_pos, joint_vel=f.joint_vel, body_pos=f.body_pos, body_quat=f.body_quat,
                         body_lin_vel=zeros, body_ang_vel=zeros)
        return jax_metrics.frame_errors(state, frame), jax_terminations(TerminationConfig(), state, frame)

    errors, terms = jax.device_get(jax.jit(jax.vmap(jax_side))(robot, ref))
    fired = {k: 0 for k in thresholds}
    for i in range(n):
        r, f = (np_metrics.Pose(*(x[i] for x in p)) for p in (robot, ref))
        assert np_metrics.frame_errors(r, f, layout) == pytest.approx({k: v[i] for k, v in errors.items()},
                                                                      rel=1e-5, abs=1e-4)
        ours = np_metrics.terminations(r, f, layout, thresholds)
        assert ours == {k: bool(v[i]) for k, v in terms.items()}
        fired = {k: c + ours[k] for k, c in fired.items()}
    assert all(0 < c < n for c in fired.values()), fired


def test_layout_matches_the_library_indices():
    from mimic_jax.motion.library import ANCHOR_INDEX, END_EFFECTOR_INDEX, ROOT_INDEX

    config = {"bodies": {"root": "pelvis", "anchor": g1.ANCHOR_BODY, "tracked": list(g1.TRACKED_BODY_NAMES),
                         "end_effectors": list(g1.END_EFFECTOR_NAMES)}}
    assert np_metrics.BodyLayout.from_config(config) == (ANCHOR_INDEX, ROOT_INDEX, END_EFFECTOR_INDEX)


# -- the export: deploy.yaml == ONNX metadata == the training facts ---------------------------------------
def test_deploy_yaml_agrees_with_onnx_and_training(exported):
    from mimic_jax.checkpoint import model_hash
    from mimic_jax.envs.observations import term_sizes
    from mimic_jax.export.model_facts import model_difference, training_model
    from mimic_jax.export.onnx import read_metadata

    folder, policy = exported["root"] / "calm", exported["calm"]
    config = yaml.safe_load((folder / "deploy.yaml").read_text())
    meta = read_metadata(folder / "policy.onnx")
    assert json.loads(meta["deploy_config"]) == config
    table, j = g1.joint_table(), config["joints"]
    assert j["names"] == list(g1.JOINT_NAMES) == meta["joint_names"].split(",")
    for key, values in (("stiffness", table.kp), ("damping", table.kd), ("armature", table.armature),
                        ("effort_limit", table.effort), ("position_lower", table.lower)):
        np.testing.assert_allclose(j[key], values, rtol=1e-12, err_msg=key)
    np.testing.assert_allclose(np.array(meta["joint_stiffness"].split(","), float), table.kp, rtol=1e-8)
    assert j["velocity_limit"][g1.JOINT_NAMES.index("left_knee_joint")] == 20.0  # 7520_22 motor, facts file
    assert config["default_joint_pos"]["nominal"] == list(table.default_pos)
    assert config["default_joint_pos"]["training_offset"]["half_range"] == 0.01
    assert config["action"]["scale"] == list(table.action_scale)
    terms = term_sizes(policy.env_cfg, len(NAMES))["actor"]
    assert [(t["name"], t["size"]) for t in config["observation"]["terms"]] == terms
    assert config["observation"]["size"] == policy.nets.actor_obs_size == 160 + len(NAMES)
    assert config["motion"]["names"] == list(NAMES) and config["motion"]["one_hot_offset"] == 160
    assert config["motion"]["exported"]["name"] == "sway" and config["motion"]["exported"]["one_hot"] == [0.0, 1.0]
    assert config["model"]["files"]["g1.xml"] == model_hash() == meta["model_sha256"]
    assert (folder / "g1.xml").read_bytes() == g1.SCENE_XML.with_name("g1.xml").read_bytes()
    assert len(config["model"]["overrides"]["geom_contype"]) > 10  # feet-only collisions: the rest switched off
    bundle = open_bundle(folder / "policy.onnx")
    assert model_difference(bundle.model, training_model(policy.env_cfg)) is None


# -- the runner == sim2sim (same policy, same clips) -----------------------------------------------------
class _View(NamedTuple):
    qpos: np.ndarray
    qvel: np.ndarray
    xpos: np.ndarray
    xquat: np.ndarray


def _jax_observations(policy, episode, lib, clip: int):
    """The environment's actor observation (JAX) at every frame the runner reached, from its states."""
    from mimic_jax.envs.observations import observe
    from mimic_jax.envs.robot import robot_state
    from mimic_jax.evaluation.rollout import eval_env_config
    from mimic_jax.export.model_facts import training_model

    cfg = eval_env_config(policy.env_cfg, "clean", "jax")
    model = training_model(policy.env_cfg)
    ids, d, views = g1.body_ids(model, g1.TRACKED_BODY_NAMES), mujoco.MjData(model), []
    for qpos, qvel in zip(episode.qpos, episode.qvel):
        d.qpos[:], d.qvel[:] = qpos, qvel
        mujoco.mj_kinematics(model, d)
        views.append(_View(*(np.asarray(x, np.float32) for x in (d.qpos, d.qvel, d.xpos, d.xquat))))
    views = _View(*(np.stack(x) for x in zip(*views)))
    frames = np.arange(1, len(episode.qpos) + 1)
    default = jnp.asarray(g1.joint_table().default_pos, jnp.float32)
    motion = policy.motion_names.index(lib.names[clip])

    def one(view, frame, last):
        zeros = jnp.zeros((len(ids), 3))
        ref = lib.frame(clip, frame)
        return observe(cfg, robot_state(view, ids, zeros, zeros), ref, last, default, motion, len(NAMES),
                       jax.random.PRNGKey(0))["actor"]

    last = jnp.asarray(episode.actions[:-1], jnp.float32)
    return np.asarray(jax.jit(jax.vmap(one))(views, frames, last))


@pytest.mark.parametrize("which", ["calm", "wild"])
def test_runner_reproduces_sim2sim(exported, which):
    """Same observations and actions as the JAX functions at every step; same episode as evaluation.sim2sim."""
    from mimic_jax.evaluation.sim2sim import mujoco_episodes
    from mimic_jax.ppo.networks import ACTOR_KEY

    policy, lib = exported[which], exported["lib"]
    bundle = open_bundle(exported["root"] / which / "policy.onnx")
    jax_episodes = mujoco_episodes(policy, lib)
    per_clip, _ = jax_metrics.summarize(jax_episodes, lib.names, np.asarray(lib.clip_length), 0.02)
    for clip, name in enumerate(lib.names):
        episode = run_episode(bundle, from_clip_file(exported["files"][name], bundle.config),
                              one_hot_for(bundle.config, name)[0])
        obs = _jax_observations(policy, episode, lib, clip)
        np.testing.assert_allclose(episode.obs[1:], obs, atol=1e-6, rtol=1e-6)  # measured: <= 1.5e-7
        actions = policy.nets.deterministic_action(policy.params, policy.normalizer, {ACTOR_KEY: jnp.asarray(obs)})
        np.testing.assert_allclose(episode.actions[1:], np.asarray(actions), atol=1e-6, rtol=1e-6)  # <= 1.6e-6
        length = int(jax_episodes.length[clip])
        assert len(episode.qpos) == length and episode.termination == jax_episodes.termination[clip]
        np.testing.assert_allclose(episode.qpos, jax_episodes.qpos[:length, clip], atol=1e-5)  # <= 1.6e-6
        ours = jax_metrics.Episodes(  # the runner's frames through evaluation's own summary: the same numbers
            motion_id=np.array([0]), start_frame=np.array([0]), length=np.array([length]),
            success=np.array([episode.success]), termination=[episode.termination], qpos0=episode.qpos0[None],
            errors={k: np.asarray(v)[:, None] for k, v in episode.errors.items()}, qpos=episode.qpos[:, None])
        summary = jax_metrics.summarize_clip(ours, 0, int(lib.clip_length[clip]), 0.02)
        assert summary.pop("terminations") == episode.summary["terminations"]
        assert {k: episode.summary[k] for k in summary} == pytest.approx(summary, rel=1e-12)
        expect = per_clip[name]
        assert episode.summary["success_rate"] == expect["success_rate"]
        for key in np_metrics.METRICS:
            assert episode.summary[key] == pytest.approx(expect[key], rel=1e-5, abs=1e-5), key
    assert jax_episodes.success.all() == (which == "calm")  # "wild" falls: same termination at the same step


# -- the command line: no JAX, one error line per refusal ------------------------------------------------
_NO_JAX_RUN = """
import json, runpy, sys
sys.argv = ["mimic_jax.deploy"] + json.loads(sys.argv[1])
try:
    runpy.run_module("mimic_jax.deploy", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("MODULES " + json.dumps(sorted(sys.modules)))
sys.exit(code)
"""


def test_cli_runs_without_jax(exported, tmp_path):
    """The whole run (ONNX reference outputs, metrics, JSON, a GIF) in a fresh process that never imports JAX."""
    folder = exported["root"] / "calm"
    argv = ["run", "--onnx", str(folder / "policy.onnx"), "--motion", "sway", "--json", str(tmp_path / "m.json"),
            "--video", str(tmp_path / "v.gif")]
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", _NO_JAX_RUN, json.dumps(argv)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.split("MODULES ", 1)[1])
    heavy = [m for m in modules if m.split(".")[0] in ("jax", "jaxlib", "flax", "brax", "optax", "orbax")]
    assert not heavy and "mujoco.mjx" not in modules, heavy
    ours = [m for m in modules if m.startswith("mimic_jax")]
    # The package's __init__ imports mimic_jax.backend (standard library only: it quiets MJX's Warp message).
    light = ("mimic_jax", "mimic_jax.backend", "mimic_jax.deploy")
    assert ours and all(m in light or m.startswith("mimic_jax.deploy.") for m in ours), ours
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["clip"] == "sway" and summary["one_hot"] == "training clip 'sway'"
    assert summary["summary"]["success_rate"] == 1.0 and "sway             100%" in done.stdout
    assert (tmp_path / "v.gif").stat().st_size > 5_000


def _rewrite(folder: Path, change) -> None:
    """Applies ``change(config)`` to deploy.yaml and to the ONNX's stored copy alike (a consistent pair)."""
    from mimic_jax.export.deploy_config import to_yaml

    config = yaml.safe_load((folder / "deploy.yaml").read_text())
    change(config)
    (folder / "deploy.yaml").write_text(to_yaml(config))
    model = onnx.load(str(folder / "policy.onnx"))
    for prop in model.metadata_props:
        if prop.key == "deploy_config":
            prop.value = json.dumps(config)
    onnx.save(model, str(folder / "policy.onnx"))


def _edit_yaml(folder: Path) -> None:
    config = yaml.safe_load((folder / "deploy.yaml").read_text())
    config["action"]["scale"][0] *= 2.0
    (folder / "deploy.yaml").write_text(yaml.safe_dump(config))


def _strip_metadata(folder: Path) -> None:
    model = onnx.load(str(folder / "policy.onnx"))
    kept = [p for p in model.metadata_props if p.key != "deploy_config"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(folder / "policy.onnx"))


def _grow_observation(config: dict) -> None:
    config["observation"]["size"] += 1
    config["observation"]["terms"][0]["size"] += 1


def _swap_joints(config: dict) -> None:
    names = config["joints"]["names"]
    names[0], names[6] = names[6], names[0]


def _clip_with_other_joints(folder: Path) -> Path:
    with np.load(folder / "sway.npz") as data:
        arrays = dict(data)
    names = list(arrays["joint_names"])
    names[3], names[4] = names[4], names[3]
    arrays["joint_names"] = np.asarray(names)
    np.savez(folder / "swapped.npz", **arrays)
    return folder / "swapped.npz"


REFUSALS = {  # case: (tamper(folder, exported), the message's distinctive part)
    "154-wide ONNX, 160-wide deploy.yaml": (lambda f, e: shutil.copy(e["root"] / "blind" / "policy.onnx", f),
                                            "disagree: observation.size (156 vs 162)"),
    "yaml edited by hand": (lambda f, e: _edit_yaml(f), "disagree: action.scale[0]"),
    "ONNX without deploy config": (lambda f, e: _strip_metadata(f), "no 'deploy_config' in its metadata"),
    "observation size": (lambda f, e: _rewrite(f, _grow_observation), "observation size 163 (terms sum to 163) does "
                         "not match"),
    "model checksum": (lambda f, e: (f / "g1.xml").write_text((f / "g1.xml").read_text() + "<!-- edited -->\n"),
                       "g1.xml: sha256"),
    "joint order": (lambda f, e: _rewrite(f, _swap_joints), "actuated joints are not deploy.yaml's joints.names "
                    "(position 0: left_hip_pitch_joint vs right_hip_pitch_joint)"),
    "unknown term": (lambda f, e: _rewrite(f, lambda c: c["observation"]["terms"][0].update(name="ref_joint_acc")),
                     "observation term 'ref_joint_acc' is unknown to this runner"),
    "clip joint names": (lambda f, e: _clip_with_other_joints(f), "its joints are not deploy.yaml's joints.names "
                         "(position 3: left_ankle_pitch_joint vs left_knee_joint)"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_runner_refuses_with_one_line(exported, tmp_path, capsys, case):
    tamper, expected = REFUSALS[case]
    folder = tmp_path / "export"
    shutil.copytree(exported["root"] / "calm", folder)
    shutil.copy(exported["files"]["sway"], folder / "sway.npz")
    clip = tamper(folder, exported)
    motion = clip if isinstance(clip, Path) else folder / "sway.npz"
    assert deploy_main(["run", "--onnx", str(folder / "policy.onnx"), "--motion", str(motion)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err


def test_export_refuses_a_model_deploy_yaml_cannot_describe():
    """A training model that differs from its MJCF beyond model.overrides (here: friction) is not exported."""
    from mimic_jax.export import model_facts
    from mimic_jax.export.actor import ExportError

    model = model_facts.training_model(EnvConfig())
    model.geom_friction[0, 0] += 0.1
    with pytest.raises(ExportError, match="differs from its MJCF in geom_friction"):
        model_facts.model_section(model)
    model = model_facts.training_model(EnvConfig(collisions="feet", physics_dt=0.004))
    section = model_facts.model_section(model)  # what it can describe: collisions switched off, timestep
    overrides = section["overrides"]
    assert overrides["timestep"] == 0.004 and "left_foot1_collision" not in overrides["geom_contype"]
    # Feet keep their contact type and collide with the floor only; every other geom is switched off.
    assert set(overrides["geom_contype"]) <= set(overrides["geom_conaffinity"])
    assert all(v == 0 for v in overrides["geom_contype"].values())


def test_policy_without_state_estimation_sees_the_same_observations(exported):
    """The 154 + M variant: no anchor position, no pelvis linear velocity, no state estimator needed."""
    policy, lib = exported["blind"], exported["lib"]
    bundle = open_bundle(exported["root"] / "blind" / "policy.onnx")
    assert bundle.config["sensors"]["state_estimator"] is None and bundle.config["observation"]["size"] == 156
    episode = run_episode(bundle, from_clip_file(exported["files"]["sway"], bundle.config),
                          one_hot_for(bundle.config, "sway")[0])
    np.testing.assert_allclose(episode.obs[1:], _jax_observations(policy, episode, lib, 1), atol=1e-6, rtol=1e-6)


def test_cli_check_and_one_hot_choice(exported, capsys):
    onnx_path = str(exported["root"] / "calm" / "policy.onnx")
    assert deploy_main(["check", "--onnx", onnx_path]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    bundle = open_bundle(onnx_path)
    assert one_hot_for(bundle.config, "stand")[1] == "training clip 'stand'"
    np.testing.assert_array_equal(one_hot_for(bundle.config, "stand")[0], [1.0, 0.0])
    unseen, chosen = one_hot_for(bundle.config, "jump")
    assert chosen.startswith("normalizer mean")
    np.testing.assert_allclose(unseen, np.asarray(exported["calm"].normalizer.mean["actor"])[160:162], rtol=1e-6)
    assert deploy_main(["run", "--onnx", onnx_path, "--motion", str(exported["files"]["sway"]), "--label", "stand"]) == 0
    assert "one-hot: training clip 'stand'" in capsys.readouterr().out
