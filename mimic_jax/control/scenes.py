"""Scenes: obstacle fields (vertical cylinders and boxes standing on the floor), their signed distance, goals,
and validation with one-line refusals.

An :class:`Obstacles` holds a fixed number of cylinder and box slots with an ``active`` flag each, so scenes
with different obstacle counts share one compiled program (inactive slots are far away). Everything is in the
world frame, metres. Signed distances are exact for each primitive (negative inside) and the scene's is their
minimum; they are differentiable (gradients stay finite at the centre lines and on the surfaces).

A scene file (``play --scene FILE``) is JSON::

    {"goal": [6.0, 1.0],
     "cylinders": [{"center": [3.0, 0.2], "radius": 0.25, "height": 2.0}],
     "boxes": [{"center": [4.5, -1.0, 0.5], "half_size": [0.3, 0.6, 0.5], "yaw": 0.3}]}
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

FAR = 1e3  # m: the distance an inactive slot reports


class SceneError(ValueError):
    """A scene that cannot be run (goal inside an obstacle, malformed file, ...); one line."""


@struct.dataclass
class Obstacles:
    """Obstacle slots, world frame. Leading batch dims are allowed (one scene per episode)."""

    cylinder_center: jax.Array  # [..., C, 2] x, y of the axis
    cylinder_radius: jax.Array  # [..., C]
    cylinder_height: jax.Array  # [..., C] from the floor (z = 0) up
    cylinder_active: jax.Array  # [..., C] bool
    box_center: jax.Array  # [..., B, 3]
    box_half_size: jax.Array  # [..., B, 3] half extents along the box's own axes
    box_yaw: jax.Array  # [..., B] rotation about world z
    box_active: jax.Array  # [..., B] bool

    @property
    def num_slots(self) -> tuple[int, int]:
        return int(self.cylinder_radius.shape[-1]), int(self.box_yaw.shape[-1])


def empty(cylinders: int = 0, boxes: int = 0) -> Obstacles:
    """``cylinders`` + ``boxes`` inactive slots (numpy arrays, one scene)."""
    f = np.float32
    return Obstacles(cylinder_center=np.zeros((cylinders, 2), f), cylinder_radius=np.ones(cylinders, f),
                     cylinder_height=np.ones(cylinders, f), cylinder_active=np.zeros(cylinders, bool),
                     box_center=np.zeros((boxes, 3), f), box_half_size=np.ones((boxes, 3), f),
                     box_yaw=np.zeros(boxes, f), box_active=np.zeros(boxes, bool))


def make_obstacles(cylinders=(), boxes=(), *, slots: tuple[int, int] | None = None) -> Obstacles:
    """Obstacles from ``cylinders`` [(cx, cy, radius, height)] and ``boxes`` [(cx, cy, cz, hx, hy, hz, yaw)],
    padded with inactive slots up to ``slots`` = (C, B) (default: exactly as many as given)."""
    cylinders, boxes = [tuple(c) for c in cylinders], [tuple(b) for b in boxes]
    c_slots, b_slots = slots if slots is not None else (len(cylinders), len(boxes))
    if len(cylinders) > c_slots or len(boxes) > b_slots:
        raise SceneError(f"{len(cylinders)} cylinders and {len(boxes)} boxes do not fit {c_slots} + {b_slots} slots")
    out = empty(c_slots, b_slots)
    for i, (cx, cy, r, h) in enumerate(cylinders):
        out.cylinder_center[i], out.cylinder_radius[i], out.cylinder_height[i] = (cx, cy), r, h
        out.cylinder_active[i] = True
    for i, (cx, cy, cz, hx, hy, hz, yaw) in enumerate(boxes):
        out.box_center[i], out.box_half_size[i], out.box_yaw[i] = (cx, cy, cz), (hx, hy, hz), yaw
        out.box_active[i] = True
    return out


# -- signed distances ---------------------------------------------------------------------------------------------
def safe_norm(x, axis: int = -1):
    """||x|| with a finite (zero) gradient at x = 0."""
    sq = jnp.sum(jnp.square(x), axis=axis)
    positive = sq > 0.0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _outside_inside(d):
    """Exact SDF from per-axis distances d [..., k] to the faces (positive outside): ||max(d, 0)|| + min(max d, 0)."""
    return safe_norm(jnp.maximum(d, 0.0)) + jnp.minimum(jnp.max(d, axis=-1), 0.0)


def sdf_cylinder(points, center, radius, height):
    """Signed distance of points [..., 3] to a vertical cylinder on the floor (axis through ``center`` (x, y),
    from z = 0 to z = ``height``)."""
    radial = safe_norm(points[..., :2] - center) - radius
    vertical = jnp.abs(points[..., 2] - 0.5 * height) - 0.5 * height
    return _outside_inside(jnp.stack([radial, vertical], axis=-1))


def sdf_box(points, center, half_size, yaw):
    """Signed distance of points [..., 3] to a box (centre, half extents, rotated by ``yaw`` about z)."""
    rel = points - center
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    local = jnp.stack([c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1], rel[..., 2]], axis=-1)
    return _outside_inside(jnp.abs(local) - half_size)


def scene_sdf(obs: Obstacles, points) -> jax.Array:
    """Signed distance [...] of points [..., 3] to the nearest active obstacle (``FAR`` if there is none)."""
    p = points[..., None, :]  # against every slot
    cyl = sdf_cylinder(p, obs.cylinder_center, obs.cylinder_radius, obs.cylinder_height)
    box = sdf_box(p, obs.box_center, obs.box_half_size, obs.box_yaw)
    dists = jnp.concatenate([jnp.where(obs.cylinder_active, cyl, FAR), jnp.where(obs.box_active, box, FAR),
                             jnp.full(points.shape[:-1] + (1,), FAR, points.dtype)], axis=-1)
    return jnp.min(dists, axis=-1)


# -- validation -------------------------------------------------------------------------------------------------
def nearest_obstacle(obs: Obstacles, point_xy, height: float = 0.5) -> tuple[float, str]:
    """(signed distance, description) of the active obstacle nearest to a ground point, probed at ``height``."""
    point = np.array([point_xy[0], point_xy[1], height], np.float32)
    best, name = math.inf, "none"
    for i in np.flatnonzero(np.asarray(obs.cylinder_active)):
        d = float(sdf_cylinder(point, obs.cylinder_center[i], obs.cylinder_radius[i], obs.cylinder_height[i]))
        if d < best:
            best, name = d, f"cylinder {i} at ({obs.cylinder_center[i][0]:.2f}, {obs.cylinder_center[i][1]:.2f})"
    for i in np.flatnonzero(np.asarray(obs.box_active)):
        d = float(sdf_box(point, obs.box_center[i], obs.box_half_size[i], obs.box_yaw[i]))
        if d < best:
            best, name = d, f"box {i} at ({obs.box_center[i][0]:.2f}, {obs.box_center[i][1]:.2f})"
    return best, name


def validate(goal_xy, obs: Obstacles, *, start_xy=(0.0, 0.0), clearance: float = 0.3, where: str = "scene") -> None:
    """Refuses (one line) a non-finite goal, or a goal or start within ``clearance`` m of an obstacle."""
    goal_xy = np.asarray(goal_xy, np.float64)
    if goal_xy.shape != (2,) or not np.all(np.isfinite(goal_xy)):
        raise SceneError(f"{where}: the goal must be two finite numbers (x, y), got {goal_xy.tolist()}")
    for label, point in (("goal", goal_xy), ("start", np.asarray(start_xy, np.float64))):
        dist, name = nearest_obstacle(obs, point)
        if dist < clearance:
            inside = "inside" if dist < 0 else f"{dist:.2f} m from"
            raise SceneError(f"{where}: the {label} ({point[0]:.2f}, {point[1]:.2f}) is {inside} {name}; keep "
                             f"it at least {clearance} m clear")


def _numbers(value, size: int, what: str, where: str) -> list[float]:
    ok = isinstance(value, (list, tuple)) and len(value) == size
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok:
        raise SceneError(f"{where}: {what} must be a list of {size} finite numbers, got {value!r}")
    return [float(v) for v in value]


def _positive(value, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise SceneError(f"{where}: {what} must be a positive number, got {value!r}")
    return float(value)


def _parse_obstacles(doc: dict, where: str) -> tuple[list, list]:
    cylinders, boxes = [], []
    for key in ("cylinders", "boxes"):
        if not isinstance(doc.get(key, []), list):
            raise SceneError(f"{where}: '{key}' must be a list, got {doc[key]!r}")
    for i, c in enumerate(doc.get("cylinders", [])):
        at = f"{where}: cylinders[{i}]"
        if not isinstance(c, dict) or set(c) - {"center", "radius", "height"}:
            raise SceneError(f"{at} must be an object with center, radius and height, got {c!r}")
        cylinders.append((*_numbers(c.get("center"), 2, "center", at), _positive(c.get("radius"), "radius", at),
                          _positive(c.get("height", 2.0), "height", at)))
    for i, b in enumerate(doc.get("boxes", [])):
        at = f"{where}: boxes[{i}]"
        if not isinstance(b, dict) or set(b) - {"center", "half_size", "yaw"}:
            raise SceneError(f"{at} must be an object with center, half_size and yaw, got {b!r}")
        half = _numbers(b.get("half_size"), 3, "half_size", at)
        if min(half) <= 0:
            raise SceneError(f"{at}: half_size must be positive, got {half}")
        yaw = _numbers([b.get("yaw", 0.0)], 1, "yaw", at)[0]
        boxes.append((*_numbers(b.get("center"), 3, "center", at), *half, yaw))
    return cylinders, boxes


def load_scene(path) -> tuple[np.ndarray, Obstacles]:
    """(goal [2], obstacles) of a scene file (module doc), validated; every problem is one :class:`SceneError`."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise SceneError(f"{path}: no such scene file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneError(f"{path}: not a JSON scene file ({exc})") from None
    if not isinstance(doc, dict) or "goal" not in doc or set(doc) - {"goal", "cylinders", "boxes"}:
        raise SceneError(f"{path}: a scene is an object with 'goal' and optional 'cylinders' and 'boxes'")
    goal = np.array(_numbers(doc["goal"], 2, "goal", str(path)), np.float32)
    cylinders, boxes = _parse_obstacles(doc, str(path))
    obs = make_obstacles(cylinders, boxes)
    validate(goal, obs, where=str(path))
    return goal, obs
