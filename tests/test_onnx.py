"""ONNX export: the graph matches the JAX policy (normalizer included), reference outputs, metadata."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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


# -- python -m mimic_jax.eval --export-onnx: a deployable folder, or one error line --------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run directory holding one checkpoint of random weights (``save_run``; no training, no MJX program)."""
    from mimic_jax.checkpoint import run_meta, save_run
    from mimic_jax.motion.clip import make_clip, save_clip
    from mimic_jax.motion.library import build_library
    from mimic_jax.ppo.trainer import TrainCarry
    from mimic_jax.ppo.update import TrainState

    root = tmp_path_factory.mktemp("export")
    frames, default = 20, g1.joint_table().default_pos
    clip = make_clip(np.tile([0.0, 0.0, g1.DEFAULT_ROOT_HEIGHT], (frames, 1)), np.tile([1.0, 0, 0, 0], (frames, 1)),
                     np.tile(default, (frames, 1)))
    paths = [save_clip(root / f"{name}.npz", clip) for name in NAMES]
    cfg = TrainConfig(env=EnvConfig(collisions="feet"), ppo=PPOConfig(hidden_sizes=(16,)))
    policy = _policy(cfg)
    state = TrainState(params=policy.params, normalizer=policy.normalizer, opt_state=(), iteration=jnp.int32(0),
                       sgd_steps=jnp.int32(0))
    carry = TrainCarry(train_state=state, envs=(), key=jax.random.PRNGKey(0))
    lib = build_library([clip] * len(NAMES), NAMES)
    save_run(root / "run", carry, cfg, run_meta(lib, ",".join(str(p) for p in paths), 1, 0))
    return root / "run"


def _export(run, dest, capsys) -> tuple[int, str]:
    from mimic_jax.eval import main

    code = main(["--run", str(run), "--export-only", "--export-onnx", str(dest), "--onnx-motion", "run"])
    return code, capsys.readouterr().err


def _temporaries(folder) -> list:
    """Temporary files left in ``folder`` (not recursive: the read-only place may be /sys)."""
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    return [n for n in names if n.endswith(".tmp") or ".tmp." in n or "write-test" in n]


def test_eval_export_writes_a_deployable_folder(tiny_run, tmp_path, capsys):
    from mimic_jax.deploy.bundle import open_bundle

    code, err = _export(tiny_run, tmp_path / "out" / "policy.onnx", capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["deploy.yaml", "g1.xml", "policy.onnx", "scene.xml"]
    bundle = open_bundle(tmp_path / "out" / "policy.onnx")
    assert bundle.config["motion"]["exported"]["name"] == "run" and bundle.config["motion"]["names"] == list(NAMES)
    assert not _temporaries(tmp_path)


def _read_only_dir(tmp_path):
    """A directory this process cannot create files in (root ignores permission bits: use sysfs then)."""
    import os

    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    try:
        open("/sys/mimic_jax_write_probe", "wb").close()
    except OSError:
        return Path("/sys")
    pytest.skip("no read-only place for root here")


@pytest.fixture
def immutable_dir(tmp_path):
    """A directory with the immutable attribute (chattr +i; root on ext4 and the like), removed afterwards."""
    import subprocess

    folder = tmp_path / "immutable"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("case", ["existing directory", "read-only place", "immutable directory", "parent is a file",
                                  "not .onnx"])
def test_eval_export_refuses_with_one_line(tiny_run, tmp_path, capsys, request, case):
    """Issue 20: one error line (exit 2), no traceback, nothing written and no stale temporary file."""
    if case == "existing directory":
        (tmp_path / "policy.onnx").mkdir()
        dest, expected = tmp_path / "policy.onnx", "is a directory; name the file to write"
    elif case == "read-only place":
        dest, expected = _read_only_dir(tmp_path) / "policy.onnx", "cannot write in"
    elif case == "immutable directory":
        dest, expected = request.getfixturevalue("immutable_dir") / "policy.onnx", "Operation not permitted"
    elif case == "parent is a file":
        (tmp_path / "file").write_text("x")
        dest, expected = tmp_path / "file" / "policy.onnx", "is not a directory"
    else:
        dest, expected = tmp_path / "policy.bin", "must end in .onnx"
    code, err = _export(tiny_run, dest, capsys)
    assert code == 2 and err.startswith(f"error: --export-onnx {dest}: ") and err.count("\n") == 1, err
    assert expected in err
    assert not (dest.is_file() or (dest.parent / "deploy.yaml").exists()) and not _temporaries(dest.parent)
