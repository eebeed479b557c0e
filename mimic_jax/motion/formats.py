"""Importers for motion files seen in the wild; each returns one of our 50 fps :class:`Clip`.

Only the root pose and the joint angles of an input are used: every body pose and velocity is recomputed
by forward kinematics of our model (:func:`mimic_jax.motion.clip.make_clip`). Every unusable input raises
a :class:`MotionFileError` whose one-line message names the file and the problem.

Formats:
- ``import_csv``: LAFAN1-retargeted G1 CSV (Unitree): 36 columns, root xyz, root quaternion (x, y, z, w),
  29 joints in Unitree (= our MuJoCo depth-first) order, 30 fps by default.
- ``import_beyondmimic_npz``: BeyondMimic npz (fps, joint_pos, body_pos_w, body_quat_w, ...), no names; the
  joint order (Isaac breadth-first or MuJoCo depth-first) is detected by forward kinematics.
- ``import_named_npz``: npz with ``joint_names`` and full qpos [T, 36] in ``joint_pos``.
- ``import_motion``: dispatch on extension and content; our own clip files are loaded as they are.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from pathlib import Path

import numpy as np

from mimic_jax.assets import g1
from mimic_jax.motion import kinematics as kin
from mimic_jax.motion.clip import Clip, MotionFileError, check_trajectory, is_clip_file, load_clip, make_clip

CSV_COLUMNS = 7 + g1.NUM_JOINTS
ORDER_POS_TOL = 0.02  # m: max body position error for a joint order to fit the stored bodies
ORDER_ROT_TOL = 0.1  # rad: max body orientation error (catches joints that move no body origin)
ORDER_CHECK_FRAMES = 8  # frames, evenly spread, compared by forward kinematics
JOINT_ORDERS = {"isaac": (g1.ISAAC_JOINT_NAMES, g1.ISAAC_BODY_NAMES),
                "mujoco": (g1.JOINT_NAMES, g1.BODY_NAMES)}
FORMATS = ("auto", "clip", "csv", "beyondmimic", "named")


class MotionFileWarning(UserWarning):
    """An input that was imported but looks suspicious (e.g. a forced joint order that does not fit)."""


def check_frame_range(path, frame_range, num_frames: int, unit: str = "input frames") -> tuple[int, int]:
    """``(start, end)`` of a ``[start, end)`` range (``None`` for either end means the clip's end)."""
    if frame_range is None:
        return 0, num_frames
    start, end = frame_range
    start = 0 if start is None else int(start)
    end = num_frames if end is None else int(end)
    if not 0 <= start < end <= num_frames or end - start < 2:
        raise MotionFileError(f"{path}: frame range [{start}, {end}) is out of bounds or shorter than 2 frames "
                              f"(the file has {num_frames} {unit})")
    return start, end


def slice_clip(clip: Clip, frame_range, path="<clip>") -> Clip:
    """The frames ``[start, end)`` (50 fps) of a clip; velocities keep their values from the full clip."""
    start, end = check_frame_range(path, frame_range, clip.num_frames, unit="frames at 50 fps")
    if (start, end) == (0, clip.num_frames):
        return clip
    cut = {f.name: getattr(clip, f.name)[start:end] for f in dataclasses.fields(clip)
           if isinstance(getattr(clip, f.name), np.ndarray)}
    return dataclasses.replace(clip, source=f"{clip.source} [frames {start}:{end}]".strip(), **cut)


def _range_text(start: int, end: int, num_frames: int) -> str:
    return "" if (start, end) == (0, num_frames) else f" frames {start}:{end}"


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise MotionFileError(f"{path}: no such file")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise MotionFileError(f"{path}: unreadable ({exc.__class__.__name__})") from None


def _parse_csv(path: Path) -> np.ndarray:
    text = _read_text(path)
    if "\x00" in text:
        raise MotionFileError(f"{path}: holds NUL bytes: binary data, not a text CSV")
    lines = [(n + 1, line) for n, line in enumerate(text.splitlines()) if line.strip()]
    if not lines:
        raise MotionFileError(f"{path}: no data rows")
    sep = "," if "," in lines[-1][1] else None
    try:
        [float(x) for x in lines[0][1].split(sep)]
    except ValueError:
        lines = lines[1:]  # one header line of text is tolerated
    if not lines:
        raise MotionFileError(f"{path}: no data rows (only a header line)")
    for number, line in lines:
        if len(line.split(sep)) != CSV_COLUMNS:
            raise MotionFileError(f"{path}: line {number} has {len(line.split(sep))} columns, expected "
                                  f"{CSV_COLUMNS} (root xyz, root quaternion xyzw, {g1.NUM_JOINTS} joints)")
    try:
        return np.loadtxt(io.StringIO("\n".join(line for _, line in lines)), delimiter=sep, ndmin=2)
    except ValueError:
        for number, line in lines:
            try:
                [float(x) for x in line.split(sep)]
            except ValueError:
                raise MotionFileError(f"{path}: line {number} holds text that is not a number") from None
        raise MotionFileError(f"{path}: not a numeric CSV") from None


def import_csv(path, *, input_fps: float = 30.0, frame_range=None, model=None) -> Clip:
    """LAFAN1-retargeted G1 CSV -> clip. ``frame_range`` is ``[start, end)`` in input frames."""
    path = Path(path)
    if not np.isfinite(input_fps) or input_fps <= 0:
        raise MotionFileError(f"{path}: input fps must be positive, got {input_fps}")
    data = _parse_csv(path)
    start, end = check_frame_range(path, frame_range, data.shape[0])
    source = f"unitree csv {path.name}{_range_text(start, end, data.shape[0])} @ {input_fps:g} fps"
    data = data[start:end]
    root_quat = data[:, [6, 3, 4, 5]]  # (x, y, z, w) -> (w, x, y, z)
    return make_clip(data[:, :3], root_quat, data[:, 7:], fps=input_fps, source=source, model=model, path=path)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise MotionFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except Exception as exc:  # numpy raises several types for a corrupt or pickled archive
        raise MotionFileError(f"{path}: not a readable .npz file ({exc.__class__.__name__})") from None


def _require(path: Path, data: dict, keys) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise MotionFileError(f"{path}: missing {', '.join(missing)} (has {', '.join(sorted(data)) or 'nothing'})")


def _numeric(path: Path, data: dict, key: str) -> np.ndarray:
    """``data[key]`` as float64, or a clear error for text or object arrays."""
    value = np.asarray(data[key])
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        raise MotionFileError(f"{path}: {key} is not numeric ({value.dtype})")
    return value.astype(np.float64)


def _fps_of(path: Path, data: dict) -> float:
    fps = _numeric(path, data, "fps").reshape(-1)
    if fps.size != 1 or not np.isfinite(fps[0]) or fps[0] <= 0:
        raise MotionFileError(f"{path}: fps must be one positive number, got {data['fps']!r}")
    return float(fps[0])


def _reorder(joint_pos: np.ndarray, names) -> np.ndarray:
    """Joints stored in the order ``names`` -> our order."""
    return joint_pos[:, [list(names).index(n) for n in g1.JOINT_NAMES]]


def _quat_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dot = np.abs(np.sum(kin.quat_normalize(a) * kin.quat_normalize(b), axis=-1))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


def _order_errors(model, joints, root_pos, root_quat, body_pos, body_quat, body_names):
    """(position error m, orientation error rad, stored-body -> FK-body index) of one joint order."""
    fk_pos, fk_quat = kin.forward_kinematics(model, g1.qpos_from(root_pos, root_quat, joints))
    if body_pos.shape[1] == len(g1.BODY_NAMES):
        match = np.array([g1.BODY_NAMES.index(n) for n in body_names])
    else:  # bodies added or omitted: match each stored body to its nearest FK body (pose distance)
        dist = np.linalg.norm(body_pos[:, :, None] - fk_pos[:, None], axis=-1)
        angle = _quat_angle(body_quat[:, :, None], fk_quat[:, None])
        match = np.argmin((dist + angle * ORDER_POS_TOL / ORDER_ROT_TOL).mean(axis=0), axis=1)
    pos_err = np.linalg.norm(body_pos - fk_pos[:, match], axis=-1).max(axis=0)
    rot_err = _quat_angle(body_quat, fk_quat[:, match]).max(axis=0)
    return pos_err, rot_err


def _fit_orders(model, joint_pos, body_pos, body_quat) -> dict[str, tuple[float, float]]:
    """Per candidate order: max position and orientation errors of FK against the stored bodies."""
    frames = np.unique(np.linspace(0, joint_pos.shape[0] - 1, ORDER_CHECK_FRAMES).astype(int))
    bp, bq = body_pos[frames], body_quat[frames]
    per_body = {name: _order_errors(model, _reorder(joint_pos[frames], joints), bp[:, 0], bq[:, 0], bp, bq, bodies)
                for name, (joints, bodies) in JOINT_ORDERS.items()}
    if body_pos.shape[1] != len(g1.BODY_NAMES):
        # Bodies our model lacks fit under no order: leave them out, but keep at least half of ours.
        fits = np.stack([(p < ORDER_POS_TOL) & (r < ORDER_ROT_TOL) for p, r in per_body.values()])
        keep = fits.any(axis=0)
        if keep.sum() < len(g1.BODY_NAMES) // 2:
            keep[:] = True
        per_body = {k: (p[keep], r[keep]) for k, (p, r) in per_body.items()}
    return {k: (float(p.max()), float(r.max())) for k, (p, r) in per_body.items()}


def _choose_order(path, errors: dict, joint_order: str) -> str:
    text = "; ".join(f"{k} order: max body error {p * 100:.1f} cm, {np.degrees(r):.1f} deg"
                     for k, (p, r) in errors.items())
    fits = [k for k, (p, r) in errors.items() if p < ORDER_POS_TOL and r < ORDER_ROT_TOL]
    if joint_order != "auto":
        if joint_order not in fits:
            warnings.warn(f"{path}: forced joint order '{joint_order}' does not fit the stored bodies "
                          f"(tolerance {ORDER_POS_TOL * 100:g} cm, {np.degrees(ORDER_ROT_TOL):.0f} deg): {text}",
                          MotionFileWarning, stacklevel=3)
        return joint_order
    if not fits:
        raise MotionFileError(f"{path}: joints fit neither order (tolerance {ORDER_POS_TOL * 100:g} cm, "
                              f"{np.degrees(ORDER_ROT_TOL):.0f} deg): {text}")
    return min(fits, key=lambda k: errors[k][0] + errors[k][1] * ORDER_POS_TOL / ORDER_ROT_TOL)


def _check_body_quats(path: Path, body_quat: np.ndarray) -> None:
    """Refuses zero-length body quaternions (they have no orientation to compare)."""
    zero = np.linalg.norm(body_quat, axis=-1) < 1e-6
    if np.any(zero):
        t, b = np.argwhere(zero)[0]
        raise MotionFileError(f"{path}: body_quat_w holds {int(zero.sum())} all-zero quaternions (first at frame "
                              f"{t}, body {b}); every body orientation must be a unit quaternion")


def import_beyondmimic_npz(path, *, joint_order: str = "auto", frame_range=None, model=None) -> Clip:
    """BeyondMimic npz -> clip. ``joint_order``: 'auto' (detected by FK), 'isaac' or 'mujoco'."""
    path = Path(path)
    if joint_order not in ("auto", *JOINT_ORDERS):
        raise MotionFileError(f"{path}: unknown joint order '{joint_order}' (auto, isaac or mujoco)")
    data = _load_npz(path)
    _require(path, data, ("fps", "joint_pos", "body_pos_w", "body_quat_w"))
    fps = _fps_of(path, data)
    joint_pos, body_pos, body_quat = (_numeric(path, data, k) for k in ("joint_pos", "body_pos_w", "body_quat_w"))
    t = joint_pos.shape[0] if joint_pos.ndim else -1
    if joint_pos.ndim != 2 or body_pos.ndim != 3 or body_pos.shape[::2] != (t, 3) or \
            body_quat.shape != body_pos.shape[:2] + (4,):
        raise MotionFileError(f"{path}: inconsistent shapes: joint_pos {joint_pos.shape}, body_pos_w "
                              f"{body_pos.shape}, body_quat_w {body_quat.shape} (expected [T,29], [T,B,3], [T,B,4])")
    start, end = check_frame_range(path, frame_range, joint_pos.shape[0])
    span = _range_text(start, end, joint_pos.shape[0])
    joint_pos, body_pos, body_quat = joint_pos[start:end], body_pos[start:end], body_quat[start:end]
    check_trajectory(path, body_pos[:, 0], body_quat[:, 0], joint_pos, check_limits=False)
    for what, x in (("body_pos_w", body_pos), ("body_quat_w", body_quat)):
        if not np.all(np.isfinite(x)):
            raise MotionFileError(f"{path}: {what} contains NaN or inf")
    _check_body_quats(path, body_quat)
    model = model if model is not None else g1.load_model()
    order = _choose_order(path, _fit_orders(model, joint_pos, body_pos, body_quat), joint_order)
    joints = _reorder(joint_pos, JOINT_ORDERS[order][0])
    source = f"beyondmimic npz {path.name}{span} ({order} order) @ {fps:g} fps"
    return make_clip(body_pos[:, 0], body_quat[:, 0], joints, fps=fps, source=source, model=model, path=path)


def _named_columns(path: Path, names: list[str]) -> list[int]:
    """Column (within the 29 joint columns) of each of our joints, by name."""
    if len(names) == g1.NUM_JOINTS + 1 and names[0] not in g1.JOINT_NAMES:
        names = names[1:]  # the root free joint listed first
    canon = [n if n in g1.JOINT_NAMES or f"{n}_joint" not in g1.JOINT_NAMES else f"{n}_joint" for n in names]
    unknown = [n for n, c in zip(names, canon) if c not in g1.JOINT_NAMES]
    missing = [n for n in g1.JOINT_NAMES if n not in canon]
    if unknown or missing or len(canon) != g1.NUM_JOINTS:
        raise MotionFileError(f"{path}: joint names do not match the G1: unknown {unknown or 'none'}, "
                              f"missing {missing or 'none'}, {len(names)} names for {g1.NUM_JOINTS} joints")
    return [canon.index(n) for n in g1.JOINT_NAMES]


def import_named_npz(path, *, frame_range=None, model=None) -> Clip:
    """npz with ``joint_names`` and full qpos [T, 36] (root xyz, quat wxyz, joints) in ``joint_pos``."""
    path = Path(path)
    data = _load_npz(path)
    _require(path, data, ("fps", "joint_names", "joint_pos"))
    fps = _fps_of(path, data)
    qpos = _numeric(path, data, "joint_pos")
    if qpos.ndim != 2 or qpos.shape[1] != 7 + g1.NUM_JOINTS:
        raise MotionFileError(f"{path}: joint_pos has shape {qpos.shape}, expected full qpos [T, {7 + g1.NUM_JOINTS}]")
    columns = _named_columns(path, [str(n) for n in np.asarray(data["joint_names"]).reshape(-1)])
    start, end = check_frame_range(path, frame_range, qpos.shape[0])
    source = f"named npz {path.name}{_range_text(start, end, qpos.shape[0])} @ {fps:g} fps"
    qpos = qpos[start:end]
    return make_clip(qpos[:, :3], qpos[:, 3:7], qpos[:, 7:][:, columns], fps=fps, source=source, model=model,
                     path=path)


def detect_format(path) -> str:
    """'clip', 'csv', 'beyondmimic' or 'named' from the extension and, for npz, the stored keys."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix != ".npz":
        raise MotionFileError(f"{path}: unknown motion file type '{suffix}' (expected .csv or .npz)")
    data = _load_npz(path)
    if is_clip_file(data):
        return "clip"
    if "joint_names" in data:
        return "named"
    if "body_pos_w" in data:
        return "beyondmimic"
    raise MotionFileError(f"{path}: unrecognised npz (keys: {', '.join(sorted(data)) or 'none'}); expected a "
                          "mimic_jax clip, a BeyondMimic npz or an npz with joint_names")


def import_motion(path: str | os.PathLike, *, format: str = "auto", input_fps: float | None = None,
                  joint_order: str = "auto", frame_range=None, model=None) -> Clip:
    """Any supported motion file -> clip. Our own clip files are loaded as they are (``frame_range``
    then counts 50 fps frames); ``input_fps`` applies to CSV only, ``joint_order`` to BeyondMimic only."""
    path = Path(path)
    if format not in FORMATS:
        raise MotionFileError(f"{path}: unknown format '{format}' (one of {', '.join(FORMATS)})")
    kind = detect_format(path) if format == "auto" else format
    if input_fps is not None and kind != "csv":
        raise MotionFileError(f"{path}: an input fps applies to CSV files only ({kind} files store their fps)")
    if joint_order != "auto" and kind != "beyondmimic":
        raise MotionFileError(f"{path}: a joint order applies to BeyondMimic npz files only (this is {kind})")
    if kind == "csv":
        return import_csv(path, input_fps=30.0 if input_fps is None else input_fps, frame_range=frame_range,
                          model=model)
    if kind == "beyondmimic":
        return import_beyondmimic_npz(path, joint_order=joint_order, frame_range=frame_range, model=model)
    if kind == "named":
        return import_named_npz(path, frame_range=frame_range, model=model)
    return slice_clip(load_clip(path), frame_range, path)
