"""A video of a deployed episode: the simulated robot, the reference as a translucent ghost (imageio).

Rendered with MuJoCo's offscreen renderer from the exported model at 25 fps; the ghost's geoms are added
with ``mjv_addGeoms`` from a second ``MjData`` at the reference pose and recoloured. Needs a headless
OpenGL (``MUJOCO_GL=egl`` or ``osmesa``; the CLI sets ``egl`` when no display and no choice is given).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import mujoco
import numpy as np

from mimic_jax.deploy.config import DeployError

GHOST_RGBA = (0.35, 0.6, 1.0, 0.35)
WIDTH, HEIGHT, FPS = 480, 270, 25


def _ghost_qpos(bundle, ref, frame: int) -> np.ndarray:
    lay, root = bundle.layout, bundle.config["bodies"]["tracked"].index(bundle.config["bodies"]["root"])
    qpos = bundle.model.qpos0.copy()
    qpos[lay.root_qpos:lay.root_qpos + 3] = ref.body_pos[frame, root]
    qpos[lay.root_qpos + 3:lay.root_qpos + 7] = ref.body_quat[frame, root]
    qpos[lay.joint_qpos] = ref.joint_pos[frame]
    return qpos


def _images(bundle, ref, episode):
    model = bundle.model
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), WIDTH)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), HEIGHT)
    robot, ghost = mujoco.MjData(model), mujoco.MjData(model)
    camera, option, pert = mujoco.MjvCamera(), mujoco.MjvOption(), mujoco.MjvPerturb()
    camera.distance, camera.azimuth, camera.elevation = 3.0, 140.0, -15.0
    try:
        renderer = mujoco.Renderer(model, HEIGHT, WIDTH)
    except Exception as exc:  # noqa: BLE001 - no OpenGL here; MuJoCo raises several types
        raise DeployError(f"--video: cannot render here ({exc}); set MUJOCO_GL=egl or osmesa") from None
    states = np.concatenate([episode.qpos0[None], episode.qpos])
    try:
        for frame in range(0, len(states), max(1, round(1.0 / (FPS * bundle.config["control"]["control_dt"])))):
            robot.qpos[:], ghost.qpos[:] = states[frame], _ghost_qpos(bundle, ref, frame)
            mujoco.mj_kinematics(model, robot)
            mujoco.mj_kinematics(model, ghost)
            camera.lookat[:] = (robot.qpos[bundle.layout.root_qpos], robot.qpos[bundle.layout.root_qpos + 1], 0.7)
            renderer.update_scene(robot, camera, option)
            first = renderer.scene.ngeom
            mujoco.mjv_addGeoms(model, ghost, option, pert, int(mujoco.mjtCatBit.mjCAT_DYNAMIC), renderer.scene)
            for i in range(first, renderer.scene.ngeom):
                renderer.scene.geoms[i].rgba[:] = GHOST_RGBA
            yield renderer.render().copy()
    finally:
        renderer.close()


def write_video(path: Path, bundle, ref, episode) -> Path:
    """Writes the episode as mp4 (H.264) or GIF, atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        images = _images(bundle, ref, episode)
        if path.suffix.lower() == ".gif":
            import imageio.v3 as iio

            iio.imwrite(tmp, np.stack(list(images)), extension=".gif", duration=1000.0 / FPS, loop=0)
        else:
            import imageio.v2 as imageio

            with imageio.get_writer(tmp, format="FFMPEG", fps=FPS, codec="libx264", macro_block_size=2) as writer:
                for image in images:
                    writer.append_data(image)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
