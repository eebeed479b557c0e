"""Control videos: the robot in MuJoCo with the task drawn into the scene (offscreen, headless).

Each image is the robot at one control step, plus user geoms appended to the renderer's ``mjvScene``: the
goal (a green disc with a pole), the obstacles (grey cylinders and boxes), the path walked so far (blue dots),
the sampler's planned root path of that step (orange), a kick (red arrow from the pelvis) and, for
inpainting, the next keyframe's pose as a translucent ghost. Captions are written with the evaluation
videos' captioner; files are written with ``motion.viz.write_animation`` (mp4, or GIF).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from mimic_jax import states as st
from mimic_jax.assets import g1
from mimic_jax.control import scenes
from mimic_jax.evaluation.video import GHOST_RGBA, _caption, _ffmpeg_available
from mimic_jax.motion.viz import RenderError, ensure_gl, write_animation

GOAL_RGBA = (0.2, 0.85, 0.3, 0.9)
OBSTACLE_RGBA = (0.55, 0.55, 0.6, 1.0)
PATH_RGBA = (0.25, 0.55, 1.0, 0.9)
PLAN_RGBA = (1.0, 0.55, 0.1, 0.95)
KICK_RGBA = (0.95, 0.15, 0.1, 1.0)
MARKER_GEOMS = 3000  # room in the scene for everything above


@dataclasses.dataclass(frozen=True)
class TaskVideo:
    """One episode to draw (numpy, world frame, 50 Hz)."""

    title: str
    qpos: np.ndarray  # [T, 36] robot
    goal: np.ndarray | None = None  # [2]
    obstacles: scenes.Obstacles | None = None  # one scene (no batch dims)
    plans: np.ndarray | None = None  # [T, H+1, 3] planned root positions at each step
    kicks: np.ndarray | None = None  # [T, 3] root-velocity change applied at each step (0: none)
    ghost_qpos: np.ndarray | None = None  # [T, 36] pose to show as a ghost (e.g. the next keyframe)
    captions: tuple[str, ...] = ()  # per step, second caption line


def qpos_of(world: st.WorldStates) -> np.ndarray:
    """qpos [..., 36] from world states (pelvis pose and joints)."""
    return g1.qpos_from(np.asarray(world.body_pos_w)[..., st.ROOT, :], np.asarray(world.body_quat_w)[..., st.ROOT, :],
                        np.asarray(world.joint_pos))


class _Drawer:
    """A renderer of one model with the robot's and a ghost's data, and a scene with room for markers."""

    def __init__(self, width: int, height: int):
        ensure_gl()
        import mujoco

        self.mj = mujoco
        self.model = g1.load_model()
        self.model.vis.global_.offwidth = max(int(self.model.vis.global_.offwidth), width)
        self.model.vis.global_.offheight = max(int(self.model.vis.global_.offheight), height)
        self.robot, self.ghost = mujoco.MjData(self.model), mujoco.MjData(self.model)
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.option, self.pert = mujoco.MjvOption(), mujoco.MjvPerturb()
        self.renderer = mujoco.Renderer(self.model, height, width, max_geom=self.model.ngeom * 2 + MARKER_GEOMS)

    def _geom(self, kind, size, pos, rgba, mat=None):
        scene = self.renderer.scene
        if scene.ngeom >= scene.maxgeom:
            return None
        geom = scene.geoms[scene.ngeom]
        mat = np.eye(3).ravel() if mat is None else np.asarray(mat, np.float64).ravel()
        self.mj.mjv_initGeom(geom, int(kind), np.asarray(size, np.float64), np.asarray(pos, np.float64), mat,
                             np.asarray(rgba, np.float32))
        scene.ngeom += 1
        return geom

    def _line(self, a, b, width, rgba, kind=None):
        geom = self._geom(self.mj.mjtGeom.mjGEOM_CAPSULE, np.zeros(3), np.zeros(3), rgba)
        if geom is not None:
            kind = self.mj.mjtGeom.mjGEOM_CAPSULE if kind is None else kind
            self.mj.mjv_connector(geom, int(kind), width, np.asarray(a, np.float64), np.asarray(b, np.float64))

    def obstacles(self, obs: scenes.Obstacles) -> None:
        g = self.mj.mjtGeom
        for i in np.flatnonzero(np.asarray(obs.cylinder_active)):
            h = float(obs.cylinder_height[i])
            pos = (*np.asarray(obs.cylinder_center[i]), h / 2)
            self._geom(g.mjGEOM_CYLINDER, (float(obs.cylinder_radius[i]), h / 2, 0), pos, OBSTACLE_RGBA)
        for i in np.flatnonzero(np.asarray(obs.box_active)):
            c, s = np.cos(float(obs.box_yaw[i])), np.sin(float(obs.box_yaw[i]))
            mat = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
            self._geom(g.mjGEOM_BOX, obs.box_half_size[i], obs.box_center[i], OBSTACLE_RGBA, mat)

    def goal(self, xy) -> None:
        g = self.mj.mjtGeom
        self._geom(g.mjGEOM_CYLINDER, (0.3, 0.005, 0), (xy[0], xy[1], 0.005), GOAL_RGBA)
        self._geom(g.mjGEOM_CYLINDER, (0.02, 0.5, 0), (xy[0], xy[1], 0.5), GOAL_RGBA)

    def path(self, points, rgba, radius) -> None:
        for p in points:
            self._geom(self.mj.mjtGeom.mjGEOM_SPHERE, (radius, 0, 0), p, rgba)

    def ghost_pose(self, qpos) -> None:
        self.ghost.qpos[:] = qpos
        self.mj.mj_kinematics(self.model, self.ghost)
        scene = self.renderer.scene
        first = scene.ngeom
        self.mj.mjv_addGeoms(self.model, self.ghost, self.option, self.pert, int(self.mj.mjtCatBit.mjCAT_DYNAMIC),
                             scene)
        for i in range(first, scene.ngeom):
            scene.geoms[i].rgba[:] = GHOST_RGBA

    def aim(self, video: TaskVideo, t: int, view: str) -> None:
        """``follow``: 4 m behind and above the robot; ``overview``: the whole start-to-goal stretch from above."""
        qpos = video.qpos[t]
        if view == "overview":
            start = video.qpos[0, :2]
            goal = np.asarray(video.goal) if video.goal is not None else start + (4.0, 0.0)
            centre, span = (start + goal) / 2, float(np.linalg.norm(goal - start))
            self.camera.lookat[:] = (centre[0], centre[1], 0.3)
            azimuth = float(np.degrees(np.arctan2(*(goal - start)[::-1])))  # looking from the start to the goal
            self.camera.distance, self.camera.azimuth, self.camera.elevation = 1.1 * span + 3.0, azimuth, -50.0
        else:
            self.camera.lookat[:] = (qpos[0], qpos[1], 0.6)
            self.camera.distance, self.camera.azimuth, self.camera.elevation = 4.0, 150.0, -25.0

    def image(self, video: TaskVideo, t: int, view: str) -> np.ndarray:
        qpos = video.qpos[t]
        self.robot.qpos[:] = qpos
        self.mj.mj_kinematics(self.model, self.robot)
        self.aim(video, t, view)
        self.renderer.update_scene(self.robot, self.camera, self.option)
        if video.obstacles is not None:
            self.obstacles(video.obstacles)
        if video.goal is not None:
            self.goal(video.goal)
        trail = video.qpos[:t + 1:10, :3].copy()
        trail[:, 2] = 0.02
        self.path(trail, PATH_RGBA, 0.025)
        if video.plans is not None:
            self.path(video.plans[t], PLAN_RGBA, 0.02)
        if video.kicks is not None and np.any(video.kicks[max(0, t - 5):t + 1]):
            kick = video.kicks[max(0, t - 5):t + 1][np.any(video.kicks[max(0, t - 5):t + 1] != 0, axis=-1)][-1]
            self._line(qpos[:3], qpos[:3] + 2.0 * kick, 0.02, KICK_RGBA)
        if video.ghost_qpos is not None:
            self.ghost_pose(video.ghost_qpos[t])
        return self.renderer.render().copy()

    def close(self) -> None:
        self.renderer.close()


def _images(videos: list[TaskVideo], width: int, height: int, fps: int, view: str):
    drawer = _Drawer(width, height)
    try:
        for video in videos:
            step = max(1, int(round(50.0 / fps)))
            for t in range(0, len(video.qpos), step):
                lines = [f"{video.title}   t = {t / 50.0:5.2f} s"]
                if video.captions:
                    lines.append(video.captions[t])
                yield _caption(drawer.image(video, t, view), lines)
    finally:
        drawer.close()


VIEWS = ("follow", "overview")


def write_task_video(videos: list[TaskVideo], out_path, *, width: int = 640, height: int = 360, fps: int = 25,
                     view: str = "follow") -> Path:
    """Renders ``videos`` one after another into ``out_path`` (mp4, or GIF: see ``evaluation.video``), the
    camera as ``view`` says (``_Drawer.aim``)."""
    out = Path(out_path)
    if not videos:
        raise RenderError("nothing to render: no episodes")
    if width % 2 or height % 2 or width < 16 or height < 16 or not 0 < fps <= 50:
        raise RenderError(f"video size must be even and >= 16 and fps in (0, 50], got {width}x{height} at {fps}")
    if view not in VIEWS:
        raise RenderError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    if out.suffix.lower() != ".gif" and not _ffmpeg_available():
        out = out.with_suffix(".gif")
    return write_animation(out, _images(videos, width, height, fps, view), fps)


def still(video: TaskVideo, t: int, out_path, *, width: int = 640, height: int = 360, view: str = "follow") -> Path:
    """One image of ``video`` at step ``t`` as a PNG (for docs)."""
    from PIL import Image

    drawer = _Drawer(width, height)
    try:
        image = _caption(drawer.image(video, t, view), [f"{video.title}   t = {t / 50.0:5.2f} s"])
    finally:
        drawer.close()
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
