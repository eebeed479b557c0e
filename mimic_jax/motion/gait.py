"""Gait and skill patterns: footstep plans, swing-foot trajectories and a centre-of-mass plan.

Everything here is plain element-wise numpy on a fixed time grid (50 fps) and deterministic. Profiles are
built from the quintic smoothstep ``10s^3 - 15s^4 + 6s^5`` (zero velocity and acceleration at both ends), so
the targets that the inverse kinematics follows are C2 (the swing lift is C1: it starts with a finite
upward acceleration) and the joint trajectories have no velocity jumps.

The centre of mass follows the linear inverted pendulum (LIPM): ``zmp = com - (z_c / g) * com''``. Given a
reference ZMP (the stance foot in single support, a smooth hand-over in double support), the COM is the
least-squares solution over the whole clip of the LIPM equation plus a small jerk penalty, with the COM at
rest at both ends. This is ZMP preview control solved in one batch (the preview window is the clip).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mimic_jax.motion.linalg import solve_spd

GRAVITY = 9.81
LEFT, RIGHT = 0, 1
SWING_LIFT_END = 0.4  # swing phase fraction where the foot reaches full height
SWING_MOVE = 0.12  # the foot moves horizontally only in [SWING_MOVE, 1 - SWING_MOVE] of the swing
TOE_DOWN = (0.3, 0.45, 0.8)  # swing phases: toe-down pitch peaks at [0], falls from [1] to [2] (toe-off)
AIR_PITCH = (0.4, 0.5, 0.85)  # the same without toe-off: the pitch starts in the air, later and slower
TOE_AHEAD = 0.092  # m, sole centre (foot site) to the bottom of the frontmost capsule end
SOLE_GAP = 0.002  # m, the foot site sits this far below the sole
# Without a toe-off, the swing foot starts to pitch only once its toe is this high: above the 1 cm contact
# band, with room for a sole up to 3 cm longer than ours, whose toe the pitch lowers (0.03 sin 0.35 = 1 cm).
PITCH_CLEARANCE = 0.02  # m


def smoothstep(s) -> np.ndarray:
    """Quintic 0 -> 1 on [0, 1], clamped outside; zero slope and curvature at both ends."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, 1.0)
    return s * s * s * (10.0 + s * (-15.0 + 6.0 * s))


def ramp(t, t0: float, t1: float) -> np.ndarray:
    """Smooth 0 -> 1 between times ``t0`` and ``t1``."""
    return smoothstep((np.asarray(t) - t0) / (t1 - t0))


def window(t, t0: float, t1: float, rise: float) -> np.ndarray:
    """Smooth 0 -> 1 -> 0: rises over ``[t0, t0 + rise]``, falls over ``[t1 - rise, t1]``."""
    return ramp(t, t0, t0 + rise) * (1.0 - ramp(t, t1 - rise, t1))


def keyframes(t, times, values) -> np.ndarray:
    """Piecewise smoothstep interpolation through ``(times[i], values[i])`` (held outside the range)."""
    t = np.asarray(t, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    out = np.broadcast_to(values[0], t.shape + values.shape[1:]).copy()
    for i in range(1, len(times)):
        a = ramp(t, times[i - 1], times[i]) if times[i] > times[i - 1] else (t >= times[i]).astype(float)
        a = a.reshape(a.shape + (1,) * (values.ndim - 1))
        out = out + a * (values[i] - values[i - 1])
    return out


def rotate2(yaw: float, v) -> np.ndarray:
    """The 2-D vector ``v`` rotated by ``yaw`` (element-wise, no BLAS)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


@dataclasses.dataclass(frozen=True)
class Step:
    """One step: foot ``side`` leaves the floor at ``t_lift`` and lands at ``t_land`` on ``xy`` / ``yaw``."""

    side: int
    t_lift: float
    t_land: float
    xy: tuple[float, float]
    yaw: float


@dataclasses.dataclass
class FootPlan:
    """Per-frame foot targets (sole centre position, yaw) and planned contact."""

    pos: np.ndarray  # [T, 2, 3] sole-centre position (z = height of the sole above the floor)
    yaw: np.ndarray  # [T, 2]
    pitch: np.ndarray  # [T, 2] toe down > 0
    contact: np.ndarray  # [T, 2] bool: foot planned on the floor


def lift_profile(phase) -> np.ndarray:
    """Swing height fraction: sin^2 rise over [0, SWING_LIFT_END], hold, mirrored fall (C1, finite jerk).

    Starting with a finite upward acceleration (not zero, as a quintic would) clears the 1 cm contact
    band early in the swing, so the foot can move forward for most of it.
    """
    s = np.clip(np.minimum(phase, 1.0 - phase) / SWING_LIFT_END, 0.0, 1.0)
    return np.sin(0.5 * np.pi * s) ** 2


def clearance_phase(height: float, clearance: float = PITCH_CLEARANCE) -> float:
    """Swing phase at which ``lift_profile`` lifts a foot of swing ``height`` to ``clearance``."""
    if height <= clearance:
        raise ValueError(f"swing height {height} m does not clear {clearance} m")
    return SWING_LIFT_END * 2.0 / np.pi * float(np.arcsin(np.sqrt(clearance / height)))


def _pitch_profile(t, phase, t0: float, t1: float, heel_off: float, height: float) -> np.ndarray:
    """0 -> 1 -> 0 profile of the toe-down pitch over one swing.

    ``heel_off`` > 0: rises from ``heel_off`` seconds before lift-off (a toe-off: the heel rises about the
    toe while the toe is on the floor) to swing phase ``TOE_DOWN[0]``, falls over ``TOE_DOWN[1:]``.
    ``heel_off`` = 0: rises from the phase where the toe clears ``PITCH_CLEARANCE`` (so the foot never
    turns while any sole could touch the floor) to ``AIR_PITCH[0]``, falls over ``AIR_PITCH[1:]``.
    """
    if heel_off > 0:
        peak, c, e = TOE_DOWN
        rise = smoothstep((t - t0 + heel_off) / (heel_off + peak * (t1 - t0)))
    else:
        peak, c, e = AIR_PITCH
        start = clearance_phase(height)
        rise = smoothstep((phase - start) / (peak - start))
    return rise * (1.0 - smoothstep((phase - c) / (e - c)))


def toe_pivot(tilt: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Foot-site displacement [T, 3] when a flat foot pitches toes down by ``tilt`` about its toe tip.

    The toe tip is ``TOE_AHEAD`` ahead of and ``SOLE_GAP`` above the foot site; the site moves forward and up.
    """
    heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
    forward = TOE_AHEAD * (1.0 - np.cos(tilt)) - SOLE_GAP * np.sin(tilt)
    up = TOE_AHEAD * np.sin(tilt) + SOLE_GAP * (1.0 - np.cos(tilt))
    return np.concatenate([forward[:, None] * heading, up[:, None]], axis=-1)


def foot_plan(t: np.ndarray, start_xy, start_yaw, steps: list[Step], height: float = 0.07,
              toe_down: float = 0.0, heel_off: float = 0.0, inward: float = 0.0) -> FootPlan:
    """Feet trajectories from a footstep list; the swing lifts, moves, then lands with the sole flat.

    ``toe_down`` (rad): in early swing the foot pitches toes down about its toe tip (the toe keeps the
    planned height, the heel rises), which spares the trailing ankle the dorsiflexion that a flat foot
    behind a flexing knee needs. With ``heel_off`` = 0 the foot leaves the floor flat and pitches once its
    toe is ``PITCH_CLEARANCE`` high: feet in contact are flat and still, so they stay planted whatever the
    shape of the sole. ``heel_off`` > 0 (s) starts the pitch that long before lift-off instead, while the
    toe is on the floor (a toe-off: planted for our sole, whose toe tip is the pivot, not for other
    soles). The foot is flat again well before it lands. ``inward`` (m): in the air the foot
    swings that much towards the other foot (under its hip: less ankle roll when the body leans over the
    stance foot).
    """
    n = t.shape[0]
    pos = np.zeros((n, 2, 3))
    yaw = np.zeros((n, 2))
    pitch = np.zeros((n, 2))
    contact = np.ones((n, 2), dtype=bool)
    xy = [np.asarray(start_xy[s], dtype=np.float64) for s in (LEFT, RIGHT)]
    ang = [float(start_yaw[s]) for s in (LEFT, RIGHT)]
    for s in (LEFT, RIGHT):
        pos[:, s, :2], yaw[:, s] = xy[s], ang[s]
    for step in steps:
        s, t0, t1 = step.side, step.t_lift, step.t_land
        phase = (t - t0) / (t1 - t0)
        move = smoothstep((phase - SWING_MOVE) / (1.0 - 2.0 * SWING_MOVE))[:, None]
        after = t >= t0
        new_xy = np.asarray(step.xy, dtype=np.float64)
        pos[after, s, :2] = (xy[s] + move * (new_xy - xy[s]))[after]
        yaw[after, s] = (ang[s] + move[:, 0] * (step.yaw - ang[s]))[after]
        tilt = toe_down * _pitch_profile(t, phase, t0, t1, heel_off, height) if toe_down else 0.0 * t
        pitch[:, s] += tilt
        pos[:, s] += toe_pivot(tilt, yaw[:, s])
        pos[:, s, 2] += height * lift_profile(phase)
        across = smoothstep((phase - SWING_MOVE) / 0.3) * smoothstep((1.0 - SWING_MOVE - phase) / 0.3)
        toward = -1.0 if s == LEFT else 1.0  # towards the other foot, in the foot's heading frame
        pos[:, s, :2] += (inward * toward * across)[:, None] * np.stack([-np.sin(yaw[:, s]), np.cos(yaw[:, s])], -1)
        contact[(t > t0) & (t < t1), s] = False
        xy[s], ang[s] = new_xy, step.yaw
    return FootPlan(pos=pos, yaw=yaw, pitch=pitch, contact=contact)


def zmp_reference(t: np.ndarray, plan: FootPlan, steps: list[Step], t_shift: float, shift: float = 0.4,
                  roll: float = 0.0) -> np.ndarray:
    """Reference ZMP: feet midpoint, then over the stance foot in each single support, smooth hand-overs.

    ``t_shift`` is when the weight starts moving onto the first stance foot (``shift`` seconds before the
    first lift-off); after the last landing the ZMP returns to the feet midpoint over ``shift`` seconds.
    ``roll`` (m): during each single support the ZMP rolls from the sole centre that far towards the toe
    (heel-to-toe; needed when the stance heel rises before the other foot lands).
    """
    idx = lambda time: int(np.clip(np.searchsorted(t, time), 0, t.shape[0] - 1))  # noqa: E731
    mid = lambda i: plan.pos[i, :, :2].mean(axis=0)  # noqa: E731
    times, points = [t[0], t_shift], [mid(0), mid(0)]
    for step in steps:
        i = idx(step.t_lift)
        stance, yaw = plan.pos[i, 1 - step.side, :2], plan.yaw[i, 1 - step.side]
        times += [step.t_lift, step.t_land]
        points += [stance, stance + roll * np.array([np.cos(yaw), np.sin(yaw)])]
    t_end = steps[-1].t_land + shift if steps else t_shift
    times.append(t_end)
    points.append(mid(idx(t_end)))
    return keyframes(t, np.array(times), np.array(points))


def _add_stencil(normal, rhs, coef, weight: float, targets) -> None:
    """Adds rows ``sum_a coef[a] * c[s + a] = targets[s]`` (one per start ``s``) to the normal equations."""
    starts = np.arange(targets.shape[0])
    for a, ca in enumerate(coef):
        rhs[starts + a] += weight * ca * targets
        for b, cb in enumerate(coef):
            normal[starts + a, starts + b] += weight * ca * cb


def lipm_com(zmp: np.ndarray, com_height: float, dt: float, jerk_weight: float = 1e-7,
             rest: tuple[float, float] = (0.06, 0.06)) -> np.ndarray:
    """COM [T, D] whose LIPM ZMP best follows ``zmp`` [T, D]; at rest on the reference at both ends.

    Least squares over the whole clip: ``zmp_t = c_t - (z_c / g) c''_t`` (weight 1), jerk (``jerk_weight``),
    and the COM pinned to the reference (weight 1e6) for the first and last ``rest`` seconds (the preview
    would otherwise start moving the COM about 0.6 s before the ZMP moves). The banded normal equations
    are solved with ``linalg.solve_spd`` so that the result has the same bits on every machine.
    """
    n = zmp.shape[0]
    k = com_height / GRAVITY / dt**2
    normal, rhs = np.zeros((n, n)), np.zeros(zmp.shape)
    _add_stencil(normal, rhs, (-k, 1.0 + 2.0 * k, -k), 1.0, zmp[1:-1])
    _add_stencil(normal, rhs, tuple(c / dt**3 for c in (-1.0, 3.0, -3.0, 1.0)), jerk_weight,
                 np.zeros((n - 3,) + zmp.shape[1:]))
    pin = np.zeros(n, dtype=bool)
    pin[:max(3, int(round(rest[0] / dt)))] = True
    pin[n - max(3, int(round(rest[1] / dt))):] = True
    target = np.where(np.arange(n)[:, None] < n // 2, zmp[0], zmp[-1])
    normal[pin, pin] += 1e6
    rhs[pin] += 1e6 * target[pin]
    return solve_spd(normal, rhs, bandwidth=3)


def body_path_steps(t_start: float, deltas, period: float, double_support: float, half_width: float,
                    lead: int = LEFT, pattern: str = "alternate") -> tuple[list[Step], float]:
    """Footsteps for a body moving by ``deltas[k]`` = (dx, dy, dyaw), in its own frame, at step ``k``.

    ``alternate``: walking, the feet take turns (starting with ``lead``) and each passes the other; a final
    step brings the trailing foot beside the leading one. ``shuffle``: side steps and turns in place, each
    delta is a pair of steps: the foot on the side of the motion opens, the other closes to it.
    Returns the steps and the time of the last landing.
    """
    pose = np.zeros(3)  # body x, y, yaw
    steps, t0 = [], t_start
    swing = period - double_support

    def place(side: int, body: np.ndarray) -> Step:
        lateral = half_width if side == LEFT else -half_width
        xy = body[:2] + rotate2(body[2], (0.0, lateral))
        return Step(side, t0, t0 + swing, (float(xy[0]), float(xy[1])), float(body[2]))

    side = lead
    for delta in deltas:
        pose = np.array([*(pose[:2] + rotate2(pose[2], delta[:2])), pose[2] + delta[2]])
        if pattern == "alternate":
            steps.append(place(side, pose))
            side = 1 - side
        else:
            opening = LEFT if (delta[1] > 0 or delta[2] > 0) else RIGHT
            steps.append(place(opening, pose))
            t0 += period
            steps.append(place(1 - opening, pose))
        t0 += period
    if pattern == "alternate":
        steps.append(place(side, pose))
        t0 += period
    return steps, t0 - double_support


def arm_swing(plan: FootPlan, heading: np.ndarray, gain: float = 0.8) -> np.ndarray:
    """Shoulder-pitch offsets [T, 2] (left, right) opposite to the legs: the arm of the leading foot goes back."""
    rel = plan.pos[:, LEFT, :2] - plan.pos[:, RIGHT, :2]
    forward = rel[:, 0] * np.cos(heading) + rel[:, 1] * np.sin(heading)
    return np.stack([gain * forward, -gain * forward], axis=-1)
