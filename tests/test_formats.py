"""Motion-file importers: round trips, joint-order detection, and one clear error per bad input."""

import warnings

import numpy as np
import pytest

from mimic_jax import motions
from mimic_jax.assets import g1
from mimic_jax.motion import formats
from mimic_jax.motion import kinematics as kin
from mimic_jax.motion.clip import MotionFileError, load_clip, make_clip, save_clip

FPS_IN = 30.0


@pytest.fixture(scope="module")
def model():
    """One model for the module (loading it costs about 30 ms)."""
    return g1.load_model()


def trajectory(n=45, fps=FPS_IN, amplitude=0.3, base=None):
    """Root walking forward and turning, joints = default pose + sinusoids, inside the joint limits."""
    table = g1.joint_table()
    t = np.arange(n)[:, None] / fps
    base = table.default_pos if base is None else base
    joints = base + amplitude * np.sin(2 * np.pi * 0.8 * t + np.arange(g1.NUM_JOINTS))
    joints = np.clip(joints, table.lower + 0.01, table.upper - 0.01)
    yaw = 0.4 * t[:, 0]
    root_pos = np.stack([0.5 * t[:, 0], 0.1 * t[:, 0], 0.76 + 0.01 * np.sin(5 * t[:, 0])], axis=1)
    root_quat = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
    return root_pos, root_quat, joints


def write_csv(path, root_pos, root_quat, joints, header=False):
    """A Unitree CSV: root xyz, quaternion (x, y, z, w), joints in our order."""
    rows = np.concatenate([root_pos, root_quat[:, [1, 2, 3, 0]], joints], axis=1)
    np.savetxt(path, rows, delimiter=",", header="x,y,z,qx,qy,qz,qw,joints" if header else "", comments="")
    return path


def write_beyondmimic(path, model, order, root_pos, root_quat, joints, fps=50.0, keep_bodies=None):
    """A BeyondMimic npz in ``order`` (bodies from our FK), optionally only the first ``keep_bodies``."""
    joint_names, body_names = formats.JOINT_ORDERS[order]
    body_pos, body_quat = kin.forward_kinematics(model, g1.qpos_from(root_pos, root_quat, joints))
    bodies = [g1.BODY_NAMES.index(n) for n in body_names][:keep_bodies]
    cols = [g1.JOINT_NAMES.index(n) for n in joint_names]
    np.savez(path, fps=np.array([fps]), joint_pos=joints[:, cols], joint_vel=np.zeros_like(joints),
             body_pos_w=body_pos[:, bodies], body_quat_w=body_quat[:, bodies],
             body_lin_vel_w=np.zeros_like(body_pos[:, bodies]), body_ang_vel_w=np.zeros_like(body_pos[:, bodies]))
    return path


def write_named(path, root_pos, root_quat, joints, names=g1.ISAAC_JOINT_NAMES, fps=50.0):
    """A named npz: full qpos with joint columns in the order of ``names`` (an unknown name gets column 3)."""
    cols = [g1.JOINT_NAMES.index(n) if n in g1.JOINT_NAMES else 3 for n in names[-g1.NUM_JOINTS:]]
    qpos = np.concatenate([root_pos, root_quat, joints[:, cols]], axis=1)
    np.savez(path, fps=fps, joint_names=np.array(names), body_names=np.array(g1.BODY_NAMES),
             joint_pos=qpos, joint_vel=np.zeros((len(qpos), 35)))
    return path


def test_csv_round_trip_resamples_to_50fps(tmp_path, model):
    root_pos, root_quat, joints = trajectory()
    clip = formats.import_csv(write_csv(tmp_path / "walk.csv", root_pos, root_quat, joints), model=model)
    want_pos, want_quat, want_joints = kin.resample(root_pos, root_quat, joints, FPS_IN, 50.0)
    assert clip.fps == 50.0 and clip.num_frames == len(want_pos) == 74
    np.testing.assert_allclose(clip.joint_pos, want_joints, atol=1e-9)
    np.testing.assert_allclose(clip.root_pos, want_pos, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(clip.root_quat * want_quat, axis=1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(clip.root_quat[0], root_quat[0], atol=1e-9)  # (x,y,z,w) read as such
    np.testing.assert_allclose(clip.body_pos_w[:, 0], clip.root_pos, atol=1e-9)


def test_csv_header_and_frame_range(tmp_path, model):
    root_pos, root_quat, joints = trajectory()
    path = write_csv(tmp_path / "walk.csv", root_pos, root_quat, joints, header=True)
    clip = formats.import_csv(path, input_fps=FPS_IN, frame_range=(6, 36), model=model)
    np.testing.assert_allclose(clip.joint_pos[0], joints[6], atol=1e-9)
    assert clip.num_frames == 49  # 29 intervals of 1/30 s -> 48 whole intervals of 1/50 s
    assert "frames 6:36" in clip.source


@pytest.mark.parametrize("order", ["isaac", "mujoco"])
@pytest.mark.parametrize("keep_bodies", [None, 26])
def test_beyondmimic_detects_joint_order(tmp_path, model, order, keep_bodies):
    root_pos, root_quat, joints = trajectory(fps=50.0)
    path = write_beyondmimic(tmp_path / f"bm_{order}.npz", model, order, root_pos, root_quat, joints,
                             keep_bodies=keep_bodies)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clip = formats.import_motion(path, model=model)
    assert f"({order} order)" in clip.source
    np.testing.assert_allclose(clip.joint_pos, joints, atol=1e-6)
    np.testing.assert_allclose(clip.root_pos, root_pos, atol=1e-6)


def test_beyondmimic_resamples_file_fps(tmp_path, model):
    root_pos, root_quat, joints = trajectory(fps=FPS_IN)
    path = write_beyondmimic(tmp_path / "bm.npz", model, "isaac", root_pos, root_quat, joints, fps=FPS_IN)
    clip = formats.import_beyondmimic_npz(path, model=model)
    np.testing.assert_allclose(clip.joint_pos, kin.resample(root_pos, root_quat, joints, FPS_IN, 50.0)[2], atol=1e-6)


def test_beyondmimic_garbage_bodies_refused(tmp_path, model):
    root_pos, root_quat, joints = trajectory(fps=50.0)
    path = write_beyondmimic(tmp_path / "garbage.npz", model, "isaac", root_pos, root_quat, joints)
    data = dict(np.load(path))
    data["body_pos_w"] = data["body_pos_w"] + np.random.default_rng(0).normal(0, 0.2, data["body_pos_w"].shape)
    data["body_pos_w"][:, 0] = root_pos
    np.savez(path, **data)
    with pytest.raises(MotionFileError, match=r"garbage\.npz: joints fit neither order.*isaac.*mujoco"):
        formats.import_motion(path, model=model)


def test_forced_wrong_joint_order_warns(tmp_path, model):
    # Small angles around 0.08 rad stay inside every joint's range in either order.
    root_pos, root_quat, joints = trajectory(fps=50.0, amplitude=0.08, base=np.full(g1.NUM_JOINTS, 0.08))
    path = write_beyondmimic(tmp_path / "bm.npz", model, "isaac", root_pos, root_quat, joints)
    with pytest.warns(formats.MotionFileWarning, match=r"bm\.npz: forced joint order 'mujoco' does not fit"):
        clip = formats.import_motion(path, joint_order="mujoco", model=model)
    assert "(mujoco order)" in clip.source
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        formats.import_motion(path, joint_order="isaac", model=model)


@pytest.mark.parametrize("names", [g1.ISAAC_JOINT_NAMES, ("floating_base_joint",) + g1.JOINT_NAMES])
def test_named_npz_maps_joints_by_name(tmp_path, model, names):
    root_pos, root_quat, joints = trajectory(fps=50.0)
    path = write_named(tmp_path / "named.npz", root_pos, root_quat, joints, names=names)
    clip = formats.import_motion(path, model=model)
    np.testing.assert_allclose(clip.joint_pos, joints, atol=1e-9)
    np.testing.assert_allclose(clip.root_quat, root_quat, atol=1e-9)


def test_our_clip_files_load_as_is(tmp_path, model):
    clip = make_clip(*trajectory(fps=50.0), model=model)
    path = save_clip(tmp_path / "clip.npz", clip)
    assert formats.detect_format(path) == "clip"
    loaded = formats.import_motion(path, frame_range=(10, 20))
    assert loaded.num_frames == 10
    np.testing.assert_allclose(loaded.joint_vel, clip.joint_vel[10:20], atol=1e-5)


def _bad_csv(tmp_path, name, edit):
    root_pos, root_quat, joints = trajectory()
    rows = np.concatenate([root_pos, root_quat[:, [1, 2, 3, 0]], joints], axis=1)
    rows = edit(rows)
    np.savetxt(tmp_path / name, rows, delimiter=",")
    return tmp_path / name


def _set(rows, index, value):
    rows = rows.copy()
    rows[index] = value
    return rows


BAD_CSV = {
    "columns.csv": (lambda r: r[:, :35], "columns, expected 36"),
    "nan.csv": (lambda r: _set(r, (3, 10), np.nan), "NaN"),
    "inf.csv": (lambda r: _set(r, (3, 1), np.inf), "NaN or inf"),
    "quat.csv": (lambda r: _set(r, (5, slice(3, 7)), [0, 0, 0, 2.0]), "unit norm"),
    "one_frame.csv": (lambda r: r[:1], "at least 2 frames"),
    "limits.csv": (lambda r: _set(r, (4, 7 + 3), 3.5), "left_knee_joint .* far outside"),
}


@pytest.mark.parametrize("name", sorted(BAD_CSV))
def test_bad_csv_refused_with_file_name(tmp_path, model, name):
    edit, fragment = BAD_CSV[name]
    path = _bad_csv(tmp_path, name, edit)
    with pytest.raises(MotionFileError, match=fragment) as info:
        formats.import_motion(path, model=model)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_other_bad_inputs(tmp_path, model):
    root_pos, root_quat, joints = trajectory(fps=50.0)
    text = tmp_path / "text.csv"
    text.write_text("1,2,3\n" * 3)
    words = _bad_csv(tmp_path, "words.csv", lambda r: r)
    lines = words.read_text().splitlines()
    words.write_text("\n".join(lines[:3] + [lines[3].replace("e", "x", 2)] + lines[4:]))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00not a zip file")
    renamed = list(g1.JOINT_NAMES)
    renamed[3] = "left_knee_pitch_joint"
    named = write_named(tmp_path / "named.npz", root_pos, root_quat, joints, names=tuple(renamed))
    shapes = write_beyondmimic(tmp_path / "shapes.npz", model, "isaac", root_pos, root_quat, joints)
    np.savez(shapes, **{**np.load(shapes), "body_quat_w": np.zeros((3, 30, 4))})
    strings = tmp_path / "strings.npz"
    np.savez(strings, fps=50.0, joint_pos=np.array([["a"] * 29] * 3), body_pos_w=np.zeros((3, 30, 3)),
             body_quat_w=np.zeros((3, 30, 4)))
    cases = [
        (shapes, "inconsistent shapes"), (strings, "joint_pos is not numeric"), (text, "columns"), (words, "not a number"), (garbage, "not a readable .npz"),
        (named, r"unknown \['left_knee_pitch_joint'\], missing \['left_knee_joint'\]"),
        (tmp_path / "missing.csv", "no such file"), (tmp_path / "motion.bvh", "unknown motion file type"),
    ]
    (tmp_path / "motion.bvh").write_text("HIERARCHY")
    for path, fragment in cases:
        with pytest.raises(MotionFileError, match=fragment) as info:
            formats.import_motion(path, model=model)
        assert path.name in str(info.value), str(info.value)
    good = write_csv(tmp_path / "good.csv", *trajectory())
    for frames in [(0, 100), (40, 41), (-1, 5)]:
        with pytest.raises(MotionFileError, match=r"good\.csv: frame range .* out of bounds"):
            formats.import_csv(good, frame_range=frames, model=model)


def test_cli_import_writes_clip_or_nothing(tmp_path, capsys):
    src = write_csv(tmp_path / "walk.csv", *trajectory())
    out = tmp_path / "out" / "walk.npz"
    assert motions.main(["import", str(src), "--out", str(out), "--fps", "30", "--frames", "0:30"]) == 0
    assert load_clip(out).num_frames == 49
    bad = _bad_csv(tmp_path, "bad.csv", lambda r: _set(r, (3, 10), np.nan))
    bad_out = tmp_path / "out2" / "bad.npz"
    assert motions.main(["import", str(bad), "--out", str(bad_out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "bad.csv" in err[-1]
    assert not bad_out.exists()
    assert not bad_out.parent.exists() or not any(bad_out.parent.iterdir())  # no temporary left either
    assert motions.main(["import", str(src), "--out", str(out), "--joint-order", "isaac"]) == 2
