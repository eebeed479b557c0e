"""Watching one controlled episode: its scene, scripted joystick commands, the keyboard joystick, and the video.

Commands for ``play --task joystick`` come from a command file where there is no display, or from the
keyboard in MuJoCo's passive viewer where there is one. A command file is YAML, one segment per item, played
in order; missing velocities are 0::

    - {seconds: 3, vx: 0.6}            # m/s forward
    - {seconds: 2, yaw_rate: 0.8}      # rad/s, + turns left
    - {seconds: 3, vx: 0.3, vy: -0.2}  # m/s, + is to the left

Keyboard (viewer): up / down arrows change vx by 0.1 m/s, left / right the yaw rate by 0.2 rad/s, ',' and '.'
vy by 0.1 m/s, backspace stops. Scenes for ``waypoint`` / ``obstacles`` come from the seeded protocol (the first
episode of ``--seed``) or from a scene file (``scenes`` module doc) in the start frame: the robot starts at the
origin facing +x.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import jax
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.control import protocols as proto
from mimic_jax.control import scenes
from mimic_jax.control.draw import TaskVideo

COMMAND_KEYS = ("seconds", "vx", "vy", "yaw_rate")


class CommandError(ValueError):
    """A command file that cannot be played; one line."""


def load_commands(path) -> np.ndarray:
    """[T, 3] (vx, vy, yaw rate) per 50 Hz control step from a command file (module doc)."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CommandError(f"{path}: no such command file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CommandError(f"{path}: not a YAML command file ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, list) or not doc:
        raise CommandError(f"{path}: a command file is a non-empty list of segments like {{seconds: 3, vx: 0.6}}")
    rows = []
    for i, seg in enumerate(doc):
        if not isinstance(seg, dict) or "seconds" not in seg or set(seg) - set(COMMAND_KEYS):
            raise CommandError(f"{path}: segment {i} must have 'seconds' and only {', '.join(COMMAND_KEYS[1:])}, "
                               f"got {seg!r}")
        values = [seg.get(k, 0.0) for k in COMMAND_KEYS]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise CommandError(f"{path}: segment {i} has a value that is not a finite number: {seg!r}")
        steps = proto.steps_of(values[0])
        if steps < 1:
            raise CommandError(f"{path}: segment {i} lasts {values[0]} s; at least one control step (0.02 s)")
        rows.append(np.tile(np.array(values[1:], np.float32), (steps, 1)))
    return np.concatenate(rows)


# -- keyboard joystick --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class KeyboardLimits:
    vx: tuple[float, float] = (-0.6, 1.0)
    vy: tuple[float, float] = (-0.4, 0.4)
    yaw_rate: tuple[float, float] = (-1.0, 1.0)
    step_v: float = 0.1
    step_yaw: float = 0.2


GLFW = {"up": 265, "down": 264, "left": 263, "right": 262, "comma": 44, "period": 46, "backspace": 259}


def apply_key(command: np.ndarray, keycode: int, limits: KeyboardLimits = KeyboardLimits()) -> np.ndarray:
    """The joystick command (vx, vy, yaw rate) after a key press (GLFW key codes; other keys change nothing)."""
    delta = {GLFW["up"]: (limits.step_v, 0, 0), GLFW["down"]: (-limits.step_v, 0, 0),
             GLFW["left"]: (0, 0, limits.step_yaw), GLFW["right"]: (0, 0, -limits.step_yaw),
             GLFW["comma"]: (0, limits.step_v, 0), GLFW["period"]: (0, -limits.step_v, 0)}
    if keycode == GLFW["backspace"]:
        return np.zeros(3, np.float32)
    if keycode not in delta:
        return np.asarray(command, np.float32)
    lo, hi = zip(limits.vx, limits.vy, limits.yaw_rate)
    return np.clip(np.asarray(command) + np.array(delta[keycode]), lo, hi).astype(np.float32)


def has_display() -> bool:
    """Whether an interactive viewer can open here (an X or Wayland display)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# -- scenes of one episode ----------------------------------------------------------------------------------------
def episode_scene(task: str, *, seed: int = 0, scene_file=None) -> dict:
    """The start-frame geometry of the episode ``play`` shows: {"goal": [2] | None, "obstacles": ... | None}."""
    task = proto.check_task(task)
    if scene_file is not None:
        if task not in ("waypoint", "obstacles"):
            raise scenes.SceneError(f"--scene is for the waypoint and obstacles tasks, not {task}")
        goal, obs = scenes.load_scene(scene_file)
        return {"goal": goal, "obstacles": obs if task == "obstacles" else None}
    if task == "waypoint":
        return {"goal": proto.waypoint(proto.WaypointProtocol(), 1, seed).goal[0], "obstacles": None}
    if task == "obstacles":
        eps = proto.obstacles(proto.ObstacleProtocol(), 1, seed)
        return {"goal": eps.goal[0], "obstacles": jax.tree.map(lambda x: np.asarray(x[0]), eps.obstacles)}
    return {"goal": None, "obstacles": None}


def standing_qpos() -> np.ndarray:
    """qpos [36] of the robot in its default pose at the origin, facing +x."""
    table = g1.joint_table()
    return g1.qpos_from(np.array([0.0, 0.0, g1.DEFAULT_ROOT_HEIGHT]), np.array([1.0, 0, 0, 0]), table.default_pos)


def preview(task: str, *, seed: int = 0, scene_file=None, seconds: float = 2.0) -> TaskVideo:
    """The task's scene with the robot standing at its start (no model needed): to check a scene or command file."""
    scene = episode_scene(task, seed=seed, scene_file=scene_file)
    steps = max(1, proto.steps_of(seconds))
    qpos = np.tile(standing_qpos(), (steps, 1))
    return TaskVideo(title=f"{task} scene (preview, seed {seed})", qpos=qpos, goal=scene["goal"],
                     obstacles=scene["obstacles"])


def command_captions(commands: np.ndarray) -> tuple[str, ...]:
    """Per-step caption lines of joystick commands [T, 3]."""
    return tuple(f"command: vx {c[0]:+.2f} m/s  vy {c[1]:+.2f} m/s  yaw {c[2]:+.2f} rad/s" for c in commands)


def episode_video(batch, rec, i: int, plans: np.ndarray | None = None, title: str | None = None) -> TaskVideo:
    """Episode ``i`` of a simulated ``bench.TaskBatch`` (``rec``: its ``bench.Recorded``) as a :class:`TaskVideo`;
    ``plans`` [T+1, H+1, 3]: the sampler's planned root positions (world) at each step, if recorded."""
    from mimic_jax.control.draw import qpos_of
    from mimic_jax.control.guidance import scene_of

    world = take_episode(rec.world, i)
    valid = np.asarray(rec.valid)[:, i]
    last = max(1, int(valid.sum()))  # the simulated prefix
    goal, obs = scene_of(batch.plan, i)
    kicks = None if rec.kicks is None else np.concatenate([np.asarray(rec.kicks)[:, i], np.zeros((1, 3))])[:last]
    captions: tuple[str, ...] = ()
    if batch.task == "joystick":
        cmds = np.asarray(batch.episodes.commands)[i]
        captions = command_captions(np.concatenate([cmds, cmds[-1:]])[:last])
    ghost = None
    if batch.task == "inpaint":
        keys = batch.episodes.keyframes
        steps = np.asarray(keys.step)[i]
        key_qpos = qpos_of(take_episode(keys.world, i, axis=0))
        upcoming = np.minimum(np.searchsorted(steps, np.arange(last), side="right"), len(steps) - 1)
        ghost = key_qpos[upcoming]
    return TaskVideo(title=title or f"{batch.name} episode {i}", qpos=qpos_of(world)[:last], goal=goal, obstacles=obs,
                     plans=None if plans is None else plans[:last], kicks=kicks, ghost_qpos=ghost, captions=captions)


def take_episode(world, i: int, axis: int = 1):
    """Episode ``i`` of batched world states (episodes on ``axis``)."""
    return type(world)(*(np.take(np.asarray(x), i, axis=axis) for x in world))


# -- the episode ``play`` runs --------------------------------------------------------------------------------------
def _segments(commands: np.ndarray) -> np.ndarray:
    """[S, 2] (first, end) steps of the runs of equal commands [T, 3]."""
    change = np.flatnonzero(np.any(np.diff(commands, axis=0) != 0, axis=1)) + 1
    edges = np.concatenate([[0], change, [len(commands)]])
    return np.stack([edges[:-1], edges[1:]], axis=-1)


def play_batch(task: str, cfg, start, lib=None, *, commands: np.ndarray | None = None, scene_file=None,
               seconds: float | None = None):
    """The one-episode ``bench.TaskBatch`` that ``play`` runs: the task's protocol (the first episode of
    ``cfg.seed``; joystick: the fixed sequence), or the commands [T, 3] of a command file, or the goal and
    obstacles of a scene file (start frame); cut at ``seconds`` if given. ``start``: [1] character frames."""
    from mimic_jax.control import bench
    from mimic_jax.control import guidance as G

    task = proto.check_task(task)
    if commands is not None:
        segments = _segments(commands)
        eps = proto.JoystickEpisodes(commands=commands[None], segments=segments,
                                     segment_commands=commands[segments[:, 0]][None], steps=len(commands))
        batch = bench.TaskBatch(name="joystick", task=task, protocol=cfg.joystick, episodes=eps, start=start,
                                plan=G.plan(task, eps, start, cfg.guidance), steps=eps.steps)
    elif scene_file is not None:
        scene = episode_scene(task, scene_file=scene_file)
        goal = np.asarray(scene["goal"], np.float32)[None]
        if task == "waypoint":
            protocol, eps = cfg.waypoint, proto.WaypointEpisodes(goal=goal, steps=proto.steps_of(cfg.waypoint.seconds))
        else:
            protocol = cfg.obstacles
            eps = proto.ObstacleEpisodes(goal=goal, obstacles=jax.tree.map(lambda x: np.asarray(x)[None],
                                                                             scene["obstacles"]),
                                         steps=proto.steps_of(cfg.obstacles.seconds))
        batch = bench.TaskBatch(name=task, task=task, protocol=protocol, episodes=eps, start=start,
                                plan=G.plan(task, eps, start, cfg.guidance), steps=eps.steps)
    else:
        batch = bench.make_batch("joystick/fixed" if task == "joystick" else task, cfg, start, lib)
    if seconds is not None:
        batch = batch._replace(steps=max(1, proto.steps_of(seconds)))
    return batch
