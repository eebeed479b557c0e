"""Benchmark protocols: seeded, batched episode specifications for each control task.

Every generator takes its protocol (a frozen config whose defaults are the published protocol where one is
published, else ours, marked "ours") and ``(num_episodes, seed)`` and returns numpy arrays with the episodes
first. Geometry is in the robot's START frame: the character frame of the robot when the episode starts
(origin on the ground below the pelvis, +x its heading); ``to_world`` places it where the episode's robot
actually starts. Times are control steps at 50 Hz.

| task | protocol |
|---|---|
| perturb | 15 s; a planar root-velocity kick of magnitude U(0, 0.5) m/s, uniform direction, every second |
| joystick | forward, back, turn left, turn right, 3 s each (``sequence="fixed"``); or random commands |
| waypoint | a goal 3-8 m away in a uniform direction, 20 s |
| obstacles | 15 pillars in an 8 m deep x 9 m wide field ahead, the goal beyond it |
| inpaint | 3 clips joined end to start, a keyframe each second (``keyframes.join``) |
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from mimic_jax import states as st
from mimic_jax.control import keyframes as kf
from mimic_jax.control import scenes

TASKS = ("perturb", "joystick", "waypoint", "obstacles", "inpaint")
CONTROL_HZ = 50


def steps_of(seconds: float) -> int:
    return int(round(seconds * CONTROL_HZ))


class ProtocolError(ValueError):
    """Protocol settings that cannot produce episodes; one line."""


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ProtocolError(f"unknown task {task!r} (tasks: {', '.join(TASKS)})")
    return task


# -- walk + perturb -----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class PerturbProtocol:
    seconds: float = 15.0
    kick_interval_s: float = 1.0
    kick_speed: tuple[float, float] = (0.0, 0.5)  # m/s, magnitude ~ U(lo, hi)


class PerturbEpisodes(NamedTuple):
    kicks: np.ndarray  # [N, T, 3] world root-velocity change at the start of control step t, else 0
    steps: int


def perturb(p: PerturbProtocol, num_episodes: int, seed: int) -> PerturbEpisodes:
    rng = np.random.default_rng(seed)
    steps, every = steps_of(p.seconds), steps_of(p.kick_interval_s)
    at = np.arange(every, steps, every)
    speed = rng.uniform(*p.kick_speed, size=(num_episodes, at.size))
    angle = rng.uniform(-np.pi, np.pi, size=(num_episodes, at.size))
    kicks = np.zeros((num_episodes, steps, 3), np.float32)
    kicks[:, at, 0], kicks[:, at, 1] = speed * np.cos(angle), speed * np.sin(angle)
    return PerturbEpisodes(kicks=kicks, steps=steps)


# -- joystick -----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class JoystickProtocol:
    sequence: str = "fixed"  # "fixed": forward, back, turn left, turn right; "random": random_segments draws
    segment_s: float = 3.0
    forward_speed: float = 0.6  # m/s (ours)
    backward_speed: float = 0.4  # m/s (ours)
    turn_rate: float = 0.8  # rad/s, turning in place (ours)
    random_segments: int = 5
    random_vx: tuple[float, float] = (-0.4, 0.8)  # m/s (ours)
    random_vy: tuple[float, float] = (-0.3, 0.3)
    random_yaw_rate: tuple[float, float] = (-0.8, 0.8)  # rad/s


class JoystickEpisodes(NamedTuple):
    commands: np.ndarray  # [N, T, 3] (vx, vy, yaw rate) per control step, in the robot's own heading frame
    segments: np.ndarray  # [S, 2] (first step, end step) of each command segment
    segment_commands: np.ndarray  # [N, S, 3]
    steps: int


def joystick(p: JoystickProtocol, num_episodes: int, seed: int) -> JoystickEpisodes:
    if p.sequence == "fixed":
        table = np.array([[p.forward_speed, 0, 0], [-p.backward_speed, 0, 0], [0, 0, p.turn_rate],
                          [0, 0, -p.turn_rate]], np.float32)
        seg_cmds = np.broadcast_to(table, (num_episodes,) + table.shape).copy()
    elif p.sequence == "random":
        rng = np.random.default_rng(seed)
        shape = (num_episodes, p.random_segments)
        seg_cmds = np.stack([rng.uniform(*p.random_vx, shape), rng.uniform(*p.random_vy, shape),
                             rng.uniform(*p.random_yaw_rate, shape)], axis=-1).astype(np.float32)
    else:
        raise ProtocolError(f"joystick sequence must be 'fixed' or 'random', got {p.sequence!r}")
    length = steps_of(p.segment_s)
    count = seg_cmds.shape[1]
    segments = np.stack([np.arange(count) * length, (np.arange(count) + 1) * length], axis=-1)
    commands = np.repeat(seg_cmds, length, axis=1)
    return JoystickEpisodes(commands=commands, segments=segments, segment_commands=seg_cmds, steps=count * length)


# -- waypoint -----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class WaypointProtocol:
    seconds: float = 20.0
    distance: tuple[float, float] = (3.0, 8.0)  # m


class WaypointEpisodes(NamedTuple):
    goal: np.ndarray  # [N, 2] start frame
    steps: int


def waypoint(p: WaypointProtocol, num_episodes: int, seed: int) -> WaypointEpisodes:
    rng = np.random.default_rng(seed)
    dist = rng.uniform(*p.distance, num_episodes)
    angle = rng.uniform(-np.pi, np.pi, num_episodes)
    goal = np.stack([dist * np.cos(angle), dist * np.sin(angle)], axis=-1).astype(np.float32)
    return WaypointEpisodes(goal=goal, steps=steps_of(p.seconds))


# -- obstacles ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class ObstacleProtocol:
    seconds: float = 30.0
    pillars: int = 15
    field_start: float = 1.0  # m ahead of the start: the field's near edge (ours)
    field_depth: float = 8.0  # m along x
    field_width: float = 9.0  # m along y, centred
    radius: tuple[float, float] = (0.15, 0.3)  # m (ours)
    height: float = 2.0  # m
    gap: float = 0.8  # m of free floor between any two pillars (ours): a path always exists
    goal_beyond: float = 1.0  # m past the far edge
    goal_lateral: float = 1.5  # m, |y| of the goal at most
    max_draws: int = 10_000


class ObstacleEpisodes(NamedTuple):
    goal: np.ndarray  # [N, 2] start frame
    obstacles: scenes.Obstacles  # batched [N, pillars] cylinders, start frame, no boxes
    steps: int


def _pillars(p: ObstacleProtocol, rng: np.random.Generator) -> np.ndarray:
    """[pillars, 3] (x, y, radius): sequential draws, each at least ``gap`` from every other pillar."""
    placed = []
    for _ in range(p.max_draws):
        x = rng.uniform(p.field_start, p.field_start + p.field_depth)
        y = rng.uniform(-p.field_width / 2, p.field_width / 2)
        r = rng.uniform(*p.radius)
        if all(np.hypot(x - q[0], y - q[1]) >= r + q[2] + p.gap for q in placed):
            placed.append((x, y, r))
            if len(placed) == p.pillars:
                return np.array(placed, np.float32)
    raise ProtocolError(f"could not place {p.pillars} pillars {p.gap} m apart in {p.field_depth} x "
                        f"{p.field_width} m after {p.max_draws} draws; use fewer or a larger field")


def obstacles(p: ObstacleProtocol, num_episodes: int, seed: int) -> ObstacleEpisodes:
    rng = np.random.default_rng(seed)
    pillars = np.stack([_pillars(p, rng) for _ in range(num_episodes)]) if num_episodes else np.zeros((0, p.pillars, 3))
    goal_x = np.full(num_episodes, p.field_start + p.field_depth + p.goal_beyond)
    goal = np.stack([goal_x, rng.uniform(-p.goal_lateral, p.goal_lateral, num_episodes)], -1).astype(np.float32)
    obs = scenes.Obstacles(
        cylinder_center=pillars[..., :2].astype(np.float32), cylinder_radius=pillars[..., 2].astype(np.float32),
        cylinder_height=np.full(pillars.shape[:2], p.height, np.float32),
        cylinder_active=np.ones(pillars.shape[:2], bool), box_center=np.zeros((num_episodes, 0, 3), np.float32),
        box_half_size=np.ones((num_episodes, 0, 3), np.float32), box_yaw=np.zeros((num_episodes, 0), np.float32),
        box_active=np.zeros((num_episodes, 0), bool))
    return ObstacleEpisodes(goal=goal, obstacles=obs, steps=steps_of(p.seconds))


# -- inpainting ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class InpaintProtocol:
    clips: int = 3
    segment_s: float = 4.0  # seconds taken from each clip (ours)
    keyframe_interval_s: float = 1.0
    layout: str = "body_pos"  # the state layout whose dims the keyframes fix


class InpaintEpisodes(NamedTuple):
    motion_id: np.ndarray  # [N, clips] library clip of each segment
    start_frame: np.ndarray  # [N, clips] first frame taken from it; the episode starts at segment 0's
    keyframes: kf.Keyframes  # batched [N, K]; world frame (segment 0 stays where the library has it)
    steps: int


def _segment(lib, motion_id: int, start: int, length: int) -> st.WorldStates:
    idx = int(lib.clip_start[motion_id]) + start + np.arange(length)
    return st.WorldStates(*(np.asarray(getattr(lib, f))[idx] for f in (
        "body_pos", "body_quat", "body_lin_vel", "body_ang_vel", "joint_pos", "joint_vel")))


def inpaint(p: InpaintProtocol, num_episodes: int, seed: int, lib) -> InpaintEpisodes:
    """Episodes from the clips of a ``MotionLibrary`` (distinct clips per episode, random segment starts)."""
    length = steps_of(p.segment_s)
    lengths = np.asarray(lib.clip_length)
    usable = np.flatnonzero(lengths >= length)
    if usable.size < p.clips:
        raise ProtocolError(f"inpainting joins {p.clips} clips of >= {p.segment_s} s; the set has {usable.size}")
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.choice(usable, p.clips, replace=False) for _ in range(num_episodes)]).astype(np.int32)
    starts = rng.integers(0, lengths[ids] - length + 1).astype(np.int32)
    every = steps_of(p.keyframe_interval_s)
    steps = p.clips * length - 1
    at = np.arange(every, steps + 1, every)
    worlds = []
    for n in range(num_episodes):
        joined = kf.join([_segment(lib, int(m), int(s), length) for m, s in zip(ids[n], starts[n])])
        worlds.append(st.WorldStates(*(np.asarray(x)[at] for x in joined)))
    world = st.WorldStates(*(np.stack(f) for f in zip(*worlds)))
    dims = np.broadcast_to(kf.dims_mask(p.layout), (num_episodes, st.layout(p.layout).size)).copy()
    frames = kf.Keyframes(step=np.broadcast_to(at.astype(np.int32), (num_episodes, at.size)).copy(), world=world,
                          dims=dims)
    return InpaintEpisodes(motion_id=ids, start_frame=starts, keyframes=frames, steps=steps)


# -- placing start-frame geometry in the world ----------------------------------------------------------------------
def to_world(points_xy, start: st.Frame) -> np.ndarray:
    """Ground points [N, ..., 2] in each episode's start frame -> world (start: frames with leading dims [N])."""
    points = np.concatenate([points_xy, np.zeros(points_xy.shape[:-1] + (1,), points_xy.dtype)], axis=-1)
    lead = (slice(None),) + (None,) * (points.ndim - 2)
    frame = st.Frame(np.asarray(start.origin)[lead], np.asarray(start.yaw)[lead])
    return np.asarray(st.from_frame(frame, points))[..., :2]


def obstacles_to_world(obs: scenes.Obstacles, start: st.Frame) -> scenes.Obstacles:
    """Start-frame obstacles -> world: centres moved, box yaws turned by the start heading."""
    heading = 2.0 * np.arctan2(np.asarray(start.yaw)[:, 3], np.asarray(start.yaw)[:, 0])
    box_xy = to_world(np.asarray(obs.box_center)[..., :2], start)
    box_center = np.concatenate([box_xy, np.asarray(obs.box_center)[..., 2:]], axis=-1)
    return obs.replace(cylinder_center=to_world(np.asarray(obs.cylinder_center), start).astype(np.float32),
                       box_center=box_center.astype(np.float32),
                       box_yaw=(np.asarray(obs.box_yaw) + heading[:, None]).astype(np.float32))
