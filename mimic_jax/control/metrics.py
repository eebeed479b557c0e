"""Control metrics from recorded episodes, and 95% intervals.

Input: the robot's world states every control step, ``world`` (``states.WorldStates`` [T, N, ...], step 0 the
state after the reset) and ``valid`` [T, N] (the step was simulated: False after the physics went non-finite
or the runner froze the episode). Definitions (our wording of the published protocols):

* fall: the head (``head_collision`` sphere centre, on the torso) below 0.2 m at any valid step, or the
  episode not simulated to its end (non-finite physics);
* joystick velocity error of a segment: over its last 2 s, the mean planar root velocity in the robot's heading
  frame against the command, ||v_mean - v_cmd|| / ||v_cmd|| in %, for commands of at least 0.1 m/s; for a yaw
  command of at least 0.1 rad/s the same with the mean yaw rate; a segment with both counts the worse;
  episode success: no fall and every segment's error at most ``success_error_pct``;
* reached (waypoint, obstacles): some valid step within 0.3 m of the goal moving slower than 0.2 m/s (planar);
  time = the first such step; collision: a body sphere (``costs.BODY_RADII``) inside an obstacle;
* keyframe errors (inpainting), metres at each keyframe step reached: MJPE the mean over the 14 tracked bodies
  of the world-position error, MRPE the root's.

Proportions get Wilson score intervals; means get Student-t intervals over episodes.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import numpy as np

from mimic_jax import math as jm
from mimic_jax import states as st
from mimic_jax.assets import g1
from mimic_jax.control import scenes
from mimic_jax.control.costs import BODY_RADII
from mimic_jax.control.keyframes import Keyframes

FALL_HEIGHT = 0.2  # m
Z95 = 1.959963984540054
TORSO = g1.TRACKED_BODY_NAMES.index("torso_link")


@dataclasses.dataclass(frozen=True)
class Figure:
    """One reported number with its 95% interval and the count it was computed from."""

    value: float
    low: float
    high: float
    n: int
    unit: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float, float]:
    """(p, low, high): the Wilson score interval of a proportion."""
    if n == 0:
        return math.nan, math.nan, math.nan
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def rate(flags, unit: str = "fraction") -> Figure:
    flags = np.asarray(flags, bool)
    p, lo, hi = wilson(int(flags.sum()), int(flags.size))
    return Figure(p, lo, hi, int(flags.size), unit)


def mean(values, unit: str) -> Figure:
    """Mean of the finite values with a Student-t 95% interval (NaN interval for fewer than 2)."""
    from scipy import stats

    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Figure(math.nan, math.nan, math.nan, 0, unit)
    m = float(v.mean())
    if v.size < 2:
        return Figure(m, math.nan, math.nan, 1, unit)
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return Figure(m, m - half, m + half, int(v.size), unit)


# -- per-step quantities ------------------------------------------------------------------------------------------
@functools.cache
def head_offset() -> np.ndarray:
    """The head sphere's centre in the torso_link frame, from our MJCF."""
    import mujoco

    model = g1.load_model()
    geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "head_collision")
    return np.asarray(model.geom_pos[geom], np.float32)


def head_height(world: st.WorldStates) -> np.ndarray:
    """[...] height of the head sphere's centre."""
    pos, quat = world.body_pos_w[..., TORSO, :], world.body_quat_w[..., TORSO, :]
    return np.asarray(jm.quat_rotate(quat, np.broadcast_to(head_offset(), pos.shape)))[..., 2] + pos[..., 2]


def falls(world: st.WorldStates, valid) -> tuple[np.ndarray, np.ndarray]:
    """(fell [N], first fall step [N], -1 if none). An episode that stopped being simulated (its physics went
    non-finite) falls at its first invalid step."""
    valid = np.asarray(valid, bool)
    down = ((head_height(world) < FALL_HEIGHT) & valid) | ~valid
    fell = down.any(axis=0)
    return fell, np.where(fell, np.argmax(down, axis=0), -1)


def heading_velocity(world: st.WorldStates) -> np.ndarray:
    """[..., 2] planar root velocity in the root's own heading frame."""
    root_q, root_v = world.body_quat_w[..., st.ROOT, :], world.body_lin_vel_w[..., st.ROOT, :]
    return np.asarray(jm.quat_rotate_inv(jm.yaw_quat(root_q), root_v))[..., :2]


# -- task metrics -------------------------------------------------------------------------------------------------
def joystick_errors(world: st.WorldStates, valid, segments, segment_commands, *, window_s: float = 2.0,
                    dt: float = 0.02, min_speed: float = 0.1, min_rate: float = 0.1) -> np.ndarray:
    """[N, S] velocity error (%) of each segment over its last ``window_s`` (module doc); NaN where the segment
    was not fully simulated or commands nothing measurable."""
    vel, yaw = heading_velocity(world), np.asarray(world.body_ang_vel_w)[..., st.ROOT, 2]
    valid = np.asarray(valid, bool)
    window = int(round(window_s / dt))
    out = np.full(segment_commands.shape[:2], np.nan)
    for s, (first, end) in enumerate(np.asarray(segments)):
        steps = slice(max(first, end - window), end)
        done = valid[steps].all(axis=0)
        cmd = np.asarray(segment_commands)[:, s]
        speed, turn = np.linalg.norm(cmd[:, :2], axis=-1), np.abs(cmd[:, 2])
        lin = np.linalg.norm(vel[steps].mean(axis=0) - cmd[:, :2], axis=-1) / np.maximum(speed, min_speed)
        ang = np.abs(yaw[steps].mean(axis=0) - cmd[:, 2]) / np.maximum(turn, min_rate)
        lin, ang = np.where(speed >= min_speed, lin, np.nan), np.where(turn >= min_rate, ang, np.nan)
        out[:, s] = np.where(done, 100.0 * np.fmax(lin, ang), np.nan)  # fmax: the defined one, or the worse
    return out


def reached(world: st.WorldStates, valid, goal_w, *, radius: float = 0.3, speed: float = 0.2,
            dt: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """(reached [N], time in s of the first step at the goal [N], NaN if never)."""
    root = np.asarray(world.body_pos_w)[..., st.ROOT, :2]
    vel = np.asarray(world.body_lin_vel_w)[..., st.ROOT, :2]
    at = (np.linalg.norm(root - goal_w[None], axis=-1) < radius) & (np.linalg.norm(vel, axis=-1) < speed)
    at &= np.asarray(valid, bool)
    hit = at.any(axis=0)
    return hit, np.where(hit, np.argmax(at, axis=0) * dt, np.nan)


def clearance(world: st.WorldStates, obstacles: scenes.Obstacles) -> np.ndarray:
    """[T, N] smallest distance between a body sphere's surface and an obstacle (negative: a collision).
    ``obstacles`` batched [N, ...], world frame."""
    radii = np.array([BODY_RADII[n] for n in g1.TRACKED_BODY_NAMES], np.float32)
    per_env = jax.tree.map(lambda x: np.asarray(x)[:, None], obstacles)  # [N, 1, slots]: against [T, N, 14]
    sdf = np.asarray(scenes.scene_sdf(per_env, np.asarray(world.body_pos_w)))  # [T, N, 14]
    return (sdf - radii).min(axis=-1)


def collided(world: st.WorldStates, valid, obstacles: scenes.Obstacles) -> np.ndarray:
    """[N] a body sphere entered an obstacle at a valid step."""
    return ((clearance(world, obstacles) < 0.0) & np.asarray(valid, bool)).any(axis=0)


def keyframe_errors(world: st.WorldStates, valid, keys: Keyframes) -> tuple[np.ndarray, np.ndarray]:
    """(MJPE [N, K], MRPE [N, K]) in metres at each keyframe step; NaN where that step was not simulated."""
    steps = np.asarray(keys.step)  # [N, K]
    n = np.arange(steps.shape[0])[:, None]
    last = np.asarray(world.body_pos_w).shape[0] - 1
    index = np.minimum(steps, last)
    robot = np.asarray(world.body_pos_w)[index, n]  # [N, K, 14, 3]
    err = np.linalg.norm(robot - np.asarray(keys.world.body_pos_w), axis=-1)
    ok = np.asarray(valid, bool)[index, n] & (steps <= last)
    return np.where(ok, err.mean(axis=-1), np.nan), np.where(ok, err[..., st.ROOT], np.nan)
