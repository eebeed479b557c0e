"""Our clip file: a ``.npz`` at 50 fps with root pose, joints and every body's pose and velocity.

Fields (T frames, J = 29 joints in ``JOINT_NAMES`` order, B = 30 bodies in ``BODY_NAMES`` order):
``fps`` (scalar), ``root_pos`` [T,3], ``root_quat`` [T,4] (w, x, y, z), ``joint_pos`` [T,J],
``joint_vel`` [T,J], ``body_pos_w`` [T,B,3], ``body_quat_w`` [T,B,4], ``body_lin_vel_w`` [T,B,3],
``body_ang_vel_w`` [T,B,3], ``joint_names`` [J], ``body_names`` [B], ``source`` (text).
Bodies come from forward kinematics of our model; velocities from finite differences.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np

from mimic_jax.assets import g1
from mimic_jax.motion import kinematics as kin

CLIP_FPS = 50.0
JOINT_LIMIT_SLACK = 0.2  # rad beyond the joint range before an input is refused
MAX_CLIP_FRAMES = int(CLIP_FPS * 3600)  # one hour at 50 fps: a longer clip means a wrong input frame rate


class MotionFileError(ValueError):
    """A motion file that cannot be used; the message names the file and the problem on one line."""


@dataclasses.dataclass(frozen=True)
class Clip:
    fps: float
    root_pos: np.ndarray
    root_quat: np.ndarray
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    body_pos_w: np.ndarray
    body_quat_w: np.ndarray
    body_lin_vel_w: np.ndarray
    body_ang_vel_w: np.ndarray
    joint_names: tuple[str, ...] = g1.JOINT_NAMES
    body_names: tuple[str, ...] = g1.BODY_NAMES
    source: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.root_pos.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def check_trajectory(path, root_pos, root_quat, joint_pos, *, check_limits: bool = True) -> None:
    """Refuses, with one line naming ``path``, input that is not a usable G1 trajectory."""
    arrays = {"root position": root_pos, "root quaternion": root_quat, "joint positions": joint_pos}
    for what, x in arrays.items():
        if not np.all(np.isfinite(x)):
            bad = int(np.argwhere(~np.isfinite(x))[0][0])
            raise MotionFileError(f"{path}: {what} contain NaN or inf (first at frame {bad})")
    if not (root_pos.shape[0] == root_quat.shape[0] == joint_pos.shape[0]):
        raise MotionFileError(f"{path}: root position, root quaternion and joints have different frame counts "
                              f"({root_pos.shape[0]}, {root_quat.shape[0]}, {joint_pos.shape[0]})")
    if root_pos.shape[0] < 2:
        raise MotionFileError(f"{path}: needs at least 2 frames, got {root_pos.shape[0]}")
    if joint_pos.shape[1:] != (g1.NUM_JOINTS,):
        raise MotionFileError(f"{path}: expected {g1.NUM_JOINTS} joint angles per frame, got {joint_pos.shape[1:]}")
    norm = np.linalg.norm(root_quat, axis=-1)
    if np.any(np.abs(norm - 1.0) > 1e-2):
        bad = int(np.argmax(np.abs(norm - 1.0)))
        raise MotionFileError(f"{path}: root quaternion far from unit norm at frame {bad} (norm {norm[bad]:.4f})")
    if check_limits:
        table = g1.joint_table()
        over = np.maximum(table.lower - joint_pos, joint_pos - table.upper)
        if np.any(over > JOINT_LIMIT_SLACK):
            t, j = np.unravel_index(int(np.argmax(over)), over.shape)
            raise MotionFileError(
                f"{path}: joint {g1.JOINT_NAMES[j]} = {joint_pos[t, j]:.3f} rad at frame {t} is far outside "
                f"its range [{table.lower[j]:.3f}, {table.upper[j]:.3f}]")


def _check_output_frames(path, num_frames: int, fps: float) -> None:
    """Refuses an input frame rate that makes the 50 fps clip shorter than 2 frames or longer than an hour."""
    if not (np.isfinite(fps) and fps > 0):
        raise MotionFileError(f"{path}: input fps must be a positive number, got {fps}")
    seconds = (num_frames - 1) / fps
    out = int(np.floor(seconds * CLIP_FPS + 1e-9)) + 1 if seconds * CLIP_FPS < 2 * MAX_CLIP_FRAMES else None
    if out is not None and 2 <= out <= MAX_CLIP_FRAMES:
        return
    what = f"{out} frame" if out is not None else f"more than {MAX_CLIP_FRAMES} frames"
    raise MotionFileError(f"{path}: {num_frames} input frames at {fps:g} fps make {what} at {CLIP_FPS:g} fps "
                          f"(2 to {MAX_CLIP_FRAMES}, at most an hour); check the input fps")


def make_clip(root_pos, root_quat, joint_pos, *, fps: float = CLIP_FPS, source: str = "", model=None,
              path: str | os.PathLike = "<array>") -> Clip:
    """Builds a clip at 50 fps from root pose and joints (resampled if ``fps`` differs) by FK."""
    root_pos, root_quat, joint_pos = (np.asarray(x, dtype=np.float64) for x in (root_pos, root_quat, joint_pos))
    check_trajectory(path, root_pos, root_quat, joint_pos)
    _check_output_frames(path, root_pos.shape[0], fps)
    root_quat = kin.quat_normalize(root_quat)
    if abs(fps - CLIP_FPS) > 1e-9:
        root_pos, root_quat, joint_pos = kin.resample(root_pos, root_quat, joint_pos, fps, CLIP_FPS)
    # Keep the quaternion sign continuous so that finite differences are meaningful.
    sign = np.cumprod(np.where(np.sum(root_quat[1:] * root_quat[:-1], axis=-1) < 0, -1.0, 1.0))
    root_quat = root_quat * np.concatenate([[1.0], sign])[:, None]
    model = model if model is not None else g1.load_model()
    dt = 1.0 / CLIP_FPS
    body_pos, body_quat = kin.forward_kinematics(model, g1.qpos_from(root_pos, root_quat, joint_pos))
    return Clip(
        fps=CLIP_FPS, root_pos=root_pos, root_quat=root_quat, joint_pos=joint_pos,
        joint_vel=kin.finite_difference(joint_pos, dt), body_pos_w=body_pos, body_quat_w=body_quat,
        body_lin_vel_w=kin.finite_difference(body_pos, dt), body_ang_vel_w=kin.angular_velocity(body_quat, dt),
        source=source)


def _atomic_savez(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_clip(path: str | os.PathLike, clip: Clip, *, dtype=np.float32) -> Path:
    """Writes a clip atomically (temporary file, then rename). Arrays are stored as ``dtype``."""
    path = Path(path)
    arrays = {f.name: getattr(clip, f.name) for f in dataclasses.fields(clip)}
    for key, value in arrays.items():
        if isinstance(value, np.ndarray):
            arrays[key] = value.astype(dtype)
    arrays["fps"] = np.asarray(clip.fps)
    arrays["joint_names"] = np.asarray(clip.joint_names)
    arrays["body_names"] = np.asarray(clip.body_names)
    arrays["source"] = np.asarray(clip.source)
    _atomic_savez(path, arrays)
    return path


REQUIRED = ("fps", "root_pos", "root_quat", "joint_pos", "joint_vel", "body_pos_w", "body_quat_w",
            "body_lin_vel_w", "body_ang_vel_w", "joint_names", "body_names")


def is_clip_file(data) -> bool:
    return all(k in data for k in REQUIRED)


def load_clip(path: str | os.PathLike) -> Clip:
    """Reads one of our clip files; refuses anything else with one clear line."""
    path = Path(path)
    if not path.exists():
        raise MotionFileError(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a corrupt archive
        raise MotionFileError(f"{path}: not a readable .npz file ({exc.__class__.__name__})") from None
    with data:
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise MotionFileError(f"{path}: not a mimic_jax clip (missing {', '.join(missing)}); "
                                  "import it with `python -m mimic_jax.motions import`")
        joint_names = tuple(str(n) for n in data["joint_names"])
        body_names = tuple(str(n) for n in data["body_names"])
        if joint_names != g1.JOINT_NAMES or body_names != g1.BODY_NAMES:
            raise MotionFileError(f"{path}: joint or body names differ from our G1 model; re-import the source")
        fps = float(data["fps"])
        if abs(fps - CLIP_FPS) > 1e-6:
            raise MotionFileError(f"{path}: clip fps is {fps}, expected {CLIP_FPS}")
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in REQUIRED[1:9]}
        source = str(data["source"]) if "source" in data else ""
    check_trajectory(path, arrays["root_pos"], arrays["root_quat"], arrays["joint_pos"], check_limits=False)
    return Clip(fps=fps, joint_names=joint_names, body_names=body_names, source=source, **arrays)
