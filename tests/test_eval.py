"""Evaluation: metric maths by hand, reports, and one tiny trained checkpoint through the whole CLI.

MJX programs compile once per module: the ``cli_run`` fixture trains one PPO iteration, saves the run and
evaluates it with every output at once (JSON, CSV, plots, video, sim2sim, ONNX); the tests read its files.
"""

from __future__ import annotations

import dataclasses
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from mimic_jax.assets import g1
from mimic_jax.envs.robot import RobotState
from mimic_jax.evaluation import report as rep
from mimic_jax.evaluation.metrics import METRICS, SUMMARY_FIELDS, Episodes, frame_errors, rotation_angle, summarize
from mimic_jax.motion.library import ANCHOR_INDEX, END_EFFECTOR_INDEX, RefFrame

DT = 0.02


def _ref(body_pos, joint_pos=None, joint_vel=None, quat=None) -> RefFrame:
    quat = np.tile(np.float32([1.0, 0, 0, 0]), (14, 1)) if quat is None else quat
    zeros = np.zeros((14, 3))
    return RefFrame(joint_pos=np.zeros(29) if joint_pos is None else joint_pos,
                    joint_vel=np.zeros(29) if joint_vel is None else joint_vel,
                    body_pos=body_pos, body_quat=quat, body_lin_vel=zeros, body_ang_vel=zeros)


def _robot(ref: RefFrame, **changes) -> RobotState:
    values = dict(body_pos=ref.body_pos, body_quat=ref.body_quat, body_lin_vel=ref.body_lin_vel,
                  body_ang_vel=ref.body_ang_vel, joint_pos=ref.joint_pos, joint_vel=ref.joint_vel,
                  root_lin_vel_b=np.zeros(3), root_ang_vel_b=np.zeros(3))
    values.update(changes)
    return RobotState(**values)


def test_frame_errors_hand_computed():
    rng = np.random.default_rng(0)
    ref = _ref(rng.normal(size=(14, 3)).astype(np.float32))
    pos = np.array(ref.body_pos)
    pos += np.array([0.03, 0.0, 0.04])  # whole body shifted 5 cm: global 50 mm, local 0
    pos[END_EFFECTOR_INDEX[0]] += np.array([0.0, 0.012, 0.0])  # one end effector: (0.03, 0.012, 0.04) off
    joint_pos = np.zeros(29)
    joint_pos[:2] = [0.29, -0.29]
    joint_vel = np.full(29, -0.5)
    half = 0.1 / 2  # 0.1 rad about z on the anchor
    quat = np.array(ref.body_quat)
    quat[ANCHOR_INDEX] = [math.cos(half), 0, 0, math.sin(half)]
    errors = frame_errors(_robot(ref, body_pos=pos, body_quat=quat, joint_pos=joint_pos, joint_vel=joint_vel), ref)
    ee_off = math.sqrt(0.03**2 + 0.012**2 + 0.04**2)
    expect = {"mpjpe_global_mm": (13 * 50.0 + 1000 * ee_off) / 14, "mpjpe_local_mm": 12.0 / 14,
              "joint_pos_error_rad": 0.58 / 29, "joint_vel_error_rad_s": 0.5,
              "ee_pos_error_mm": (3 * 50.0 + 1000 * ee_off) / 4, "anchor_pos_error_mm": 50.0,
              "anchor_ori_error_rad": 0.1, "anchor_xy_error_mm": 30.0}
    assert set(errors) == set(METRICS)
    for name, value in expect.items():
        assert float(errors[name]) == pytest.approx(value, rel=1e-4, abs=1e-4), name


def test_rotation_angle_accurate_near_zero_and_sign_free():
    q = np.array([math.cos(5e-4), math.sin(5e-4), 0, 0])
    identity = jnp.array([1.0, 0, 0, 0])
    assert float(rotation_angle(identity, jnp.asarray(q, jnp.float32))) == pytest.approx(1e-3, rel=1e-3)
    assert float(rotation_angle(jnp.asarray(q), -jnp.asarray(q))) == pytest.approx(0.0, abs=1e-6)


def _episodes() -> Episodes:
    """Three episodes: clip 0 twice (3 and 1 steps, the second failed), clip 1 once (2 steps)."""
    base = np.array([[1.0, 10.0, 4.0], [2.0, np.nan, 6.0], [3.0, np.nan, np.nan]])
    errors = {k: base * (i + 1) for i, k in enumerate(METRICS)}
    return Episodes(motion_id=np.array([0, 0, 1]), start_frame=np.zeros(3, int), length=np.array([3, 1, 2]),
                    success=np.array([True, False, True]), termination=["", "anchor_height", ""], errors=errors,
                    qpos0=np.zeros((3, 36)), qpos=np.zeros((3, 3, 36)))


def test_summaries_pool_frames_and_average_clips():
    per_clip, total = summarize(_episodes(), ["a", "b"], [4, 3], DT)
    a, b = per_clip["a"], per_clip["b"]
    assert a["episodes"] == 2 and a["success_rate"] == 0.5 and a["mean_episode_length_steps"] == 2.0
    assert a["mean_episode_length_s"] == pytest.approx(0.04) and a["clip_length_s"] == pytest.approx(0.06)
    assert a["mpjpe_global_mm"] == pytest.approx((1 + 2 + 3 + 10) / 4)  # frames pooled over both episodes
    assert a["mpjpe_local_mm"] == pytest.approx(2 * 16 / 4)
    assert b["mpjpe_global_mm"] == pytest.approx(5.0) and b["success_rate"] == 1.0
    assert a["terminations"] == {"anchor_height": 1} and b["terminations"] == {}
    assert total["success_rate"] == pytest.approx(0.75)  # mean over clips
    assert total["mpjpe_global_mm"] == pytest.approx((4.0 + 5.0) / 2)
    assert total["episodes"] == 3 and total["terminations"] == {"anchor_height": 1}
    # Drift: anchor_xy_error_mm is METRICS[7], so base * 8: episode maxima 24, 80, 48 mm.
    np.testing.assert_allclose(_episodes().max_drift_m, [0.024, 0.080, 0.048])
    assert a["max_drift_m"] == pytest.approx((0.024 + 0.080) / 2) and b["max_drift_m"] == pytest.approx(0.048)
    assert a["tracked_rate"] == 0.5 and b["tracked_rate"] == 1.0  # the failed episode is never tracked
    strict, _ = summarize(_episodes(), ["a", "b"], [4, 3], DT, max_drift_m=0.03)
    assert strict["a"]["tracked_rate"] == 0.5 and strict["b"]["tracked_rate"] == 0.0


def test_report_table_csv_json(tmp_path):
    report = rep.build_report({"run_dir": "r"}, {"mode": "clean"}, {"mjx": _episodes()}, ["a", "b"], [4, 3], DT)
    table = rep.format_table(report)
    assert "[mjx]" in table and "MPJPE-g" in table and table.splitlines()[-2].startswith("ALL")
    assert "track" in table and "drift m" in table
    assert table.splitlines()[-1] == "terminations: anchor_height 1"
    rows = rep.csv_rows(report)
    assert [r["clip"] for r in rows] == ["a", "b", "ALL"] and rows[0]["terminations"] == "anchor_height=1"
    data = json.loads(rep.write_json(report, tmp_path / "r.json").read_text())
    assert set(data["engines"]["mjx"]["clips"]["a"]) >= set(SUMMARY_FIELDS)
    text = rep.write_csv(report, tmp_path / "r.csv").read_text().splitlines()
    assert text[0].startswith("engine,clip,episodes,success_rate") and len(text) == 4


def test_one_hot_for_known_and_unknown_clips():
    from mimic_jax.envs.config import EnvConfig
    from mimic_jax.evaluation.rollout import Policy, one_hot_rows, one_hot_slice
    from mimic_jax.ppo.networks import NormalizerState

    cfg = EnvConfig()
    start, stop = one_hot_slice(cfg, 2)
    assert (start, stop) == (160, 162)
    mean = np.zeros(162, np.float32)
    mean[160:] = [0.25, 0.75]
    normalizer = NormalizerState(mean={"actor": mean}, std={"actor": np.ones(162)}, summed_variance=None, count=1)
    policy = Policy(nets=None, params=None, normalizer=normalizer, env_cfg=cfg, motion_names=("walk", "run"))
    rows, sources = one_hot_rows(policy, ["run", "jump"])
    np.testing.assert_array_equal(rows, [[0, 1], [0.25, 0.75]])
    assert "training clip 'run'" in sources[0] and "mean" in sources[1]


def test_joint_replay_policy_targets_reference_joints():
    from mimic_jax.evaluation.sim2sim import joint_replay_policy
    from mimic_jax.ppo.config import PPOConfig
    from mimic_jax.ppo.networks import ACTOR_KEY
    from mimic_jax.ppo.trainer import TrainConfig

    policy = joint_replay_policy(TrainConfig(ppo=PPOConfig(hidden_sizes=(32, 29))), ("a", "b"))
    obs = np.random.default_rng(0).normal(size=(5, policy.nets.actor_obs_size)).astype(np.float32)
    table = g1.joint_table()
    action = policy.nets.deterministic_action(policy.params, policy.normalizer, {ACTOR_KEY: obs})
    target = table.default_pos + table.action_scale * np.asarray(action)
    np.testing.assert_allclose(target, obs[:, :29], atol=1e-4)


def test_robust_plan_starts_inside_clips():
    import jax

    from mimic_jax.evaluation.rollout import plan_episodes
    from mimic_jax.motion.library import MotionLibrary

    lib = MotionLibrary(joint_pos=None, joint_vel=None, body_pos=None, body_quat=None, body_lin_vel=None,
                        body_ang_vel=None, clip_start=np.array([0, 30]), clip_length=np.array([30, 5]))
    motion_id, start = plan_episodes(lib, "robust", 50, jax.random.PRNGKey(0))
    assert np.bincount(motion_id).tolist() == [50, 50]
    assert np.all(start >= 0) and np.all(start <= np.array([30, 5])[motion_id] - 2)
    assert plan_episodes(lib, "clean", 50, None)[1].tolist() == [0, 0]
    motion_id, start = plan_episodes(lib, "noisy", 3, None)
    assert motion_id.tolist() == [0, 0, 0, 1, 1, 1] and start.tolist() == [0] * 6


def test_pushes_in_noisy_evaluation_have_their_own_ranges():
    """Evaluation zeroes the reset ranges; a push must still change the root velocity, within the push
    ranges (before pushes had their own config, every push in the noisy evaluation was zero)."""
    import jax

    from mimic_jax import math as jm
    from mimic_jax.envs.config import EnvConfig
    from mimic_jax.envs.tracking import TrackingEnv
    from mimic_jax.evaluation.rollout import eval_env_config
    from mimic_jax.motion.library import build_library

    cfg = eval_env_config(EnvConfig(collisions="feet"), "noisy", impl="jax")
    assert cfg.reset.lin_vel_xy == 0.0 and cfg.randomization.push.enabled and cfg.noise.enabled
    env = TrackingEnv(cfg, 1)
    lib = build_library([_clip(20, 0.0)], ["stand"])
    state = env.reset(env.mx, lib, env.make_data(1), jnp.int32(0), jnp.int32(0), jnp.int32(0), env.default_pos,
                      jax.random.PRNGKey(0))
    push = cfg.randomization.push
    lo, hi = (round(s / cfg.control_dt) for s in push.interval_s)
    assert lo <= int(state.push_timer) <= hi
    for seed in range(3):
        data, timer = env._push(state.data, state.replace(push_timer=jnp.int32(0)), jax.random.PRNGKey(seed))
        d_lin = np.asarray(data.qvel[:3] - state.data.qvel[:3])
        d_ang = np.asarray(jm.quat_rotate(data.qpos[3:7], data.qvel[3:6] - state.data.qvel[3:6]))  # world frame
        lin_max = np.array([push.lin_vel_xy, push.lin_vel_xy, push.lin_vel_z])
        ang_max = np.array([push.ang_vel_roll_pitch, push.ang_vel_roll_pitch, push.ang_vel_yaw])
        assert np.all(np.abs(d_lin) > 0) and np.all(np.abs(d_lin) <= lin_max + 1e-6), d_lin
        assert np.all(np.abs(d_ang) > 0) and np.all(np.abs(d_ang) <= ang_max + 1e-5), d_ang
        assert lo <= int(timer) <= hi
    clean = eval_env_config(EnvConfig(), "clean", impl="jax")
    assert not clean.randomization.push.enabled and not clean.noise.enabled


def test_cli_missing_checkpoint_and_bad_flags(tmp_path, capsys):
    from mimic_jax.eval import main

    assert main(["--run", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no such directory" in err and "\n" not in err
    (tmp_path / "empty").mkdir()
    assert main(["--run", str(tmp_path / "empty")]) == 2
    assert "no checkpoint found" in capsys.readouterr().err
    assert main(["--run", str(tmp_path), "--episodes", "0"]) == 2
    assert "--episodes must be positive" in capsys.readouterr().err
    assert main(["--run", str(tmp_path), "--impl", "warp"]) == 2
    assert "needs a GPU" in capsys.readouterr().err


# -- one tiny trained checkpoint, evaluated once with every output ---------------------------------------------
def _clip(frames: int, sway: float):
    from mimic_jax.motion.clip import make_clip

    t = np.arange(frames)
    root = np.stack([0 * t, sway * np.sin(t / 8), 0 * t + g1.DEFAULT_ROOT_HEIGHT], 1).astype(float)
    return make_clip(root, np.tile([1.0, 0, 0, 0], (frames, 1)), np.tile(g1.joint_table().default_pos, (frames, 1)),
                     source="test")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run trained for one PPO iteration on two short clips (stand, sway), saved with ``save_run``."""
    from mimic_jax.checkpoint import run_meta, save_run
    from mimic_jax.envs.config import EnvConfig
    from mimic_jax.motion.clip import save_clip
    from mimic_jax.motion.library import build_library
    from mimic_jax.ppo.config import PPOConfig
    from mimic_jax.ppo.trainer import TrainConfig, Trainer

    root = tmp_path_factory.mktemp("eval")
    paths = [save_clip(root / "stand.npz", _clip(40, 0.0)), save_clip(root / "sway.npz", _clip(30, 0.03))]
    save_clip(root / "lean.npz", _clip(30, 0.05))
    lib = build_library([_clip(40, 0.0), _clip(30, 0.03)], ["stand", "sway"])
    cfg = TrainConfig(env=EnvConfig(collisions="feet"),
                      ppo=PPOConfig(num_envs=4, unroll_length=4, num_epochs=1, num_minibatches=2,
                                    hidden_sizes=(32, 32)))
    trainer = Trainer(cfg, lib)
    carry, _ = trainer.train_step(trainer.init())
    motion_set = ",".join(str(p) for p in paths)
    save_run(root / "run", carry, cfg, run_meta(lib, motion_set, 1, 16))
    return root


@pytest.fixture(scope="module")
def cli_run(run_dir):
    """The CLI on the run with every output at once; returns the output folder."""
    from mimic_jax.eval import main

    out = run_dir / "out"
    argv = ["--run", str(run_dir / "run"), "--json", str(out / "e.json"), "--csv", str(out / "e.csv"),
            "--plots", str(out / "plots"), "--video", str(out / "e.gif"), "--video-size", "320x180",
            "--video-fps", "10", "--sim2sim",
            "--export-onnx", str(out / "p.onnx"), "--onnx-motion", "sway"]
    assert main(argv) == 0
    return out


@pytest.mark.slow
def test_eval_json_has_every_field(cli_run):
    data = json.loads((cli_run / "e.json").read_text())
    assert set(data) == {"run", "evaluation", "metrics", "engines"}
    assert data["run"]["iteration"] == 1 and data["run"]["training_motions"] == ["stand", "sway"]
    assert data["evaluation"]["mode"] == "clean" and data["evaluation"]["generalization"] is False
    assert set(data["engines"]) == {"mjx", "mujoco"}
    for engine in data["engines"].values():
        assert set(engine["clips"]) == {"stand", "sway"}
        for entry in list(engine["clips"].values()) + [engine["aggregate"]]:
            assert set(entry) >= set(SUMMARY_FIELDS) | {"terminations"}
            assert all(entry[k] is not None for k in SUMMARY_FIELDS)
        assert engine["clips"]["stand"]["clip_length_s"] == pytest.approx(39 * DT)


@pytest.mark.slow
def test_eval_writes_csv_plots_video(cli_run):
    lines = (cli_run / "e.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 3  # header, (2 clips + ALL) x 2 engines
    assert sorted(p.name for p in (cli_run / "plots").iterdir()) == ["stand.png", "sway.png"]
    assert (cli_run / "e.gif").stat().st_size > 5_000


@pytest.mark.slow
def test_sim2sim_tracks_like_mjx(cli_run):
    engines = json.loads((cli_run / "e.json").read_text())["engines"]
    mjx, mujoco = engines["mjx"]["aggregate"], engines["mujoco"]["aggregate"]
    assert mjx["success_rate"] == mujoco["success_rate"]
    assert abs(mjx["mpjpe_global_mm"] - mujoco["mpjpe_global_mm"]) < 0.2 * mjx["mpjpe_global_mm"] + 5.0
    assert abs(mjx["joint_pos_error_rad"] - mujoco["joint_pos_error_rad"]) < 0.02


@pytest.mark.slow
def test_exported_deployment_onnx_outputs_reference(cli_run, run_dir):
    import onnxruntime as ort

    from mimic_jax.export.onnx import read_metadata
    from mimic_jax.motion.clip import load_clip

    meta = read_metadata(cli_run / "p.onnx")
    assert meta["motion"] == "sway" and meta["motion_one_hot"] == "0,1"
    session = ort.InferenceSession(str(cli_run / "p.onnx"))
    obs = np.zeros((2, session.get_inputs()[0].shape[1]), np.float32)
    out = session.run(None, {"obs": obs, "time_step": np.array([[3.0], [99.0]], np.float32)})
    names = [o.name for o in session.get_outputs()]
    clip = load_clip(run_dir / "sway.npz")
    joint_pos = out[names.index("joint_pos")]
    np.testing.assert_allclose(joint_pos, clip.joint_pos[[3, 29]], atol=1e-6)  # 99 is clipped to the last frame
    assert out[names.index("body_quat_w")].shape == (2, 14, 4)


@pytest.mark.slow
def test_generalization_set_and_mismatched_run(run_dir, cli_run, capsys):
    from mimic_jax.eval import main

    capsys.readouterr()
    other = f"{run_dir / 'stand.npz'},{run_dir / 'lean.npz'}"
    assert main(["--run", str(run_dir / "run"), "--motion-set", other, "--json", str(cli_run / "g.json")]) == 0
    assert "generalization check" in capsys.readouterr().out
    data = json.loads((cli_run / "g.json").read_text())["evaluation"]
    assert data["generalization"] is True and "mean" in data["one_hot"]["lean"]
    save = (run_dir / "sway.npz").read_bytes()
    try:
        (run_dir / "sway.npz").write_bytes((run_dir / "lean.npz").read_bytes())  # the training set changed
        assert main(["--run", str(run_dir / "run")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "same clip names but other data" in err and "\n" not in err
    finally:
        (run_dir / "sway.npz").write_bytes(save)


# -- the episode runner ------------------------------------------------------------------------------------------
@struct.dataclass
class _ConstantPolicy:
    """A runner Policy: a constant action and a carry that counts its steps."""

    action: jnp.ndarray

    def init(self, num_envs, key):
        return jnp.zeros(num_envs, jnp.int32)

    def step(self, carry, obs, key):
        assert key.shape[0] == obs["actor"].shape[0]  # one key per episode
        return jnp.broadcast_to(self.action, (obs["actor"].shape[0], self.action.shape[0])), carry + 1


def _count_steps_policy(action):
    return _ConstantPolicy(action=jnp.full(29, action, jnp.float32))


def _record_frames(step):
    return {"count": step.policy_carry, "frame": step.state.frame, "valid": step.valid}


@pytest.mark.slow
def test_episode_runner_freezes_ended_episodes_and_compiles_once():
    """Two episodes (stand from frame 0, sway from frame 20 of 30) for 12 steps: sway reaches its clip end after
    9 steps and is frozen there; the recorder sees the policy carry; new parameters and starts reuse the program."""
    import jax

    from mimic_jax.envs.config import EnvConfig, evaluation_config
    from mimic_jax.envs.episodes import Start, _program, make_world, run_episodes
    from mimic_jax.envs.tracking import TrackingEnv
    from mimic_jax.motion.library import build_library

    env = TrackingEnv(evaluation_config(EnvConfig(collisions="feet")), 2)
    lib = build_library([_clip(40, 0.0), _clip(30, 0.03)], ["stand", "sway"])
    world = make_world(env, lib, 2, jax.random.PRNGKey(0))
    start = Start(motion_id=jnp.array([0, 1], jnp.int32), frame=jnp.array([0, 20], jnp.int32),
                  bin=jnp.zeros(2, jnp.int32))
    played = jax.device_get(run_episodes(env, world, _count_steps_policy(0.0), start, 12, jax.random.PRNGKey(1),
                                         _record_frames))
    steps = np.arange(1, 13)
    np.testing.assert_array_equal(played.records["count"], np.stack([steps, steps], 1))
    np.testing.assert_array_equal(played.valid[:, 0], True)
    np.testing.assert_array_equal(played.valid[:, 1], steps <= 9)
    np.testing.assert_array_equal(played.records["valid"], played.valid)
    np.testing.assert_array_equal(played.records["frame"][:, 0], steps)
    np.testing.assert_array_equal(played.records["frame"][:, 1], np.minimum(20 + steps, 29))
    assert played.length.tolist() == [12, 9] and played.success.tolist() == [True, True]
    assert not played.failed.any() and set(played.terminations) >= {"anchor_height", "nonfinite"}
    np.testing.assert_allclose(played.start_qpos[:, 7:], np.tile(g1.joint_table().default_pos, (2, 1)), atol=1e-6)
    other = start._replace(frame=jnp.array([5, 3], jnp.int32))
    run_episodes(env, make_world(env, lib, 2, jax.random.PRNGKey(2)), _count_steps_policy(0.01), other, 12,
                 jax.random.PRNGKey(3), _record_frames)
    assert _program(env, 12, _record_frames)._cache_size() == 1


@pytest.mark.slow
def test_reevaluation_with_new_parameters_compiles_nothing_new(cli_run, run_dir):
    """The CLI's clean evaluation compiled the runner program; other parameters of the same shapes reuse it."""
    import jax

    from mimic_jax.checkpoint import load_run
    from mimic_jax.envs.episodes import _program
    from mimic_jax.evaluation.rollout import (TrackingRecorder, _environment, eval_env_config, mjx_episodes,
                                              policy_from_run)
    from mimic_jax.motion.library import build_library

    policy = policy_from_run(load_run(run_dir / "run"))
    env = _environment(eval_env_config(policy.env_cfg, "clean"), policy.num_motions)
    program = _program(env, 39, TrackingRecorder(tuple(int(i) for i in env.body_ids), True))
    assert program._cache_size() == 1
    lib = build_library([_clip(40, 0.0), _clip(30, 0.03)], ["stand", "sway"])
    halved = dataclasses.replace(policy, params=jax.tree.map(lambda x: 0.5 * x, policy.params))
    episodes = mjx_episodes(halved, lib)
    assert episodes.errors["mpjpe_global_mm"].shape == (39, 2) and episodes.qpos.shape == (39, 2, 36)
    assert program._cache_size() == 1
