"""Motion sets (YAML and comma lists), the motions CLI and the clip plot / renderer."""

import dataclasses
import textwrap

import numpy as np
import pytest

from mimic_jax import motions
from mimic_jax.assets import g1
from mimic_jax.motion import viz
from mimic_jax.motion.clip import MotionFileError, make_clip, save_clip
from mimic_jax.motion.sets import (MotionSetError, list_motion_sets, load_motion_set, resolve_motion_set,
                                   set_seconds)


def small_clip(n=100, phase=0.0, amplitude=0.3):
    """Default pose with swaying arms, standing still, 50 fps."""
    t = np.arange(n)[:, None] / 50.0
    joints = np.tile(g1.joint_table().default_pos, (n, 1))
    joints[:, 15:29] += amplitude * np.sin(2 * np.pi * t + phase)
    root_pos = np.tile([0.0, 0.0, 0.76], (n, 1))
    root_quat = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    return make_clip(root_pos, root_quat, joints, source="test sway")


@pytest.fixture
def motions_dir(tmp_path, monkeypatch):
    """A motions folder with two clips, a CSV and a set ``demo`` using frames, weights and a sampler."""
    clips = tmp_path / "motions" / "clips"
    save_clip(clips / "sway.npz", small_clip())
    save_clip(clips / "sway_fast.npz", small_clip(80, phase=1.0))
    c = small_clip(40)
    rows = np.concatenate([c.root_pos, c.root_quat[:, [1, 2, 3, 0]], c.joint_pos], axis=1)
    np.savetxt(clips / "sway.csv", rows, delimiter=",")
    sets = tmp_path / "motions" / "sets"
    sets.mkdir()
    (sets / "demo.yaml").write_text(textwrap.dedent("""\
        name: demo
        description: two sways
        clips:
          - path: ../clips/sway.npz
            frames: [10, 60]
            weight: 2.0
          - path: ../clips/sway_fast.npz
          - path: ../clips/sway.csv
            label: from_csv
        sampler:
          bin_size_seconds: 0.5
        """))
    monkeypatch.setenv("MIMIC_JAX_MOTIONS", str(tmp_path / "motions"))
    return tmp_path / "motions"


def write_set(motions_dir, name, text):
    """Writes ``sets/NAME.yaml``."""
    path = motions_dir / "sets" / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_yaml_set_resolves_and_loads(motions_dir):
    assert list_motion_sets() == ["demo"]
    spec = resolve_motion_set("demo")
    assert [e.label for e in spec.entries] == ["sway", "sway_fast", "from_csv"]
    assert [e.weight for e in spec.entries] == [2.0, 1.0, 1.0]
    assert spec.entries[0].frames == (10, 60) and dict(spec.sampler) == {"bin_size_seconds": 0.5}
    loaded = load_motion_set(spec)
    assert [(label, clip.num_frames, w) for label, clip, w in loaded] == [
        ("sway", 50, 2.0), ("sway_fast", 80, 1.0), ("from_csv", 66, 1.0)]  # 40 frames at 30 fps -> 66 at 50 fps
    np.testing.assert_allclose(loaded[0][1].joint_pos, small_clip().joint_pos[10:60], atol=1e-6)
    assert set_seconds(spec) == pytest.approx((50 + 80 + 66) / 50.0)
    assert resolve_motion_set(str(motions_dir / "sets" / "demo.yaml")) == spec


def test_comma_list(motions_dir):
    clips = motions_dir / "clips"
    spec = resolve_motion_set(f"{clips / 'sway.npz'},{clips / 'sway.csv'}")
    assert [e.label for e in spec.entries] == ["sway", "sway_2"] and spec.source is None
    assert [clip.num_frames for _, clip, _ in load_motion_set(spec)] == [100, 66]


def test_unknown_set_lists_available(motions_dir):
    with pytest.raises(MotionSetError, match=r"unknown motion set 'nope'.*available: demo"):
        resolve_motion_set("nope")


@pytest.mark.parametrize("text, fragment", [
    ("clips: [{path: ../clips/sway.npz}]\nspeed: 2\n", r"unknown keys \['speed'\]"),
    ("clips: [{path: ../clips/sway.npz, fps: 30}]\n", r"clips\[0\]: unknown keys \['fps'\]"),
    ("clips: [{path: ../clips/missing.npz}]\n", r"bad\.yaml: clips\[0\]: clip file .*missing\.npz does not exist"),
    ("clips: [{path: ../clips/sway.npz, weight: -1}]\n", "weight must be a positive number"),
    ("clips: [{path: ../clips/sway.npz, frames: [5]}]\n", "frames must be"),
    ("clips: [{path: ../clips/sway.npz}]\nsampler: {bins: 3}\n", r"unknown sampler keys \['bins'\]"),
    ("name: other\nclips: [{path: ../clips/sway.npz}]\n", "differs from the file name"),
    ("clips: []\n", "non-empty list"),
    ("clips: [{path: ../clips/sway.npz}\n", "not valid YAML"),
])
def test_bad_yaml_refused(motions_dir, text, fragment):
    write_set(motions_dir, "bad", text)
    with pytest.raises(MotionSetError, match=fragment) as info:
        resolve_motion_set("bad")
    assert "bad.yaml" in str(info.value) and "\n" not in str(info.value)


def test_frame_range_out_of_bounds_on_load(motions_dir):
    write_set(motions_dir, "long", "clips: [{path: ../clips/sway.npz, frames: [50, 500]}]\n")
    spec = resolve_motion_set("long")
    with pytest.raises(MotionFileError, match=r"long\.yaml: clip sway .* frame range \[50, 500\) is out of bounds"):
        load_motion_set(spec)


def test_cli_show_list_validate(motions_dir, capsys):
    assert motions.main(["list"]) == 0
    assert "demo" in capsys.readouterr().out
    assert motions.main(["show", "demo"]) == 0
    out = capsys.readouterr().out
    assert "sway_fast" in out and "from_csv" in out and "196" in out
    assert motions.main(["validate", "demo"]) == 0
    assert "3 of 3 clips OK" in capsys.readouterr().out
    bad = small_clip()
    joints = bad.joint_pos.copy()
    joints[5, 3] = 3.5
    save_clip(motions_dir / "clips" / "bad.npz", dataclasses.replace(bad, joint_pos=joints))
    write_set(motions_dir, "broken", "clips: [{path: ../clips/sway.npz}, {path: ../clips/bad.npz}]\n")
    assert motions.main(["validate", "broken"]) == 1
    out = capsys.readouterr().out
    assert "FAIL bad" in out and "left_knee_joint" in out
    assert motions.main(["show", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown motion set 'nope'") and "\n" not in err


def test_plot_writes_png(motions_dir, tmp_path):
    out = tmp_path / "plot.png"
    assert motions.main(["plot", str(motions_dir / "clips" / "sway.npz"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_standing_clip_is_balanced():
    still = viz.kinematic_pass(small_clip(10, amplitude=0.0))
    np.testing.assert_allclose(viz.zmp(still["com"], 50.0), still["com"][:, :2], atol=1e-6)
    kin = viz.kinematic_pass(small_clip(20))
    margins = viz.support_margins(kin)
    assert np.all(margins > 0.02) and np.all(kin["left"][:, :, 2].min(axis=1) < viz.CONTACT_HEIGHT)


def test_render_frame_and_gif(tmp_path):
    try:
        backend = viz.ensure_gl()
    except viz.RenderError as exc:
        pytest.skip(f"no OpenGL for offscreen rendering here: {exc}")
    clip = small_clip(20)
    png = viz.render_frame(clip, 5, tmp_path / "frame.png", width=64, height=48)
    gif = viz.render_clip(clip, tmp_path / "clip.gif", width=64, height=48, fps=10)
    assert png.read_bytes()[:4] == b"\x89PNG" and gif.read_bytes()[:6] == b"GIF89a", backend
    import imageio.v3 as iio

    image = iio.imread(png)
    assert image.shape == (48, 64, 3) and image.std() > 5  # not a blank frame


def test_no_gl_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(viz, "_GL_BACKEND", None)
    monkeypatch.setattr(viz, "_probe", lambda backend: f"{backend} failed")
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    with pytest.raises(viz.RenderError, match=r"MUJOCO_GL=egl: egl failed; MUJOCO_GL=osmesa: osmesa failed.*"
                                              r"apt-get install libegl1 libgl1-mesa-dri.*libosmesa6"):
        viz.ensure_gl()
