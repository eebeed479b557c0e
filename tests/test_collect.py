"""Demonstration data: OU noise, delay, mirror map, windows, storage and card, CLI refusals, one collection.

Pure parts first (no MJX program); the collection tests share ONE small run of the CLI (4 environments,
short windows via flags), which compiles one chunk program.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from mimic_jax import states as st
from mimic_jax.assets import g1
from mimic_jax.collect import mirror, schema, shards, windows
from mimic_jax.collect.delay import DelayedPolicy, random_delays
from mimic_jax.collect.noise import OUConfig, OUNoisePolicy, ou_noise, random_seeds
from mimic_jax.collect.stats import RunningStats
from mimic_jax.motion.clip import load_clip, make_clip
from mimic_jax.motion.library import TRACKED

CLIPS = Path(__file__).resolve().parents[1] / "motions" / "clips"


# -- OU noise --------------------------------------------------------------------------------------------------
def test_ou_stationary_figures_by_hand():
    cfg = OUConfig()
    assert cfg.decay == pytest.approx(0.2)
    assert cfg.stationary_std == pytest.approx(0.1 / np.sqrt(1 - 0.04))


def test_ou_process_has_the_stated_statistics():
    """A long pure-JAX run (8 seeds x 20000 steps x 29 joints): lag-1 autocorrelation 1 - theta = 0.2 and
    stationary variance sigma^2 / (1 - (1 - theta)^2) = 0.0104167; the increments obey the recursion."""
    cfg = OUConfig()
    xs = np.asarray(jax.jit(jax.vmap(lambda s: ou_noise(cfg, s, 20000, 29)))(jnp.arange(8, dtype=jnp.uint32)))
    x = xs.reshape(8, 20000, 29)
    assert abs(x.mean()) < 0.003
    assert x.var() == pytest.approx(0.01 / 0.96, rel=0.02)
    lag1 = np.mean(x[:, 1:] * x[:, :-1]) / np.mean(x * x)
    assert lag1 == pytest.approx(0.2, abs=0.01)
    # The innovation x_{k+1} - (1 - theta) x_k is white with std sigma.
    innovation = x[:, 1:] - 0.2 * x[:, :-1]
    assert innovation.std() == pytest.approx(0.1, rel=0.01)
    assert abs(np.mean(innovation[:, 1:] * innovation[:, :-1])) / innovation.var() < 0.01


@struct.dataclass
class CountingPolicy:
    """Stub teacher: action k of env i is obs + 10 i + k (every component), carry counts the steps."""

    def init(self, num_envs, key):
        return jnp.zeros(num_envs, jnp.int32)

    def step(self, carry, obs, key):
        action = obs["actor"][:, :1] + 10.0 * jnp.arange(carry.shape[0])[:, None] + carry[:, None]
        return jnp.broadcast_to(action, (carry.shape[0], 29)), carry + 1


def _unroll(policy, steps: int, n: int = 3):
    """(executed [T, N, 29], clean labels [T, N, 29]) of ``steps`` steps with obs 0.5."""
    obs = {"actor": jnp.full((n, 4), 0.5)}
    carry = policy.init(n, jax.random.PRNGKey(0))
    step = jax.jit(policy.step)
    executed, labels = [], []
    for _ in range(steps):
        action, carry = step(carry, obs, jax.random.PRNGKey(1))
        executed.append(action)
        labels.append(getattr(carry, "label", action))
    return np.stack(executed), np.stack(labels)


def test_noise_wrapper_adds_the_seeded_ou_sequence_and_keeps_the_label():
    seeds = random_seeds(jax.random.PRNGKey(3), 3)
    executed, labels = _unroll(OUNoisePolicy(inner=CountingPolicy(), seed=seeds), 6)
    clean = np.stack([0.5 + 10.0 * np.arange(3)[:, None] + k + np.zeros((3, 29)) for k in range(6)])
    np.testing.assert_array_equal(labels, clean)
    expected = np.swapaxes(jax.jit(jax.vmap(lambda s: ou_noise(OUConfig(), s, 6, 29)))(seeds), 0, 1)
    np.testing.assert_allclose(executed - labels, expected, atol=1e-6)
    assert np.abs(expected).mean() > 0.03


def test_noise_off_executes_the_label_exactly():
    policy = OUNoisePolicy(inner=CountingPolicy(), seed=random_seeds(jax.random.PRNGKey(3), 3),
                           cfg=OUConfig(sigma=0.0))
    executed, labels = _unroll(policy, 4)
    np.testing.assert_array_equal(executed, labels)


def test_delay_wrapper_executes_the_command_of_d_steps_ago():
    delays = jnp.array([0, 1, 2], jnp.int32)
    executed, _ = _unroll(DelayedPolicy(inner=CountingPolicy(), delay=delays, max_delay=2), 5)
    commands, _ = _unroll(CountingPolicy(), 5)
    for k in range(5):
        for i, d in enumerate([0, 1, 2]):
            np.testing.assert_array_equal(executed[k, i], commands[max(k - d, 0), i])
    assert set(np.asarray(random_delays(jax.random.PRNGKey(0), 600, 2)).tolist()) == {0, 1, 2}


def test_wrappers_refuse_another_env_count():
    with pytest.raises(ValueError, match="2 environments"):
        DelayedPolicy(inner=CountingPolicy(), delay=jnp.zeros(3, jnp.int32)).init(2, jax.random.PRNGKey(0))


# -- mirror map -------------------------------------------------------------------------------------------------
def _world(clip) -> st.WorldStates:
    idx = np.array(TRACKED)
    fields = (clip.body_pos_w[:, idx], clip.body_quat_w[:, idx], clip.body_lin_vel_w[:, idx],
              clip.body_ang_vel_w[:, idx], clip.joint_pos, clip.joint_vel)
    return st.WorldStates(*(np.asarray(x, np.float32) for x in fields))


def test_mirror_tables_and_involution():
    names = g1.JOINT_NAMES
    assert names[mirror.JOINT_PERM[names.index("left_hip_roll_joint")]] == "right_hip_roll_joint"
    assert mirror.JOINT_SIGN[names.index("waist_yaw_joint")] == -1 and mirror.JOINT_SIGN[names.index(
        "left_knee_joint")] == 1
    assert g1.TRACKED_BODY_NAMES[mirror.TRACKED_PERM[st.ROOT]] == "pelvis"
    table = g1.joint_table()
    np.testing.assert_allclose(mirror.mirror_joints(table.default_pos), table.default_pos)
    np.testing.assert_allclose(table.action_scale[mirror.JOINT_PERM], table.action_scale)
    ws = _world(load_clip(CLIPS / "side_step.npz"))
    twice = mirror.mirror_world_states(mirror.mirror_world_states(ws))
    for a, b in zip(twice, ws):
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def side_step():
    return load_clip(CLIPS / "side_step.npz")


def test_mirrored_states_equal_the_forward_kinematics_of_the_mirrored_motion(side_step):
    """Mirror the joint trajectory and root (a sideways clip), rebuild it by our FK and finite differences:
    the world states equal the mirror image of the original's (offsets of our model agree to 1e-5 m)."""
    root_pos, root_quat = mirror.mirror_root(side_step.root_pos, side_step.root_quat)
    mirrored = make_clip(root_pos, root_quat, mirror.mirror_joints(side_step.joint_pos))
    expected, got = mirror.mirror_world_states(_world(side_step)), _world(mirrored)
    np.testing.assert_allclose(got.body_pos_w, expected.body_pos_w, atol=5e-5)
    dots = np.abs(np.sum(got.body_quat_w * expected.body_quat_w, axis=-1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-6)
    np.testing.assert_allclose(got.body_lin_vel_w, expected.body_lin_vel_w, atol=1e-3)
    np.testing.assert_allclose(got.body_ang_vel_w, expected.body_ang_vel_w, atol=1e-3)
    np.testing.assert_allclose(got.joint_pos, expected.joint_pos, atol=1e-12)
    assert np.ptp(side_step.root_pos[:, 1]) > 0.2  # the clip really moves sideways


def test_mirroring_commutes_with_body_pos(side_step):
    """Body-Pos of the mirror image = the mirror image of Body-Pos: root y, lateral velocity, roll and yaw flip;
    every other body's local position and velocity flip their y and swap sides."""
    ws = _world(side_step)
    encode = jax.jit(lambda w: st.encode("body_pos", w, st.frame_at(w, 0)))
    s, m = np.asarray(encode(ws)), np.asarray(encode(mirror.mirror_world_states(ws)))
    lay = st.BODY_POS
    np.testing.assert_allclose(m[:, lay.slice("root_pos")], s[:, lay.slice("root_pos")] * mirror.VECTOR, atol=2e-5)
    np.testing.assert_allclose(m[:, lay.slice("root_lin_vel")], s[:, lay.slice("root_lin_vel")] * mirror.VECTOR,
                               atol=2e-5)
    np.testing.assert_allclose(m[:, lay.slice("root_rotvec")], s[:, lay.slice("root_rotvec")] * mirror.PSEUDO,
                               atol=2e-5)
    others = [i for i in range(st.NUM_BODIES) if i != st.ROOT]
    perm = np.array([others.index(mirror.TRACKED_PERM[i]) for i in others])
    local = s[:, lay.slice("body_pos_b")].reshape(-1, 13, 3)
    np.testing.assert_allclose(m[:, lay.slice("body_pos_b")].reshape(-1, 13, 3), (local * mirror.VECTOR)[:, perm],
                               atol=2e-5)


# -- windows ----------------------------------------------------------------------------------------------------
def test_window_steps_and_refusal():
    assert windows.WindowConfig().steps(0.02) == (125, 250)
    with pytest.raises(ValueError, match="does not hold a window"):
        windows.WindowConfig(window_seconds=2.0, run_seconds=2.0).steps(0.02)


def test_starts_cover_every_clip_with_room_for_the_run():
    lengths = np.array([300, 500, 120])
    starts = windows.plan_starts(lengths, np.arange(30000), 250, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(starts.motion_id), [10000, 10000, 10000])
    for clip, room in ((0, 49), (1, 249)):
        counts = np.bincount(starts.frame[starts.motion_id == clip])
        assert counts.size == room + 1  # no start without room for the whole run
        assert counts.min() > 0.5 * counts.mean()  # uniform over every start with room
    assert np.all(starts.frame[starts.motion_id == 2] == 0)  # a clip shorter than the run starts at 0


def test_outcomes_reject_falls_and_short_runs():
    """4 episodes of a 6-step run, window 3: full run; fell at step 4; clip ended after 5 steps; only 3 steps."""
    valid = np.ones((6, 4), bool)
    valid[5:, 1] = False
    valid[5:, 2] = False
    valid[3:, 3] = False
    failed = np.zeros((6, 4), bool)
    failed[4, 1] = True
    out = windows.outcomes(jnp.asarray(valid), jnp.asarray(failed), 3)
    np.testing.assert_array_equal(out.steps, [6, 5, 5, 3])
    np.testing.assert_array_equal(out.fell, [False, True, False, False])
    np.testing.assert_array_equal(out.fall_step, [-1, 4, -1, -1])
    np.testing.assert_array_equal(out.accepted, [True, False, True, False])
    np.testing.assert_array_equal(windows.keep_first(np.array([True, False, True, True]), 2),
                                  [True, False, True, False])


def test_cut_pairs_each_state_with_the_actions_taken_from_it():
    """Records of step k hold the post-step state s_{k+1} and the action a_k: window step t pairs s_{1+t}
    (record 0 + t) with a_{1+t} (record 1 + t)."""
    steps = jnp.broadcast_to(jnp.arange(8)[:, None], (8, 2))
    post_state, action = windows.cut(steps + 1, windows.state_steps(3)), windows.cut(steps, windows.action_steps(3))
    np.testing.assert_array_equal(post_state, [[1, 2, 3]] * 2)
    np.testing.assert_array_equal(action, [[1, 2, 3]] * 2)


# -- storage ----------------------------------------------------------------------------------------------------
def test_running_stats_equal_numpy():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(50, 7, 4))
    stats = RunningStats((4,))
    for chunk in np.array_split(data, 4):
        stats.update(chunk)
    flat = data.reshape(-1, 4)
    np.testing.assert_allclose(stats.mean, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, flat.std(0), rtol=1e-12)
    np.testing.assert_array_equal(stats.low, flat.min(0))
    assert stats.count == 350


def _rows(n: int, t: int, rng) -> dict:
    out = {}
    for name, f in schema.fields().items():
        shape = schema.full_shape(f, n, t)
        out[name] = (rng.normal(size=shape) if f.dtype.startswith("float") else rng.integers(0, 5, size=shape)) \
            .astype(f.dtype)
    out["motion_id"], out["mirrored"] = np.zeros(n, np.int32), np.zeros(n, bool)
    return out


def _card() -> dict:
    return {"control_hz": 50.0, "window_start": 1, "run_steps": 8, "mirrored_windows": 0,
            "clips": [{"name": "a", "frames": 10, "episodes": 3, "accepted": 3, "windows": 3}],
            "teacher": {"run": "r", "pretrained": None, "iteration": 1, "motion_set": "s"},
            "noise": {**dataclasses.asdict(OUConfig()), "stationary_std": OUConfig().stationary_std},
            "delay": {"max_steps": 0, "episodes": [3], "accepted": [3]},
            "episodes": {"run": 3, "accepted": 3, "fell": 0, "short": 0, "not_kept": 0},
            "environment": {"impl": "jax", "randomization": True, "pushes": True, "observation_noise": True}}


def _episode_rows(n: int) -> dict:
    return {k: np.zeros(n, dtype) for k, (dtype, _) in schema.EPISODE_FIELDS.items()}


def test_writer_round_trip_card_statistics_and_refusals(tmp_path, capsys):
    from mimic_jax.collect.__main__ import main

    rng, out = np.random.default_rng(0), tmp_path / "data"
    chunks = [_rows(2, 4, rng), _rows(1, 4, rng)]
    with shards.DatasetWriter(out, schema.fields(), 3, 4) as writer:
        for rows in chunks:
            writer.append(rows)
            writer.add_episodes(_episode_rows(2))
        writer.finish(_card())
    data = shards.open_dataset(out)
    card = json.loads((out / "card.json").read_text())
    assert card["windows"] == 3 and card["frames"] == 12 and data["label"].shape == (3, 4, 29)
    for name in ("label", "state_body_pos", "body_quat_w"):
        values = np.concatenate([c[name] for c in chunks]).astype(np.float64)
        np.testing.assert_array_equal(data[name], np.concatenate([c[name] for c in chunks]))
        axes = (0, 1)
        np.testing.assert_allclose(card["statistics"][name]["mean"], values.mean(axes), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(card["statistics"][name]["std"], values.std(axes), rtol=1e-9)
    assert "frame" not in card["statistics"] and data.episodes["kept"].shape == (4,)
    assert main(["info", str(out)]) == 0
    assert "3 windows, 12 frames" in capsys.readouterr().out
    assert main(["plot", str(out), "--out", str(tmp_path / "windows.png"), "--windows", "2"]) == 0
    assert (tmp_path / "windows.png").stat().st_size > 10_000 and "wrote" in capsys.readouterr().err
    with pytest.raises(shards.DatasetError, match="already exists; pass --replace"):
        shards.DatasetWriter(out, schema.fields(), 3, 4)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(shards.DatasetError, match="not a mimic_jax dataset"):
        shards.DatasetWriter(tmp_path / "other", schema.fields(), 3, 4, replace=True)
    _refused(capsys, ["info", tmp_path / "other"], "not a mimic_jax dataset (no card.json)")


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_interruption_leaves_no_dataset(tmp_path, interrupt):
    """An exception half-way (Ctrl-C or a crash) leaves neither the target nor a temporary directory; replacing
    an existing dataset that way leaves the old one untouched."""
    rng = np.random.default_rng(0)
    for target, existing in ((tmp_path / "fresh", False), (tmp_path / "old", True)):
        if existing:
            with shards.DatasetWriter(target, schema.fields(), 1, 4) as writer:
                writer.append(_rows(1, 4, rng))
                writer.finish(_card())
        with pytest.raises(interrupt):
            with shards.DatasetWriter(target, schema.fields(), 3, 4, replace=True) as writer:
                writer.append(_rows(2, 4, rng))
                raise interrupt()
        assert target.exists() == existing
        if existing:
            assert shards.open_dataset(target).num_windows == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


# -- teachers and CLI refusals (no MJX program) ----------------------------------------------------------------
def _clip(frames: int, sway: float):
    t = np.arange(frames)
    root = np.stack([0 * t, sway * np.sin(t / 8), 0 * t + g1.DEFAULT_ROOT_HEIGHT], 1).astype(float)
    return make_clip(root, np.tile([1.0, 0, 0, 0], (frames, 1)), np.tile(g1.joint_table().default_pos, (frames, 1)))


def write_teacher(run_dir: Path, clip_paths: list[Path], *, num_motions: int | None = None, with_carry=False):
    """A teacher run as ``load_run`` reads it (policy + meta items; optionally a dummy training-state item),
    with freshly initialized parameters: no training, no MJX program. ``num_motions`` other than the clip count
    writes parameters of another observation layout."""
    import orbax.checkpoint as ocp

    import mimic_jax
    from mimic_jax import checkpoint as ckpt
    from mimic_jax.envs.config import EnvConfig
    from mimic_jax.envs.observations import observation_size
    from mimic_jax.motion.library import build_library
    from mimic_jax.ppo.config import PPOConfig
    from mimic_jax.ppo.networks import make_networks
    from mimic_jax.ppo.trainer import TrainConfig

    lib = build_library([load_clip(p) for p in clip_paths], [p.stem for p in clip_paths])
    cfg = TrainConfig(env=EnvConfig(collisions="feet"), ppo=PPOConfig(hidden_sizes=(32, 32)))
    sizes = observation_size(cfg.env, num_motions or lib.num_motions)
    nets = make_networks(sizes["actor"], sizes["critic"], g1.NUM_JOINTS, cfg.ppo)
    params, norm = nets.init(jax.random.PRNGKey(0)), nets.init_normalizer()
    item = jax.tree.map(np.asarray, {"policy": params.policy, "value": params.value, "normalizer": {
        f.name: getattr(norm, f.name) for f in dataclasses.fields(norm) if f.metadata.get("pytree_node", True)}})
    meta = {**ckpt.run_meta(lib, ",".join(str(p) for p in clip_paths), 3, 100), "config": ckpt.config_to_dict(cfg),
            "model_hash": ckpt.model_hash(), "mimic_jax_version": mimic_jax.__version__}
    items = {"policy": ocp.args.StandardSave(item), "meta": ocp.args.JsonSave(meta)}
    if with_carry:
        items["carry"] = ocp.args.StandardSave({"00000": np.zeros(3)})
    options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False)
    with ocp.CheckpointManager(run_dir / "checkpoints", options=options) as manager:
        manager.save(3, args=ocp.args.Composite(**items))
        manager.wait_until_finished()
    return run_dir


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> dict[str, Path]:
    from mimic_jax.motion.clip import save_clip

    root = tmp_path_factory.mktemp("clips")
    return {name: save_clip(root / f"{name}.npz", _clip(frames, sway))
            for name, frames, sway in (("stand", 60, 0.0), ("sway", 50, 0.03), ("lean", 50, 0.05))}


@pytest.fixture(scope="module")
def teacher_run(clip_files, tmp_path_factory) -> Path:
    return write_teacher(tmp_path_factory.mktemp("teacher") / "run", [clip_files["stand"], clip_files["sway"]])


def _refused(capsys, argv, message, code=2):
    from mimic_jax.collect.__main__ import main

    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err


def test_cli_refusals_are_one_line(teacher_run, clip_files, tmp_path, capsys, monkeypatch):
    from mimic_jax.collect import pretrained

    out = ["--out", tmp_path / "data"]
    _refused(capsys, ["--run", tmp_path / "nope", *out], "no such directory")
    _refused(capsys, ["--pretrained", "nope", *out], "--pretrained nope: unknown (known: generalist)")
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "shipped")
    _refused(capsys, out, "--pretrained generalist: its weights are not in this checkout")
    run = ["--run", teacher_run]
    lean = ",".join(str(clip_files[n]) for n in ("stand", "lean"))
    _refused(capsys, [*run, "--motion-set", lean, *out], "clips lean are not among the teacher's 2 clips")
    _refused(capsys, [*run, "--motion-set", clip_files["sway"], *out], "has 1 of the teacher's 2 clips")
    _refused(capsys, [*run, "--mirror", "--teacher-obs", *out], "cannot be combined with --mirror")
    _refused(capsys, [*run, "--window-seconds", "3", "--run-seconds", "2", *out], "does not hold a window")
    _refused(capsys, [*run, "--impl", "warp", *out], "needs a GPU")
    _refused(capsys, [*run, "--frames", "0", *out], "--frames must be positive")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x").write_text("")
    _refused(capsys, [*run, *out], "already exists; pass --replace")
    assert not (tmp_path / "shipped").exists()


def test_cli_refuses_another_observation_layout_and_other_clip_data(clip_files, tmp_path, capsys):
    paths = [clip_files["stand"], clip_files["sway"]]
    wide = write_teacher(tmp_path / "wide", paths, num_motions=3)
    _refused(capsys, ["--run", wide, "--out", tmp_path / "data"], "actor parameters do not fit")
    teacher = write_teacher(tmp_path / "run", paths)
    from mimic_jax.motion.clip import save_clip

    other = tmp_path / "other"
    other.mkdir()
    moved = [save_clip(other / "stand.npz", _clip(60, 0.01)), save_clip(other / "sway.npz", _clip(50, 0.03))]
    _refused(capsys, ["--run", teacher, "--motion-set", ",".join(map(str, moved)), "--out", tmp_path / "data"],
             "same clip names but other data")


def test_export_ships_policy_and_meta_only(clip_files, tmp_path):
    from mimic_jax.checkpoint import load_run
    from mimic_jax.collect import pretrained

    run = write_teacher(tmp_path / "run", [clip_files["stand"]], with_carry=True)
    shipped = pretrained.export(run, "generalist", dest=tmp_path / "generalist")
    assert sorted(p.name for p in (shipped / "checkpoints" / "3").iterdir()) == sorted(pretrained.SHIPPED)
    assert load_run(shipped).motion_names == ("stand",)
    with pytest.raises(pretrained.PretrainedError, match="already exists"):
        pretrained.export(run, "generalist", dest=tmp_path / "generalist")


# -- one small collection through the CLI (the episode runner; one compiled chunk program) ---------------------
WINDOW = ["--window-seconds", "0.1", "--run-seconds", "0.3", "--num-envs", "4", "--max-delay", "2"]  # 5 of 15


def _collect(argv) -> int:
    from mimic_jax.collect.__main__ import main

    pytest.importorskip("mimic_jax.envs.episodes", reason="needs the episode runner (engineer A)")
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def collected(teacher_run, tmp_path_factory) -> shards.Dataset:
    """8 windows of 5 steps (2+ chunks of 4 episodes) with noise, delays 0..2 and the teacher's observations."""
    out = tmp_path_factory.mktemp("collect") / "data"
    assert _collect(["--run", teacher_run, "--out", out, "--frames", 40, "--teacher-obs", *WINDOW]) == 0
    return shards.open_dataset(out)


@pytest.fixture(scope="module")
def mirrored(teacher_run, tmp_path_factory) -> shards.Dataset:
    """The same collection with mirror copies (the same compiled chunk program)."""
    out = tmp_path_factory.mktemp("collect") / "mirrored"
    assert _collect(["--run", teacher_run, "--out", out, "--frames", 20, "--mirror", *WINDOW]) == 0
    return shards.open_dataset(out)


@pytest.mark.slow
def test_labels_are_the_deterministic_teacher_action(collected, teacher_run):
    from mimic_jax.checkpoint import load_run
    from mimic_jax.evaluation.rollout import policy_from_run

    policy = policy_from_run(load_run(teacher_run))
    obs = jnp.asarray(collected["teacher_obs"])
    mean = policy.nets.deterministic_action(policy.params, policy.normalizer, {"actor": obs})
    np.testing.assert_allclose(collected["label"], mean, rtol=0, atol=1e-6)
    assert np.abs(collected["label"]).mean() > 1e-3


@pytest.mark.slow
def test_executed_is_the_delayed_label_plus_the_episodes_ou_noise(collected):
    """executed_k = label_{k-d} + x_{k-d} (the command of d steps ago), x regenerated from the noise seed."""
    label, action = np.asarray(collected["label"]), np.asarray(collected["action"])
    start = int(np.unique(collected["window_start"]).item())
    noise = jax.jit(jax.vmap(lambda s: ou_noise(OUConfig(), s, start + label.shape[1], 29)))
    x = np.asarray(noise(jnp.asarray(collected["noise_seed"])))[:, start:]  # x at the window's steps
    checked = 0
    for w, d in enumerate(np.asarray(collected["delay"], int)):
        np.testing.assert_allclose(action[w, d:], label[w, :label.shape[1] - d] + x[w, :label.shape[1] - d],
                                   atol=1e-5)
        checked += label.shape[1] - d
    assert checked > 0 and set(np.asarray(collected["delay"]).tolist()) == {0, 1, 2}
    assert np.abs(action - label).std() > 0.05


@pytest.mark.slow
def test_windows_never_cross_a_reset(collected):
    ep, frame = collected.episodes, np.asarray(collected["frame"])
    np.testing.assert_array_equal(np.diff(frame, axis=1), 1)
    episode = np.asarray(collected["episode"])
    assert len(np.unique(episode)) == collected.num_windows
    np.testing.assert_array_equal(frame[:, 0], ep["start_frame"][episode] + windows.WINDOW_START)
    np.testing.assert_array_equal(collected["motion_id"], ep["motion_id"][episode])
    np.testing.assert_array_equal(collected["delay"], ep["delay"][episode])
    assert ep["kept"][episode].all() and ep["kept"].sum() == collected.num_windows
    step = np.linalg.norm(np.diff(np.asarray(collected["body_pos_w"])[:, :, st.ROOT], axis=1), axis=-1)
    assert step.max() < 0.05  # 50 Hz: no jump of a reset inside a window


@pytest.mark.slow
def test_card_counts_statistics_and_states(collected, capsys):
    from mimic_jax.collect.__main__ import main

    card, ep = collected.card, collected.episodes
    assert main(["info", str(collected.path)]) == 0
    assert "8 windows, 40 frames" in capsys.readouterr().out
    np.testing.assert_array_equal(ep["accepted"], ~ep["fell"] & (ep["steps"] >= windows.WINDOW_START + 5))
    assert card["episodes"]["run"] == len(ep["accepted"]) and card["episodes"]["accepted"] == ep["accepted"].sum()
    assert sum(c["windows"] for c in card["clips"]) == collected.num_windows == 8
    assert card["window_steps"] == 5 and card["run_steps"] == 15 and card["frames"] == 40
    for name in ("label", "state_body_pos", "teacher_obs", "body_ang_vel_w"):
        values = np.asarray(collected[name], np.float64)
        np.testing.assert_allclose(card["statistics"][name]["mean"], values.mean((0, 1)), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(card["statistics"][name]["std"], values.std((0, 1)), rtol=1e-6, atol=1e-9)
    ws = st.WorldStates(*(jnp.asarray(collected[f]) for f in schema.WORLD_FIELDS))

    @jax.jit
    def encode(ws):
        frame = st.character_frame(ws.body_pos_w[:, 0, st.ROOT], ws.body_quat_w[:, 0, st.ROOT])
        return st.encode("body_pos", ws, frame), st.encode("joint_pos", ws, frame)

    body_pos, joint_pos = encode(ws)
    np.testing.assert_allclose(collected["state_body_pos"], body_pos, atol=1e-5)
    np.testing.assert_allclose(collected["state_joint_pos"], joint_pos, atol=1e-5)
    np.testing.assert_allclose(st.root_yaw("body_pos", collected["state_body_pos"][:, 0]), 0.0, atol=1e-5)


@pytest.mark.slow
def test_mirror_copies_are_mirror_images_of_their_windows(mirrored):
    is_copy = np.asarray(mirrored["mirrored"])
    assert is_copy.sum() == (~is_copy).sum() == mirrored.num_windows // 2 == 4
    assert mirrored.card["mirrored_windows"] == 4
    originals = {int(e): i for i, e in enumerate(mirrored["episode"]) if not is_copy[i]}
    for i in np.nonzero(is_copy)[0]:
        j = originals[int(mirrored["episode"][i])]
        copy = st.WorldStates(*(np.asarray(mirrored[f][i]) for f in schema.WORLD_FIELDS))
        for a, b in zip(mirror.mirror_world_states(copy), (np.asarray(mirrored[f][j]) for f in schema.WORLD_FIELDS)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(mirror.mirror_joints(np.asarray(mirrored["label"][i])), mirrored["label"][j])
        np.testing.assert_array_equal(mirrored["frame"][i], mirrored["frame"][j])


@pytest.mark.slow
def test_a_teacher_that_falls_writes_nothing(clip_files, collected, tmp_path, capsys):
    """Parameters scaled up (the same compiled program): every episode falls; exit 1, nothing at --out."""
    run = write_teacher(tmp_path / "run", [clip_files["stand"], clip_files["sway"]])
    from mimic_jax.checkpoint import load_run

    from mimic_jax.collect import teacher as teacher_lib

    real = teacher_lib.load_run

    def flailing(path):
        loaded = real(path)
        policy = jax.tree.map(lambda x: 50.0 * x, loaded.params.policy)
        return dataclasses.replace(loaded, params=loaded.params.replace(policy=policy))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(teacher_lib, "load_run", flailing)
        assert _collect(["--run", run, "--out", tmp_path / "data", "--frames", 20, *WINDOW]) == 1
    err = capsys.readouterr().err
    assert "the teacher does not track these clips" in err and "nothing written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert load_run(run).iteration == 3
