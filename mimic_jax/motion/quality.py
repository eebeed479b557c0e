"""Physical plausibility checks for a motion clip (kinematic: no dynamics are simulated).

``clip_quality(clip, model)`` measures, from the clip's joints and body poses:
- joint limits: smallest margin to the hard range (and to the 90 % soft range) over all joints and frames;
- floor: the sole of each foot is the lowest point of its 7 collision capsules (segment end minus the
  0.01 m radius); ``floor_penetration`` is the deepest sole below z = 0;
- contact: a foot is in contact when its sole is within ``CONTACT_HEIGHT`` of the floor; ``foot_slide`` is
  the largest horizontal slip speed, over the capsule-end spheres of a foot in contact that are within
  ``SUPPORT_BAND`` of its lowest point (those bearing the weight), of the material point at the bottom of
  the sphere (``v_centre + omega x (0, 0, -r)``): sliding and twisting count, rolling over the toe does not;
- planted feet on other soles: ``foot_slide_p95_<sole>`` puts each sole of ``SOLES`` (ours, and sole
  shapes of other G1 models) under the clip's feet and, at every frame where a foot has sole points within
  ``CONTACT_HEIGHT`` of the floor, takes the slip speed of the slowest of them (a planted foot, or one
  rolling over an edge, has one that does not move); the 95th percentile over those frames. A foot that
  pivots about our toe tip is planted for our sole but slides on a sole whose toe is elsewhere;
- balance: the centre of mass (COM) projection against the support polygon (convex hull of the capsule
  ends of the feet in contact), signed distance in metres, positive inside. Reported separately for
  double and single support; ``zmp_*`` use the ZMP of the cart-table model
  ``p = c_xy - c_z * c''_xy / (g + c''_z)`` instead of the COM (dynamic walking keeps the ZMP, not the
  COM, over the stance foot);
- self-collision: ``self_clearance``, the smallest distance between two robot collision geoms that may
  collide with each other (``g1.load_model(collisions="self")``), over the clip (capped at ``SELF_MARGIN``);
- smoothness: largest |joint acceleration| (and velocity) from finite differences at the clip rate.

``BOUNDS`` are the limits ``check_clip_quality`` enforces; built-in synthesized clips may relax some
(``bounds_for``, from ``synth.CLIPS[name].bounds``).
"""

from __future__ import annotations

import mujoco
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.motion.ik import soft_limits

CONTACT_HEIGHT = 0.01  # m
FOOT_RADIUS = 0.01
SUPPORT_BAND = 0.003  # m: capsule ends this close to a foot's lowest point bear its weight
GRAVITY = 9.81
# Sole shapes: sphere centres (x, y, z) in the ankle-roll frame and their radius. "ours" is computed from the
# model's foot capsules (both ends of each of the 7). "unitree_urdf": the 4 spheres of 5 mm (toe and heel
# corners) of Unitree's G1 URDF (g1_29dof_rev_1_0), the foot of the public tracker. "long_box": a flat
# 23.4 x 9 cm rectangle reaching 2.4 cm beyond our capsule ends at toe and heel (corners, edge midpoints).
_BOX_X, _BOX_Y = (-0.078, 0.026, 0.156), (-0.045, 0.0, 0.045)
SOLES: dict[str, tuple[np.ndarray | None, float]] = {
    "ours": (None, FOOT_RADIUS),
    "unitree_urdf": (np.array([[-0.05, 0.025, -0.03], [-0.05, -0.025, -0.03], [0.12, 0.03, -0.03],
                               [0.12, -0.03, -0.03]]), 0.005),
    "long_box": (np.array([[x, y, -0.035] for x in _BOX_X for y in _BOX_Y if (x, y) != (0.026, 0.0)]), 0.0),
}
SELF_MARGIN = 0.05  # m: self-clearances above this are reported as this
BOUNDS = {
    "self_clearance": 0.002,  # m, at least: limbs keep 2 mm apart
    "floor_penetration": 0.005,  # m, at most
    "foot_slide": 0.02,  # m/s, at most
    **{f"foot_slide_p95_{sole}": 0.005 for sole in SOLES if sole != "ours"},  # m/s, at most
    "com_margin_double": -0.03,  # m, at least (COM may be 3 cm outside the polygon)
    "joint_acc": 150.0,  # rad/s^2, at most
    "joint_limit_margin": 0.0,  # rad, at least
}
SIDES = ("left", "right")


def _foot_geoms(model: mujoco.MjModel) -> list[list[int]]:
    return [[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{side}_foot{k}_collision") for k in range(1, 8)]
            for side in SIDES]


def our_sole(model: mujoco.MjModel, side: str = "left") -> np.ndarray:
    """Both ends [14, 3] of every foot capsule axis of our model, in the ankle-roll frame."""
    pts = []
    for g in _foot_geoms(model)[SIDES.index(side)]:
        axis = np.empty(9)
        mujoco.mju_quat2Mat(axis, model.geom_quat[g])
        half = model.geom_size[g, 1] * axis.reshape(3, 3)[:, 2]
        pts += [model.geom_pos[g] + half, model.geom_pos[g] - half]
    return np.array(pts)


def _mirror(points: np.ndarray, side: str) -> np.ndarray:
    return points if side == "left" else points * np.array([1.0, -1.0, 1.0])


def foot_points(clip, model: mujoco.MjModel, sole: np.ndarray | None = None) -> np.ndarray:
    """World positions [T, 2, K, 3] of sole points under both feet (left, right).

    ``sole`` [K, 3] in the left ankle-roll frame (mirrored for the right foot); default: our foot's capsule
    ends (``our_sole``, K = 14).
    """
    out = []
    for side in SIDES:
        b = g1.BODY_NAMES.index(f"{side}_ankle_roll_link")
        local = our_sole(model, side) if sole is None else _mirror(sole, side)
        rot = np.empty((clip.num_frames, 9))
        for t in range(clip.num_frames):
            mujoco.mju_quat2Mat(rot[t], clip.body_quat_w[t, b])
        out.append(clip.body_pos_w[:, b, None, :] + np.einsum("tij,kj->tki", rot.reshape(-1, 3, 3), local))
    return np.stack(out, axis=1)


def _point_slip(clip, points: np.ndarray, radius: float, dt: float) -> np.ndarray:
    """[T, 2, K] horizontal speed of the material point at the bottom of each sole sphere:
    ``v_centre + omega x (0, 0, -r)`` (sliding and twisting count, rolling does not)."""
    vel = np.gradient(points, dt, axis=0)
    omega = np.stack([clip.body_ang_vel_w[:, g1.BODY_NAMES.index(f"{side}_ankle_roll_link")] for side in SIDES],
                     axis=1)  # [T, 2, 3]
    bottom = np.cross(omega[:, :, None, :], np.array([0.0, 0.0, -radius]))
    return np.linalg.norm((vel + bottom)[..., :2], axis=-1)


def _slip_speed(clip, points: np.ndarray, dt: float) -> np.ndarray:
    """[T, 2] largest horizontal slip of the capsule-end spheres of each foot that are near the floor."""
    slip = _point_slip(clip, points, FOOT_RADIUS, dt)
    bottom_z = points[..., 2] - FOOT_RADIUS
    near = (bottom_z < CONTACT_HEIGHT) & (bottom_z < bottom_z.min(axis=2, keepdims=True) + SUPPORT_BAND)
    return np.where(near, slip, 0.0).max(axis=2)


def planted_slip(clip, model: mujoco.MjModel, sole: np.ndarray | None, radius: float) -> np.ndarray:
    """Slip speed of the slowest touching point of the sole, at every (frame, foot) with a touching point."""
    points = foot_points(clip, model, sole)
    slip = _point_slip(clip, points, radius, 1.0 / clip.fps)
    touching = points[..., 2] - radius < CONTACT_HEIGHT
    slowest = np.where(touching, slip, np.inf).min(axis=2)
    return slowest[touching.any(axis=2)]


def com_trajectory(clip, model: mujoco.MjModel) -> np.ndarray:
    """Whole-body centre of mass [T, 3] by forward kinematics of the clip's root pose and joints."""
    data = mujoco.MjData(model)
    com = np.empty((clip.num_frames, 3))
    qpos = g1.qpos_from(clip.root_pos, clip.root_quat, clip.joint_pos)
    for t in range(clip.num_frames):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        com[t] = data.subtree_com[1]
    return com


def self_clearance(clip) -> float:
    """Smallest distance (m, negative: penetration) between robot geoms that collide with each other (the
    self-collision pairs of our model), at most ``SELF_MARGIN``."""
    probe = g1.load_model(collisions="self")
    robot = (probe.geom_bodyid > 0) & (probe.geom_contype > 0)
    probe.geom_margin[robot] = SELF_MARGIN / 2  # a pair's margin is the sum: contacts from SELF_MARGIN on
    probe.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_MIDPHASE  # its bounding boxes leave out margins
    data = mujoco.MjData(probe)
    qpos = g1.qpos_from(clip.root_pos, clip.root_quat, clip.joint_pos)
    closest = SELF_MARGIN
    for q in qpos:
        data.qpos[:] = q
        mujoco.mj_kinematics(probe, data)
        mujoco.mj_collision(probe, data)
        for c in data.contact[:data.ncon]:
            if robot[c.geom[0]] and robot[c.geom[1]]:
                closest = min(closest, float(c.dist))
    return closest


def _cross(o, a, b) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise hull of 2-D points (monotone chain)."""
    pts = sorted(map(tuple, np.round(points, 9)))
    if len(pts) <= 2:
        return np.array(pts)

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and _cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(pts[::-1]))


def signed_distance(point: np.ndarray, hull: np.ndarray) -> float:
    """Distance from ``point`` to the boundary of a convex CCW polygon: positive inside, negative outside."""
    a, b = hull, np.roll(hull, -1, axis=0)
    edge = b - a
    length = np.maximum(np.linalg.norm(edge, axis=1), 1e-12)
    rel = point - a
    inside_dist = (edge[:, 0] * rel[:, 1] - edge[:, 1] * rel[:, 0]) / length
    s = np.clip(np.sum(rel * edge, axis=1) / length**2, 0.0, 1.0)
    seg_dist = np.linalg.norm(rel - s[:, None] * edge, axis=1)
    return float(np.min(inside_dist)) if np.all(inside_dist >= 0) else -float(np.min(seg_dist))


def _support_margins(points, contact, xy) -> np.ndarray:
    """Signed distance of ``xy`` [T, 2] to the hull of the contacting feet (NaN in flight)."""
    out = np.full(xy.shape[0], np.nan)
    for t in range(xy.shape[0]):
        feet = [points[t, s, :, :2] for s in range(2) if contact[t, s]]
        if feet:
            out[t] = signed_distance(xy[t], convex_hull(np.concatenate(feet)))
    return out


def _min(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.min(x)) if x.size else float("nan")


def clip_quality(clip, model: mujoco.MjModel | None = None) -> dict[str, float]:
    """Plausibility metrics of a clip; see the module docstring (lengths in m, angles in rad)."""
    model = model if model is not None else g1.load_model()
    dt = 1.0 / clip.fps
    table = g1.joint_table()
    lo, hi = soft_limits()
    q = clip.joint_pos
    points = foot_points(clip, model)
    sole = points[..., 2].min(axis=2) - FOOT_RADIUS  # [T, 2]
    contact = sole < CONTACT_HEIGHT
    speed = _slip_speed(clip, points, dt)
    com = com_trajectory(clip, model)
    acc = np.gradient(np.gradient(com, dt, axis=0), dt, axis=0)
    zmp = com[:, :2] - com[:, 2:3] * acc[:, :2] / (GRAVITY + acc[:, 2:3])
    com_m, zmp_m = _support_margins(points, contact, com[:, :2]), _support_margins(points, contact, zmp)
    double, single = contact.all(axis=1), contact.sum(axis=1) == 1
    qdd = np.diff(q, 2, axis=0) / dt**2
    return {
        "duration": clip.duration,
        "joint_limit_margin": float(np.min(np.minimum(q - table.lower, table.upper - q))),
        "soft_limit_margin": float(np.min(np.minimum(q - lo, hi - q))),
        "floor_penetration": float(max(0.0, -sole.min())),
        "min_sole_height": float(sole.min()),
        "foot_slide": float(np.max(np.where(contact, speed, 0.0))),
        "com_margin_double": _min(np.where(double, com_m, np.nan)),
        "com_margin_single": _min(np.where(single, com_m, np.nan)),
        "zmp_margin_double": _min(np.where(double, zmp_m, np.nan)),
        "zmp_margin_single": _min(np.where(single, zmp_m, np.nan)),
        "flight_fraction": float(np.mean(~contact.any(axis=1))),
        **sole_slides(clip, model),
        "self_clearance": self_clearance(clip),
        "joint_acc": float(np.max(np.abs(qdd))) if len(qdd) else 0.0,
        "joint_vel": float(np.max(np.abs(np.diff(q, axis=0) / dt))),
        "root_height_min": float(clip.root_pos[:, 2].min()),
    }


def sole_slides(clip, model: mujoco.MjModel) -> dict[str, float]:
    """``foot_slide_p95_<sole>`` (m/s) for every sole of ``SOLES``; 0 for a clip without contact."""
    out = {}
    for name, (sole, radius) in SOLES.items():
        slip = planted_slip(clip, model, sole, radius)
        out[f"foot_slide_p95_{name}"] = float(np.percentile(slip, 95)) if slip.size else 0.0
    return out


def bounds_for(clip) -> dict[str, float]:
    """``BOUNDS`` with the overrides of a built-in synthesized clip (its ``source`` is ``synth:NAME ...``)."""
    source = getattr(clip, "source", "") or ""
    if source.startswith("synth:"):
        from mimic_jax.motion import synth  # lazy: synth imports the whole generator

        spec = synth.CLIPS.get(source[len("synth:"):].split()[0])
        if spec is not None:
            return {**BOUNDS, **spec.bounds}
    return dict(BOUNDS)


def check_clip_quality(clip, model: mujoco.MjModel | None = None, bounds: dict | None = None,
                       metrics: dict | None = None) -> list[str]:
    """Problems found (empty when the clip passes), one readable line each.

    Bounds: ``BOUNDS`` (a built-in synthesized clip gets its own overrides, see ``bounds_for``), updated
    with ``bounds``.
    """
    bounds = {**bounds_for(clip), **(bounds or {})}
    m = metrics if metrics is not None else clip_quality(clip, model)
    problems = []
    for key, bound in bounds.items():
        value = m[key]
        at_most = key in ("floor_penetration", "foot_slide", "joint_acc") or key.startswith("foot_slide_p95")
        if np.isnan(value):
            continue
        if (at_most and value > bound) or (not at_most and value < bound):
            word = "at most" if at_most else "at least"
            problems.append(f"{key} = {value:.4g}, expected {word} {bound:g}")
    return problems
