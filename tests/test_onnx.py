"""ONNX export: the graph matches the JAX policy (normalizer included), reference outputs, metadata."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimic_jax.assets import g1
from mimic_jax.envs.config import EnvConfig
from mimic_jax.envs.observations import observation_size
from mimic_jax.evaluation.rollout import PolicyError, make_policy
from mimic_jax.export.onnx import ExportError, export_onnx, read_metadata
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.networks import ACTOR_KEY, make_networks
from mimic_jax.ppo.trainer import TrainConfig

NAMES = ("walk", "run", "jump")


def _policy(cfg: TrainConfig, seed: int = 0):
    """A policy with random weights and a random (non-trivial) observation normalizer."""
    sizes = observation_size(cfg.env, len(NAMES))
    nets = make_networks(sizes["actor"], sizes["critic"], g1.NUM_JOINTS, cfg.ppo)
    k_params, k_mean, k_std = jax.random.split(jax.random.PRNGKey(seed), 3)
    norm = nets.init_normalizer()
    norm = norm.replace(mean={k: jax.random.normal(k_mean, v.shape) for k, v in norm.mean.items()},
                        std={k: jnp.exp(jax.random.normal(k_std, v.shape)) for k, v in norm.std.items()})
    return make_policy(cfg, nets.init(k_params), norm, NAMES)


@pytest.fixture(scope="module")
def onnxruntime():
    """onnxruntime, or skip."""
    return pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("state_estimation", [True, False])
def test_onnx_matches_jax_policy(tmp_path, onnxruntime, state_estimation):
    cfg = TrainConfig(env=EnvConfig(state_estimation=state_estimation))  # published sizes: 512, 256, 128
    policy = _policy(cfg)
    path = export_onnx(tmp_path / "p.onnx", policy)
    session = onnxruntime.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["obs"] and [o.name for o in session.get_outputs()] == ["actions"]
    size = policy.nets.actor_obs_size
    assert size == (160 if state_estimation else 154) + len(NAMES)
    obs = np.asarray(3.0 * jax.random.normal(jax.random.PRNGKey(1), (64, size)), np.float32)
    expected = np.asarray(policy.nets.deterministic_action(policy.params, policy.normalizer, {ACTOR_KEY: obs}))
    actions = session.run(["actions"], {"obs": obs})[0]
    assert actions.dtype == np.float32 and actions.shape == (64, 29)
    np.testing.assert_allclose(actions, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(session.run(None, {"obs": obs[:1]})[0], expected[:1], atol=1e-5, rtol=0)


def test_metadata_describes_the_deployment(tmp_path):
    policy = _policy(TrainConfig(ppo=PPOConfig(hidden_sizes=(16,))))
    meta = read_metadata(export_onnx(tmp_path / "p.onnx", policy))
    table = g1.joint_table()
    split = lambda key: meta[key].split(",")  # noqa: E731
    assert split("joint_names") == list(g1.JOINT_NAMES) == split("joint_names_unitree")
    assert sorted(split("joint_names_isaac")) == sorted(g1.JOINT_NAMES)
    for key, values in (("joint_stiffness", table.kp), ("joint_damping", table.kd),
                        ("default_joint_pos", table.default_pos), ("action_scale", table.action_scale)):
        np.testing.assert_allclose(np.array(split(key), float), values, rtol=1e-7, err_msg=key)
    sizes = [int(s) for s in split("observation_sizes")]
    assert sum(sizes) == policy.nets.actor_obs_size and len(sizes) == len(split("observation_names"))
    assert split("observation_names")[-1] == "motion_one_hot" and sizes[-1] == len(NAMES)
    assert meta["anchor_body_name"] == "torso_link" and split("body_names") == list(g1.TRACKED_BODY_NAMES)
    assert split("motion_names") == list(NAMES) and meta["control_dt"] == "0.02"


def test_deployment_form_gathers_reference(tmp_path, onnxruntime):
    from mimic_jax.motion.library import MotionLibrary

    frames = 7
    rng = np.random.default_rng(0)
    arrays = {"joint_pos": (frames, 29), "joint_vel": (frames, 29), "body_pos": (frames, 14, 3),
              "body_quat": (frames, 14, 4), "body_lin_vel": (frames, 14, 3), "body_ang_vel": (frames, 14, 3)}
    lib = MotionLibrary(**{k: rng.normal(size=(2 * s[0],) + s[1:]).astype(np.float32) for k, s in arrays.items()},
                        clip_start=np.array([0, frames]), clip_length=np.array([frames, frames]), names=("a", "b"))
    policy = _policy(TrainConfig(ppo=PPOConfig(hidden_sizes=(16,))))
    path = export_onnx(tmp_path / "d.onnx", policy, lib=lib, motion="b", one_hot=np.array([0, 1, 0], np.float32))
    session = onnxruntime.InferenceSession(str(path))
    names = [o.name for o in session.get_outputs()]
    assert names == ["actions", "joint_pos", "joint_vel", "body_pos_w", "body_quat_w", "body_lin_vel_w",
                     "body_ang_vel_w"]
    time_step = np.array([[0.0], [2.0], [-3.0], [50.0]], np.float32)
    obs = np.zeros((4, policy.nets.actor_obs_size), np.float32)
    out = dict(zip(names, session.run(None, {"obs": obs, "time_step": time_step})))
    rows = frames + np.array([0, 2, 0, frames - 1])  # clip b starts at frame 7; indices clipped into the clip
    np.testing.assert_array_equal(out["joint_pos"], lib.joint_pos[rows])
    np.testing.assert_array_equal(out["body_quat_w"], lib.body_quat[rows])
    assert read_metadata(path)["motion"] == "b" and read_metadata(path)["motion_one_hot"] == "0,1,0"
    with pytest.raises(ExportError, match="no clip 'c'"):
        export_onnx(tmp_path / "x.onnx", policy, lib=lib, motion="c")


def test_refuses_other_dtype_and_mismatched_parameters(tmp_path):
    cfg = TrainConfig(ppo=PPOConfig(hidden_sizes=(16,)))
    bf16 = dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, network_dtype="bfloat16"))
    with pytest.raises(ExportError, match="network_dtype float32"):
        export_onnx(tmp_path / "p.onnx", _policy(bf16))
    policy = _policy(cfg)
    wider = dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, hidden_sizes=(32,)))
    with pytest.raises(PolicyError, match="do not fit"):
        make_policy(wider, policy.params, policy.normalizer, NAMES)
    with pytest.raises(PolicyError, match="do not fit"):
        make_policy(cfg, policy.params, policy.normalizer, NAMES[:2])
    assert not (tmp_path / "p.onnx").exists()
