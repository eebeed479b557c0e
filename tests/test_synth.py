"""The built-in synthesized clips: reproducible bit for bit, plausible, and listed in the motion sets."""

import dataclasses

import numpy as np
import pytest
import yaml

from mimic_jax.assets import g1
from mimic_jax.motion import quality, synth
from mimic_jax.motion.clip import load_clip
from mimic_jax.motion.locomotion import Walk, repeat, walk_targets

NAMES = list(synth.CLIPS)
SHORT = [n for n in NAMES if n != synth.LONG]


@pytest.fixture(scope="module")
def model():
    return g1.load_model()


@pytest.fixture(scope="module")
def clips():
    return {name: load_clip(synth.CLIPS_DIR / f"{name}.npz") for name in NAMES}


def _arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _reproduces(tmp_path, names):
    synth.synth_all(tmp_path / "clips", tmp_path / "sets", names=names, log=lambda *_: None)
    for name in names:
        new, old = _arrays(tmp_path / "clips" / f"{name}.npz"), _arrays(synth.CLIPS_DIR / f"{name}.npz")
        assert new.keys() == old.keys(), name
        for key in old:
            assert new[key].dtype == old[key].dtype and np.array_equal(new[key], old[key]), f"{name}: {key}"
    written = sorted(p.name for p in (tmp_path / "sets").glob("*.yaml"))
    assert written and all((tmp_path / "sets" / n).read_text() == (synth.SETS_DIR / n).read_text() for n in written)
    return written


def test_synth_all_reproduces_committed_files(tmp_path):
    """`synth --all` gives the committed arrays and set files exactly: the 13 short clips (about 10 s) here."""
    written = _reproduces(tmp_path, SHORT)
    assert written == ["dynamic_skills.yaml", "generalist.yaml", "locomotion_basic.yaml"]


@pytest.mark.slow
def test_synth_reproduces_long_clip(tmp_path):
    """The 124 s chained clip (about 40 s of IK) and its set file."""
    assert _reproduces(tmp_path, [synth.LONG]) == ["long_benchmark.yaml"]


@pytest.mark.parametrize("name", ["walk_forward", "arm_wave"])
def test_last_bit_noise_does_not_change_clips(name, model, clips):
    """Another machine's sin/cos may differ in the last bit: such noise in every target changes no array."""
    targets = synth.CLIPS[name].targets()
    rng = np.random.default_rng(0)
    noisy = {f.name: getattr(targets, f.name) * (1.0 + 1e-14 * rng.standard_normal(getattr(targets, f.name).shape))
             for f in dataclasses.fields(targets) if getattr(targets, f.name) is not None}
    clip = synth.synthesize(name, model, dataclasses.replace(targets, **noisy))
    for key in ("root_pos", "root_quat", "joint_pos", "body_pos_w", "body_lin_vel_w", "body_ang_vel_w"):
        assert np.array_equal(getattr(clip, key).astype(np.float32), getattr(clips[name], key)), key


def test_cli_builds_one_clip(tmp_path):
    out = tmp_path / "jump.npz"
    assert synth.cli(["jump_small", "--out", str(out)]) == 0
    new, old = _arrays(out), _arrays(synth.CLIPS_DIR / "jump_small.npz")
    assert all(np.array_equal(new[k], old[k]) for k in old)


def test_motion_sets():
    sets = {p.stem: yaml.safe_load(p.read_text()) for p in synth.SETS_DIR.glob("*.yaml")}
    assert {"locomotion_basic", "dynamic_skills", "generalist", "long_benchmark"} <= sets.keys()
    paths = {name: [p["path"] for p in content["clips"]] for name, content in sets.items()}
    loco = paths["locomotion_basic"]
    assert len(loco) >= 7 and "../clips/walk_forward.npz" in loco and "../clips/stand_sway.npz" in loco
    assert len(sets["dynamic_skills"]["clips"]) >= 5
    assert paths["generalist"] == loco + paths["dynamic_skills"] and len(paths["generalist"]) == 13
    assert paths["long_benchmark"] == ["../clips/long_benchmark.npz"]
    for name, content in sets.items():
        assert content["name"] == name and content["description"]
        for entry in content["clips"]:
            assert (synth.SETS_DIR / entry["path"]).resolve().is_file(), entry["path"]


@pytest.mark.parametrize("name", NAMES)
def test_clip_quality(name, model, clips):
    clip = clips[name]
    assert clip.duration >= 120.0 if name == synth.LONG else 8.0 <= clip.duration <= 12.0
    metrics = quality.clip_quality(clip, model)
    problems = quality.check_clip_quality(clip, model, metrics=metrics)  # with the clip's own bounds
    assert not problems, f"{name}: {problems}"
    assert metrics["joint_limit_margin"] > 0.02  # inside the hard range, within 1.5 degrees at worst
    # Stance feet are planted whatever the sole: the slowest touching point of every sole shape stands still.
    assert all(metrics[f"foot_slide_p95_{sole}"] <= 0.005 for sole in quality.SOLES), name


def test_long_clip_is_the_chained_patterns(clips):
    """The long clip passes through every pattern; between them it stands in the default pose."""
    long = clips[synth.LONG]
    trim = int(round(synth.sequence.LEAD_TRIM * 50))
    lengths = [clips[n].num_frames - (trim if i else 0) for i, n in enumerate(synth.LONG_ORDER)]
    assert long.num_frames == sum(lengths)
    ends = np.cumsum(lengths)
    default = g1.joint_table().default_pos
    for end in ends[:-1]:  # the last frame of a pattern and the first of the next: standing still
        assert np.abs(long.joint_pos[end - 1:end + 1] - default).max() < 0.05
        assert np.abs(long.joint_vel[end - 1:end + 1]).max() < 1e-3
    # A pattern inside the chain moves the joints as the pattern on its own (to the IK's warm start).
    start = ends[0]
    walk = clips[synth.LONG_ORDER[1]]
    np.testing.assert_allclose(long.joint_pos[start:start + 200], walk.joint_pos[trim:trim + 200], atol=1e-3)


def test_toe_off_slides_on_other_soles(model):
    """A toe-off (heel rising about our toe tip while the toe is on the floor) is planted for our sole only."""
    walk = Walk(repeat((0.3, 0.0, 0.0), 4, 1), heel_off=0.15, toe_down=0.45)
    clip = synth.synthesize("walk_forward", model, targets=walk_targets(walk))
    metrics = quality.clip_quality(clip, model)
    assert metrics["foot_slide_p95_ours"] < 0.002
    problems = quality.check_clip_quality(clip, model, metrics=metrics)
    assert any("foot_slide_p95_long_box" in p for p in problems), problems


@pytest.mark.parametrize("name", NAMES)
def test_clip_starts_and_ends_standing(name, clips):
    clip = clips[name]
    default = g1.joint_table().default_pos
    still = int(0.96 * clip.fps)  # about 1 s of standing still before anything moves
    assert np.abs(clip.joint_vel[:still]).max() < 1e-3 and np.abs(clip.body_lin_vel_w[:still]).max() < 1e-3
    assert np.abs(clip.joint_vel[-10:]).max() < 1e-3
    for frame in (0, -1):
        assert np.abs(clip.joint_pos[frame] - default).max() < 0.05
        assert abs(clip.root_pos[frame, 2] - g1.DEFAULT_ROOT_HEIGHT) < 0.01


def test_quality_catches_bad_clips(model, clips):
    good = clips["walk_forward"]
    t = np.arange(good.num_frames)[:, None] / good.fps

    def shifted(offset):  # moves the whole robot by offset [T, 3]
        return dataclasses.replace(good, root_pos=good.root_pos + offset,
                                   body_pos_w=good.body_pos_w + offset[:, None, :])

    sunk = shifted(np.tile([0.0, 0.0, -0.02], (good.num_frames, 1)))
    assert any("floor_penetration" in p for p in quality.check_clip_quality(sunk, model))
    sliding = shifted(np.concatenate([0.1 * t, 0 * t, 0 * t], axis=1))
    assert any("foot_slide" in p for p in quality.check_clip_quality(sliding, model))
    jerky = good.joint_pos.copy()
    jerky[100:, 3] += 0.2
    assert any("joint_acc" in p for p in quality.check_clip_quality(dataclasses.replace(good, joint_pos=jerky), model))
    leaning = shifted(np.tile([0.25, 0.0, 0.0], (good.num_frames, 1)))
    leaning = dataclasses.replace(leaning, body_pos_w=good.body_pos_w)  # feet stay, the COM moves 25 cm ahead
    assert any("com_margin_double" in p for p in quality.check_clip_quality(leaning, model))
    hugging = good.joint_pos.copy()
    hugging[:, g1.JOINT_NAMES.index("left_shoulder_roll_joint")] = -0.2  # the upper arm 7 mm into the torso
    problems = quality.check_clip_quality(dataclasses.replace(good, joint_pos=hugging), model)
    assert any("self_clearance" in p for p in problems), problems


def test_convex_hull_and_distance():
    square = quality.convex_hull(np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]], dtype=float))
    assert len(square) == 4
    assert quality.signed_distance(np.array([0.5, 0.5]), square) == pytest.approx(0.5)
    assert quality.signed_distance(np.array([2.0, 0.5]), square) == pytest.approx(-1.0)
    assert quality.signed_distance(np.array([2.0, 2.0]), square) == pytest.approx(-np.sqrt(2.0))
