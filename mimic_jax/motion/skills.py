"""Whole-body skill patterns for the synthesized ``dynamic_skills`` clips.

Every skill is a set of keyframed IK targets on top of ``locomotion.stand_targets``: pelvis height and
tilt, centre of mass, feet, and arm postures in joint space. Keyframes are joined by the quintic smoothstep
(``gait.keyframes``), so every target is C2 and comes to rest at each keyframe. Single-support phases
(kick, lunge steps) are quasi-static: the COM is moved over the stance foot first and kept there.
The jump is the only clip with a flight phase: a C2 vertical plan (push-off ending at -g, ballistic
flight, landing starting at -g) with feet that leave and touch the floor with zero velocity.
"""

from __future__ import annotations

import numpy as np

from mimic_jax.motion import gait
from mimic_jax.motion.gait import LEFT, RIGHT, Step, keyframes
from mimic_jax.motion.ik import Targets
from mimic_jax.motion.locomotion import J, T_STAND, Walk, repeat, stand_targets, standing, time_grid, walk_targets

GRAVITY = gait.GRAVITY


def _set_arm(tg: Targets, t, side: str, joint: str, times, values, relative: bool = True) -> None:
    col = J[f"{side}_{joint}_joint"]
    tg.posture[:, col] = (tg.posture[:, col] if relative else 0.0) + keyframes(t, times, values)


def squat() -> Targets:
    """Two slow squats to 0.22 m below standing, hips back, torso leaning, arms reaching forward."""
    t = time_grid(10.0)
    tg = stand_targets(t)
    times = [T_STAND, 2.8, 3.3, 4.9, 5.6, 7.2, 7.7, 9.3]
    depth = keyframes(t, times, [0, 1, 1, 0, 0, 1, 1, 0])
    tg.pelvis_z = tg.pelvis_z - 0.22 * depth
    tg.pelvis_rpy[:, 1] = 0.45 * depth
    tg.torso_rpy[:, 1] = 0.3 * depth
    for side in ("left", "right"):
        col = J[f"{side}_shoulder_pitch_joint"]
        tg.posture[:, col] -= 1.3 * depth
        tg.posture[:, J[f"{side}_elbow_joint"]] -= 0.4 * depth
    return tg


def _step_feet(tg: Targets, t, steps: list[Step], height: float = 0.06, inward: float = 0.0) -> None:
    st = standing()
    plan = gait.foot_plan(t, st.feet_xy, (0.0, 0.0), steps, height, inward=inward)
    tg.foot_pos, tg.foot_yaw, tg.foot_pitch = plan.pos, plan.yaw, plan.pitch


def lunge() -> Targets:
    """Weight onto the left foot, right foot 0.3 m forward, two lunges (pelvis 0.18 m down, back heel up), back."""
    t = time_grid(11.0)
    tg = stand_targets(t)
    st = standing()
    left, right = st.feet_xy
    front = right + np.array([0.3, 0.0])
    _step_feet(tg, t, [Step(RIGHT, 2.2, 2.9, tuple(front), 0.0), Step(RIGHT, 8.2, 8.9, tuple(right), 0.0)],
               inward=0.05)
    over_left = left + np.array([0.0, -0.02])
    lunge_com = 0.5 * (left + front) + np.array([0.02, 0.0])
    tg.com_xy = keyframes(t, [T_STAND, 2.1, 3.0, 3.8, 7.2, 8.1, 9.0, 9.8],
                          [st.centre, over_left, over_left, lunge_com, lunge_com, over_left, over_left, st.centre])
    ready = keyframes(t, [T_STAND, 2.1, 6.6, 7.2, 7.9, 9.0, 9.8], [0, 1, 1, 0.5, 1, 1, 0])
    low = keyframes(t, [3.8, 4.6, 5.0, 5.6, 6.0, 6.8], [0, 1, 1, 0.3, 1, 0])
    tg.pelvis_z = tg.pelvis_z - 0.08 * ready - 0.1 * low
    heel = 0.6 * keyframes(t, [3.0, 4.4, 6.2, 7.2], [0, 1, 1, 0])  # back heel rises about the toe
    tg.foot_pitch[:, LEFT] += heel
    tg.foot_pos[:, LEFT] += gait.toe_pivot(heel, tg.foot_yaw[:, LEFT])
    tg.torso_rpy[:, 1] = -0.05 * low
    for side in ("left", "right"):
        _set_arm(tg, t, side, "shoulder_roll", [3.8, 4.6, 6.0, 6.8], [0, 1, 1, 0] if side == "left" else [0, -1, -1, 0])
    return tg


def kick() -> Targets:
    """Weight onto the left foot, right knee up, a front kick, retract, put down; then mirrored."""
    t = time_grid(11.0)
    tg = stand_targets(t)
    st = standing()
    com = [st.centre]
    times = [T_STAND]
    pos, pitch = tg.foot_pos, np.zeros((t.shape[0], 2))
    for k, (side, t0) in enumerate(((RIGHT, T_STAND), (LEFT, 5.9))):
        stance = st.feet_xy[1 - side] + np.array([0.0, -0.015 if side == RIGHT else 0.015])  # 1.5 cm inside
        times += [t0 + 1.0, t0 + 3.3, t0 + 4.2]
        com += [stance, stance, st.centre]
        keys = [t0 + 1.2, t0 + 1.45, t0 + 1.8, t0 + 2.15, t0 + 2.5, t0 + 2.9, t0 + 3.15]
        inward = -0.06 if side == LEFT else 0.06  # the lifted foot hangs under its hip
        offs = np.array([[0, 0, 0], [0, 0, 0.03], [-0.02, inward, 0.12], [0.25, inward, 0.2], [-0.02, inward, 0.12],
                         [0.0, 0, 0.03], [0, 0, 0]])
        pos[:, side] = pos[:, side] + keyframes(t, keys, offs)
        pitch[:, side] += keyframes(t, keys, [0, 0, 0.15, 0.35, 0.15, 0, 0])
        _set_arm(tg, t, "left" if side == RIGHT else "right", "shoulder_pitch", keys[2:5], [0, -0.4, 0])
        _set_arm(tg, t, "right" if side == RIGHT else "left", "shoulder_pitch", keys[2:5], [0, 0.4, 0])
    tg.com_xy = keyframes(t, times, com)
    tg.foot_pos, tg.foot_pitch = pos, pitch
    tg.pelvis_z = tg.pelvis_z - 0.04 * keyframes(t, [T_STAND, 2.2, 4.5, 5.4, 6.9, 9.2, 10.1], [0, 1, 1, 0, 1, 1, 0])
    return tg


def arm_wave() -> Targets:
    """Right arm up and waving overhead, then a forward reach with the left arm, a slight torso turn."""
    t = time_grid(10.0)
    tg = stand_targets(t)
    up = keyframes(t, [T_STAND, 2.4, 5.4, 6.4], [0, 1, 1, 0])
    tg.posture[:, J["right_shoulder_pitch_joint"]] -= 2.4 * up
    tg.posture[:, J["right_shoulder_roll_joint"]] -= 0.25 * up
    tg.posture[:, J["right_elbow_joint"]] -= 0.2 * up
    wave = gait.window(t, 2.4, 5.4, 0.4) * np.sin(2.0 * np.pi * 1.25 * (t - 2.4))
    tg.posture[:, J["right_shoulder_roll_joint"]] -= 0.35 * wave
    tg.posture[:, J["right_elbow_joint"]] += 0.3 * wave
    reach = keyframes(t, [5.6, 7.0, 7.6, 8.8], [0, 1, 1, 0])
    tg.posture[:, J["left_shoulder_pitch_joint"]] -= 1.6 * reach
    tg.posture[:, J["left_elbow_joint"]] -= 0.5 * reach
    tg.torso_rpy[:, 1] = 0.12 * reach
    tg.torso_rpy[:, 2] = -0.25 * reach + 0.15 * up
    return tg


def _quintic(t0: float, t1: float, start, end, t: np.ndarray) -> np.ndarray:
    """Quintic on [t0, t1] matching (position, velocity, acceleration) at both ends (closed form, Horner)."""
    (p0, v0, a0), (p1, v1, a1) = start, end
    h = t1 - t0
    c = [p0, v0, 0.5 * a0,
         (20.0 * (p1 - p0) - (8.0 * v1 + 12.0 * v0) * h - (3.0 * a0 - a1) * h**2) / (2.0 * h**3),
         (30.0 * (p0 - p1) + (14.0 * v1 + 16.0 * v0) * h + (3.0 * a0 - 2.0 * a1) * h**2) / (2.0 * h**4),
         (12.0 * (p1 - p0) - 6.0 * (v1 + v0) * h - (a0 - a1) * h**2) / (2.0 * h**5)]
    s = t - t0
    out = np.full(s.shape, c[5])
    for k in range(4, -1, -1):
        out = out * s + c[k]
    return out


def jump_heights(t: np.ndarray, t_jump: float, z0: float, crouch: float = 0.09, v0: float = 0.7,
                 clearance: float = 0.02, extend: float = 0.0, push: float = 0.35, land: float = 0.35
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Height plan, feet height and crouch fraction (< 0 above standing) for one jump taking off at ``t_jump``.

    Crouch by ``crouch``, push off to ``z0 + extend`` at ``v0`` m/s with the acceleration reaching -g at
    take-off (the feet unload), ballistic flight, landing mirrored. Leg length = pelvis - feet height, with
    the feet following ``clearance`` * 64 s^3 (1 - s)^3 over the flight: they leave and touch the floor with
    zero velocity and acceleration, so the joint trajectories stay C2 through take-off and landing.
    """
    t_fly = 2.0 * v0 / GRAVITY
    z_low, z_to = z0 - crouch, z0 + extend
    t_down = t_jump + t_fly
    segments = [  # (t0, t1, start (z, v, a), end (z, v, a))
        (t_jump - push - 0.9, t_jump - push, (z0, 0, 0), (z_low, 0, 0)),
        (t_jump - push, t_jump, (z_low, 0, 0), (z_to, v0, -GRAVITY)),
        (t_down, t_down + land, (z_to, -v0, -GRAVITY), (z_low, 0, 0)),
        (t_down + land, t_down + land + 1.0, (z_low, 0, 0), (z0, 0, 0)),
    ]
    pelvis = np.full(t.shape, z0)
    for t0, t1, a, b in segments:
        inside = (t >= t0) & (t < t1)
        pelvis[inside] = _quintic(t0, t1, a, b, t[inside])
    flight = (t >= t_jump) & (t < t_down)
    tau = t[flight] - t_jump
    pelvis[flight] = z_to + v0 * tau - 0.5 * GRAVITY * tau**2
    feet = np.zeros(t.shape)
    s = tau / t_fly
    feet[flight] = clearance * 64.0 * s**3 * (1.0 - s) ** 3
    return pelvis, feet, (z0 - pelvis) / crouch


def jump_small() -> Targets:
    """Two small vertical jumps (0.7 m/s take-off, 2.5 cm COM rise, 2 cm foot clearance), crouch and landing."""
    t = time_grid(8.0)
    tg = stand_targets(t)
    z0 = float(tg.pelvis_z[0])
    pelvis, feet, squat_frac = np.full(t.shape, z0), np.zeros(t.shape), np.zeros(t.shape)
    for t_jump in (2.6, 5.4):
        p, f, q = jump_heights(t, t_jump, z0)
        pelvis, feet, squat_frac = pelvis + (p - z0), feet + f, squat_frac + q
    tg.pelvis_z = pelvis
    tg.com_z = standing().com_z + (pelvis - z0)  # the whole-body COM follows the vertical plan: ballistic in flight
    tg.foot_pos[:, :, 2] = feet[:, None]
    tg.pelvis_rpy[:, 1] = 0.25 * squat_frac
    tg.torso_rpy[:, 1] = 0.15 * squat_frac
    for side in ("left", "right"):
        tg.posture[:, J[f"{side}_shoulder_pitch_joint"]] += 0.6 * squat_frac
    return tg


def crouch_walk() -> Targets:
    """Walking forward at 0.25 m/s with the centre of mass 0.04 m lower than standing, torso leaning forward."""
    return walk_targets(Walk(repeat((0.15, 0.0, 0.0), 11, 1), period=0.6, double_support=0.15, pelvis_drop=0.04,
                             height=0.05, toe_down=0.35, lean=0.15, arm_gain=0.5))


__all__ = ["squat", "lunge", "kick", "arm_wave", "jump_small", "crouch_walk", "LEFT", "RIGHT"]
