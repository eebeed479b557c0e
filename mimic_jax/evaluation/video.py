"""Evaluation videos: the robot as simulated, the reference as a translucent ghost, one clip after another.

Both are drawn from one model and two ``MjData``: the robot's scene comes from ``Renderer.update_scene``,
then ``mjv_addGeoms`` appends the reference pose's geoms, recoloured translucent blue. The camera follows
the robot's pelvis; the clip name, time and outcome are written into each image with Pillow. Headless
(``motion.viz.ensure_gl``); H.264 mp4 through imageio-ffmpeg, or a GIF when the name ends in ``.gif`` or
ffmpeg is missing (the returned path says which).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

from mimic_jax.assets import g1
from mimic_jax.evaluation.metrics import Episodes
from mimic_jax.motion.library import ROOT_INDEX, MotionLibrary
from mimic_jax.motion.viz import RenderError, ensure_gl, write_animation

GHOST_RGBA = (0.35, 0.6, 1.0, 0.35)


@dataclasses.dataclass(frozen=True)
class Segment:
    """One clip of a video: robot and reference qpos per 50 fps frame, and what to write on it."""

    name: str
    robot_qpos: np.ndarray  # [T, 36]
    ref_qpos: np.ndarray  # [T, 36]
    outcome: str  # e.g. "success" or "terminated: anchor_height"


def reference_qpos(lib: MotionLibrary, motion_id: int, frames: np.ndarray) -> np.ndarray:
    """qpos [len(frames), 36] of the reference (pelvis pose and joints) at clip frames ``frames``."""
    idx = int(lib.clip_start[motion_id]) + np.clip(frames, 0, int(lib.clip_length[motion_id]) - 1)
    pos = np.asarray(lib.body_pos)[idx, ROOT_INDEX]
    quat = np.asarray(lib.body_quat)[idx, ROOT_INDEX]
    return g1.qpos_from(pos, quat, np.asarray(lib.joint_pos)[idx])


def segments(episodes: Episodes, lib: MotionLibrary, names=None) -> list[Segment]:
    """The first episode of every clip (in library order) as video segments."""
    out = []
    for motion_id in range(lib.num_motions):
        hits = np.flatnonzero(episodes.motion_id == motion_id)
        if hits.size == 0 or (names is not None and lib.names[motion_id] not in names):
            continue
        n, length = int(hits[0]), int(episodes.length[hits[0]])
        robot = np.concatenate([episodes.qpos0[n][None], episodes.qpos[:length, n]])
        frames = episodes.start_frame[n] + np.arange(length + 1)
        outcome = "success" if episodes.success[n] else f"terminated: {episodes.termination[n]}"
        out.append(Segment(lib.names[motion_id], robot, reference_qpos(lib, motion_id, frames), outcome))
    return out


def _caption(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Writes ``lines`` at the top left of an RGB image (white text on a dark band)."""
    from PIL import Image, ImageDraw, ImageFont

    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil, "RGBA")
    try:
        font = ImageFont.load_default(size=max(12, image.shape[0] // 24))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    height = int(font.size * 1.3) if hasattr(font, "size") else 14
    draw.rectangle([0, 0, image.shape[1], height * len(lines) + 6], fill=(0, 0, 0, 140))
    for i, line in enumerate(lines):
        draw.text((6, 3 + i * height), line, fill=(255, 255, 255, 255), font=font)
    return np.asarray(pil)


class _Scene:
    """A renderer with the robot's data and the ghost's data of one model."""

    def __init__(self, width: int, height: int):
        ensure_gl()
        import mujoco

        self.mujoco = mujoco
        self.model = g1.load_model()
        self.model.vis.global_.offwidth = max(int(self.model.vis.global_.offwidth), width)
        self.model.vis.global_.offheight = max(int(self.model.vis.global_.offheight), height)
        self.robot, self.ghost = mujoco.MjData(self.model), mujoco.MjData(self.model)
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.camera.distance, self.camera.azimuth, self.camera.elevation = 3.0, 140.0, -15.0
        self.option, self.pert = mujoco.MjvOption(), mujoco.MjvPerturb()
        self.renderer = mujoco.Renderer(self.model, height, width)

    def image(self, robot_qpos: np.ndarray, ref_qpos: np.ndarray) -> np.ndarray:
        """RGB image [H, W, 3] of the robot at ``robot_qpos`` and the ghost at ``ref_qpos``."""
        mj = self.mujoco
        self.robot.qpos[:], self.ghost.qpos[:] = robot_qpos, ref_qpos
        mj.mj_kinematics(self.model, self.robot)
        mj.mj_kinematics(self.model, self.ghost)
        self.camera.lookat[:] = (robot_qpos[0], robot_qpos[1], 0.7)
        self.renderer.update_scene(self.robot, self.camera, self.option)
        scene = self.renderer.scene
        first = scene.ngeom
        mj.mjv_addGeoms(self.model, self.ghost, self.option, self.pert, int(mj.mjtCatBit.mjCAT_DYNAMIC), scene)
        for i in range(first, scene.ngeom):
            scene.geoms[i].rgba[:] = GHOST_RGBA
        return self.renderer.render().copy()

    def close(self) -> None:
        """Frees the OpenGL context (before interpreter shutdown tears EGL down)."""
        self.renderer.close()


def _images(segs: list[Segment], width: int, height: int, fps: int, hold_s: float = 0.6):
    """Yields the video's RGB images: each segment at ``fps`` (from 50 fps), its last image held."""
    scene = _Scene(width, height)
    try:
        for seg in segs:
            step = max(1, int(round(50.0 / fps)))
            frames = list(range(0, len(seg.robot_qpos), step))
            for k, t in enumerate(frames):
                done = k == len(frames) - 1
                lines = [f"{seg.name}   t = {t / 50.0:5.2f} s", seg.outcome if done else "ghost: reference"]
                image = _caption(scene.image(seg.robot_qpos[t], seg.ref_qpos[t]), lines)
                for _ in range(int(round(hold_s * fps)) if done else 1):
                    yield image
    finally:
        scene.close()


def _ffmpeg_available() -> bool:
    try:
        import imageio_ffmpeg

        return Path(imageio_ffmpeg.get_ffmpeg_exe()).exists()
    except Exception:  # no package or no binary
        return False


def write_video(segs: list[Segment], out_path, *, width: int = 640, height: int = 360, fps: int = 25) -> Path:
    """Renders ``segs`` into ``out_path`` (mp4, or GIF as the module doc says); returns the written path."""
    out = Path(out_path)
    if not segs:
        raise RenderError("nothing to render: no episodes")
    if width % 2 or height % 2 or width < 16 or height < 16 or not 0 < fps <= 50:
        raise RenderError(f"video size must be even and >= 16 and fps in (0, 50], got {width}x{height} at {fps}")
    if out.suffix.lower() != ".gif" and not _ffmpeg_available():
        warnings.warn(f"ffmpeg is not available: writing a GIF instead of {out.name}", stacklevel=2)
        out = out.with_suffix(".gif")
    return write_animation(out, _images(segs, width, height, fps), fps)
