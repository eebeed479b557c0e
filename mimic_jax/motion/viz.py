"""Looking at clips: a diagnostic plot (matplotlib) and kinematic playback (MuJoCo offscreen renderer).

``plot_clip`` draws joint curves (legs, waist, arms), the sole height of each foot (lowest point of the
foot collision capsules, by forward kinematics), the signed distance of the centre of mass (COM) ground
projection and of the cart-table ZMP to the support polygon (convex hull of the feet within
``CONTACT_HEIGHT`` of the floor; positive inside, gaps in flight), and a top view of the COM path and soles.

Rendering needs a headless OpenGL. :func:`ensure_gl` probes, in a subprocess, ``MUJOCO_GL`` if set,
else EGL then OSMesa, and switches this process's MuJoCo to the first that works (MuJoCo reads
``MUJOCO_GL`` at import, so setting the variable afterwards would not be enough). Mesa's EGL renders on the
CPU (llvmpipe) where there is no GPU.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from mimic_jax.assets import g1
from mimic_jax.motion import quality
from mimic_jax.motion.clip import Clip

CONTACT_HEIGHT = quality.CONTACT_HEIGHT  # m: a sole point this close to the floor (z = 0) supports the robot
GL_INSTALL_HINT = ("install a headless OpenGL: `apt-get install libegl1 libgl1-mesa-dri` (EGL; GPU driver or "
                   "Mesa's CPU renderer) or `apt-get install libosmesa6` (OSMesa), then retry; or set MUJOCO_GL "
                   "to a backend that works here")
_PROBE = ("import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=\"1\"/>"
          "</worldbody></mujoco>'); r = mujoco.Renderer(m, 8, 8); r.render(); r.close()")
_GL_BACKEND: str | None = None


class RenderError(RuntimeError):
    """Rendering is impossible here (no OpenGL) or was asked for something out of range."""


def _probe(backend: str) -> str | None:
    """None if MuJoCo can render with ``backend`` in a fresh process, else the last error line."""
    env = dict(os.environ, MUJOCO_GL=backend)
    if backend in ("egl", "osmesa"):
        env["PYOPENGL_PLATFORM"] = backend
    try:
        run = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "timed out"
    if run.returncode == 0:
        return None
    lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {run.returncode}"


def _activate(backend: str) -> None:
    """Makes this process's MuJoCo renderer use ``backend`` (even if mujoco was imported already)."""
    os.environ["MUJOCO_GL"] = backend
    if backend in ("egl", "osmesa") and "OpenGL" not in sys.modules:
        os.environ["PYOPENGL_PLATFORM"] = backend
    try:
        from mujoco.rendering.classic import gl_context
    except ImportError:
        return  # a MuJoCo without this module reads MUJOCO_GL when it creates a context
    current = getattr(gl_context, "GLContext", None)
    if backend in ("egl", "osmesa") and (current is None or current.__module__ != f"mujoco.{backend}"):
        try:
            gl_context.GLContext = importlib.import_module(f"mujoco.{backend}").GLContext
        except (ImportError, AttributeError) as exc:
            raise RenderError(f"cannot switch MuJoCo to {backend} in this process ({exc}); start Python with "
                              f"MUJOCO_GL={backend} set") from None


def ensure_gl() -> str:
    """The working headless OpenGL backend ('egl', 'osmesa', ...), activated; raises :class:`RenderError`."""
    global _GL_BACKEND
    if _GL_BACKEND is not None:
        return _GL_BACKEND
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    errors = {}
    for backend in [requested] if requested else ["egl", "osmesa"]:
        errors[backend] = _probe(backend)
        if errors[backend] is None:
            _activate(backend)
            _GL_BACKEND = backend
            return backend
    tried = "; ".join(f"MUJOCO_GL={k}: {v}" for k, v in errors.items())
    raise RenderError(f"no OpenGL for offscreen rendering ({tried}); {GL_INSTALL_HINT}")


def kinematic_pass(clip: Clip, model=None) -> dict[str, np.ndarray]:
    """Per frame: COM ``com`` [T,3] and, for ``left``/``right``, the sole points [T,14,3] (both ends of every
    foot capsule axis, lowered by the capsule radius), as defined in :mod:`mimic_jax.motion.quality`."""
    model = model if model is not None else g1.load_model()
    points = quality.foot_points(clip, model)
    points[..., 2] -= quality.FOOT_RADIUS
    return {"com": quality.com_trajectory(clip, model), "left": points[:, 0], "right": points[:, 1]}


def support_margins(kin: dict[str, np.ndarray], xy: np.ndarray | None = None) -> np.ndarray:
    """Per-frame signed distance (m) of ``xy`` [T,2] (default: the COM ground projection) to the hull of the
    feet whose sole is within ``CONTACT_HEIGHT`` of the floor (as in :mod:`mimic_jax.motion.quality`);
    positive inside, NaN where no foot touches."""
    xy = kin["com"][:, :2] if xy is None else xy
    margins = np.full(xy.shape[0], np.nan)
    for t in range(margins.size):
        feet = [kin[s][t, :, :2] for s in ("left", "right") if kin[s][t, :, 2].min() < CONTACT_HEIGHT]
        if feet:
            margins[t] = quality.signed_distance(xy[t], quality.convex_hull(np.concatenate(feet)))
    return margins


def zmp(com: np.ndarray, fps: float) -> np.ndarray:
    """Cart-table ZMP [T,2] from the COM trajectory: ``c_xy - c_z c''_xy / (g + c''_z)``."""
    acc = np.gradient(np.gradient(com, 1.0 / fps, axis=0), 1.0 / fps, axis=0)
    return com[:, :2] - com[:, 2:3] * acc[:, :2] / (quality.GRAVITY + acc[:, 2:3])


def _short(name: str) -> str:
    return name.replace("_joint", "").replace("left_", "L ").replace("right_", "R ")


def _joint_panel(ax, clip: Clip, time: np.ndarray, pattern: str, title: str) -> None:
    for j, name in enumerate(clip.joint_names):
        if re.search(pattern, name):
            ax.plot(time, clip.joint_pos[:, j], lw=1, label=_short(name))
    ax.set(title=title, xlabel="time (s)", ylabel="rad")
    ax.legend(fontsize=6, ncol=2, loc="upper right")


def _top_view(ax, kin: dict[str, np.ndarray], fps: float) -> None:
    step = max(1, int(round(0.5 * fps)))
    for t in range(0, kin["com"].shape[0], step):
        for side, colour in (("left", "tab:blue"), ("right", "tab:red")):
            hull = quality.convex_hull(kin[side][t, :, :2])
            if len(hull) >= 3:
                ax.fill(hull[:, 0], hull[:, 1], color=colour, alpha=0.15, lw=0)
    ax.plot(kin["com"][:, 0], kin["com"][:, 1], "k-", lw=1.2, label="COM ground projection")
    ax.plot(*kin["com"][0, :2], "go", ms=4, label="start")
    ax.set(title="top view: COM and soles (every 0.5 s)", xlabel="x (m)", ylabel="y (m)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=7)


def _margin_panel(ax, kin: dict[str, np.ndarray], time: np.ndarray, fps: float) -> None:
    ax.plot(time, 100 * support_margins(kin), "k-", lw=1, label="COM")
    ax.plot(time, 100 * support_margins(kin, zmp(kin["com"], fps)), color="tab:green", lw=0.8, label="ZMP")
    ax.axhline(0, color="red", lw=0.8)
    ax.set(title="margin inside the support polygon (gaps: no foot on the floor)", xlabel="time (s)", ylabel="cm")
    ax.legend(fontsize=7)


def plot_clip(clip: Clip, out_png: str | os.PathLike, *, model=None, dpi: int = 64) -> Path:
    """Writes the diagnostic figure of a clip to ``out_png`` and returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kin = kinematic_pass(clip, model)
    time = np.arange(clip.num_frames) / clip.fps
    fig = plt.figure(figsize=(12, 12))
    grid = fig.add_gridspec(4, 2, height_ratios=(1, 1, 0.8, 0.9))
    _joint_panel(fig.add_subplot(grid[0, 0]), clip, time, r"hip|knee|ankle", "legs")
    _joint_panel(fig.add_subplot(grid[0, 1]), clip, time, r"shoulder|elbow|wrist", "arms")
    _joint_panel(fig.add_subplot(grid[1, 0]), clip, time, r"waist", "waist")
    ax = fig.add_subplot(grid[1, 1])
    for side in ("left", "right"):
        ax.plot(time, kin[side][:, :, 2].min(axis=1), label=f"{side} sole")
    ax.axhline(CONTACT_HEIGHT, color="grey", ls=":", lw=1, label="contact height")
    ax.set(title="foot sole height (lowest point of the foot capsules)", xlabel="time (s)", ylabel="m")
    ax.legend(fontsize=7)
    _margin_panel(fig.add_subplot(grid[2, :]), kin, time, clip.fps)
    _top_view(fig.add_subplot(grid[3, :]), kin, clip.fps)
    fig.suptitle(clip.source or "clip", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    plt.close(fig)
    return out_png


def _frames(clip: Clip, indices, width: int, height: int, *, distance: float = 2.6):
    """Yields RGB images [H,W,3] of the given frames, the camera looking at the pelvis."""
    ensure_gl()
    import mujoco

    model = g1.load_model()
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
    data = mujoco.MjData(model)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.distance, camera.azimuth, camera.elevation = distance, 140.0, -15.0
    renderer = mujoco.Renderer(model, height, width)
    try:
        for t in indices:
            data.qpos[:] = g1.qpos_from(clip.root_pos[t], clip.root_quat[t], clip.joint_pos[t])
            mujoco.mj_forward(model, data)
            camera.lookat[:] = clip.root_pos[t]
            renderer.update_scene(data, camera)
            yield renderer.render().copy()
    finally:
        renderer.close()  # explicitly, before interpreter shutdown tears EGL down


def _temporary(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent / f".{out.stem}.tmp{out.suffix}"


def render_frame(clip: Clip, frame: int, out_png: str | os.PathLike, *, width: int = 640,
                 height: int = 480) -> Path:
    """Writes one frame (50 fps index; negative counts from the end) as a PNG."""
    import imageio.v3 as iio

    if not -clip.num_frames <= frame < clip.num_frames:
        raise RenderError(f"frame {frame} is out of range (the clip has {clip.num_frames} frames)")
    out = Path(out_png)
    image = next(iter(_frames(clip, [frame % clip.num_frames], width, height)))
    tmp = _temporary(out)
    iio.imwrite(tmp, image, extension=".png")
    os.replace(tmp, out)
    return out


def render_clip(clip: Clip, out_path: str | os.PathLike, *, width: int = 640, height: int = 480,
                fps: int = 25) -> Path:
    """Kinematic playback of a clip: mp4 (H.264 via imageio-ffmpeg), or a GIF if ``out_path`` ends in .gif."""
    out = Path(out_path)
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise RenderError(f"video size must be even and at least 16 pixels, got {width}x{height}")
    if fps <= 0 or fps > clip.fps:
        raise RenderError(f"video fps must be in (0, {clip.fps:g}], got {fps}")
    indices = np.unique(np.round(np.arange(0, clip.num_frames, clip.fps / fps)).astype(int)).clip(0, clip.num_frames - 1)
    return write_animation(out, _frames(clip, indices, width, height), fps)


def write_animation(out: Path, images, fps: float) -> Path:
    """Writes RGB frames (an iterable) atomically: a GIF if ``out`` ends in .gif, else H.264 mp4."""
    tmp = _temporary(out)
    try:
        if out.suffix.lower() == ".gif":
            import imageio.v3 as iio

            iio.imwrite(tmp, np.stack(list(images)), extension=".gif", duration=1000.0 / fps, loop=0)
        else:
            import imageio.v2 as imageio

            with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=7,
                                    macro_block_size=2) as writer:
                for image in images:
                    writer.append_data(image)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
