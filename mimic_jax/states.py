"""Phase-2 state representations, Body-Pos and Joint-Pos, built from world-frame robot states.

Every representation is a vector per control step with the same two parts:

* **global** (the first ``GLOBAL_SIZE = 9`` dims): the root (pelvis) position, linear velocity and rotation
  vector, all expressed in one *character frame* F: the yaw-aligned frame of the root at some step t0, with
  its origin on the ground below the root at t0 (x, y of the root, z = 0). Heights stay absolute.
* **local**: Body-Pos (BeyondMimic v3's best): the position relative to the root and the linear velocity of
  each of the 13 other tracked bodies, both in that step's own yaw-aligned root frame (13 x 6 = 78 dims).
  Joint-Pos (the ablation): joint positions and velocities (29 + 29 dims).

A trajectory's global dims are relative to *one* frame for all its steps, so the planar root path can be read
off directly (costs are written in metres in that frame). :func:`reanchor` moves a trajectory into the frame of
any of its own steps using only its own global dims; the dataset stores trajectories in the frame of their
first step and the diffusion model re-anchors each training window at its current step.

Quaternions are (w, x, y, z). The rotation vector is the log map of the root orientation relative to F's yaw,
with the quaternion sign chosen so the angle is in [0, pi].
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from mimic_jax import math as jm
from mimic_jax.assets import g1

GLOBAL_SIZE = 9
NUM_BODIES = len(g1.TRACKED_BODY_NAMES)
ROOT = g1.TRACKED_BODY_NAMES.index("pelvis")
_OTHERS = np.array([i for i in range(NUM_BODIES) if i != ROOT], dtype=np.int32)


class WorldStates(NamedTuple):
    """World-frame robot states, any leading dims [...]: the 14 tracked bodies (``g1.TRACKED_BODY_NAMES``
    order, pelvis = the root first) and the 29 joints (``g1.JOINT_NAMES`` order). Linear velocities are at the
    body origins; angular velocities are world-frame."""

    body_pos_w: jnp.ndarray  # [..., 14, 3]
    body_quat_w: jnp.ndarray  # [..., 14, 4]
    body_lin_vel_w: jnp.ndarray  # [..., 14, 3]
    body_ang_vel_w: jnp.ndarray  # [..., 14, 3]
    joint_pos: jnp.ndarray  # [..., 29]
    joint_vel: jnp.ndarray  # [..., 29]


class Frame(NamedTuple):
    """A character frame: ground origin (x, y, 0) and yaw-only orientation, world-frame."""

    origin: jnp.ndarray  # [..., 3]
    yaw: jnp.ndarray  # [..., 4] yaw-only quaternion


@dataclasses.dataclass(frozen=True)
class StateLayout:
    """Names and slices of a representation's dims (static)."""

    name: str
    parts: tuple[tuple[str, int], ...]  # (name, size) in order

    @property
    def size(self) -> int:
        return sum(n for _, n in self.parts)

    def slice(self, part: str) -> slice:
        start = 0
        for name, n in self.parts:
            if name == part:
                return slice(start, start + n)
            start += n
        raise KeyError(f"{self.name} has no part {part!r} (parts: {[p for p, _ in self.parts]})")

    @property
    def global_mask(self) -> np.ndarray:
        """[D] True on the global (root) dims, the ones the emphasis projection weights."""
        mask = np.zeros(self.size, bool)
        mask[:GLOBAL_SIZE] = True
        return mask


_GLOBAL_PARTS = (("root_pos", 3), ("root_lin_vel", 3), ("root_rotvec", 3))
BODY_POS = StateLayout("body_pos", _GLOBAL_PARTS + (("body_pos_b", 3 * len(_OTHERS)),
                                                    ("body_lin_vel_b", 3 * len(_OTHERS))))
JOINT_POS = StateLayout("joint_pos", _GLOBAL_PARTS + (("joint_pos", g1.NUM_JOINTS), ("joint_vel", g1.NUM_JOINTS)))
LAYOUTS = {layout.name: layout for layout in (BODY_POS, JOINT_POS)}


def layout(name: str) -> StateLayout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown state representation {name!r} (known: {', '.join(LAYOUTS)})")
    return LAYOUTS[name]


# -- rotations ------------------------------------------------------------------------------------------------
def quat_to_rotvec(q):
    """Log map of unit quaternions [..., 4] -> rotation vectors [..., 3], angle in [0, pi]."""
    q = jnp.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * jnp.arctan2(norm, q[..., :1])
    safe = jnp.where(norm > 1e-8, norm, 1.0)
    # angle / norm -> 2 as norm -> 0 (first order: angle = 2 norm / w).
    scale = jnp.where(norm > 1e-8, angle / safe, 2.0 / jnp.maximum(q[..., :1], 1e-8))
    return v * scale


def rotvec_to_quat(r):
    """Exp map of rotation vectors [..., 3] -> unit quaternions [..., 4]; differentiable at r = 0 (guidance
    costs take gradients through it)."""
    sq = jnp.sum(jnp.square(r), axis=-1, keepdims=True)
    small = sq < 1e-16
    angle = jnp.sqrt(jnp.where(small, 1.0, sq))  # never the sqrt of 0: its gradient would be infinite
    sinc = jnp.where(small, 0.5 - sq / 48.0, jnp.sin(angle / 2) / angle)  # sin(a/2)/a = 1/2 - a^2/48 + ...
    cos = jnp.where(small, 1.0 - sq / 8.0, jnp.cos(angle / 2))
    return jnp.concatenate([cos, r * sinc], axis=-1)


# -- frames ---------------------------------------------------------------------------------------------------
def character_frame(root_pos_w, root_quat_w) -> Frame:
    """The yaw-aligned frame of a root pose, origin on the ground below it."""
    origin = root_pos_w * jnp.array([1.0, 1.0, 0.0], dtype=root_pos_w.dtype)
    return Frame(origin=origin, yaw=jm.yaw_quat(root_quat_w))


def frame_at(ws: WorldStates, t: int) -> Frame:
    """The character frame of step ``t`` of a trajectory [T, ...] (time axis first)."""
    return character_frame(ws.body_pos_w[t, ROOT], ws.body_quat_w[t, ROOT])


def to_frame(frame: Frame, points_w):
    """World points [..., 3] -> coordinates in ``frame`` (frame broadcasts against the points' leading dims)."""
    return jm.quat_rotate_inv(frame.yaw, points_w - frame.origin)


def from_frame(frame: Frame, points):
    """Coordinates in ``frame`` [..., 3] -> world points."""
    return jm.quat_rotate(frame.yaw, points) + frame.origin


# -- encoding -------------------------------------------------------------------------------------------------
def _global_dims(ws: WorldStates, frame: Frame):
    """[..., 9]: root position, velocity and rotation vector in ``frame`` (frame broadcast over time)."""
    root_pos, root_quat = ws.body_pos_w[..., ROOT, :], ws.body_quat_w[..., ROOT, :]
    pos = to_frame(frame, root_pos)
    vel = jm.quat_rotate_inv(frame.yaw, ws.body_lin_vel_w[..., ROOT, :])
    rotvec = quat_to_rotvec(jm.quat_mul(jm.quat_conj(frame.yaw), root_quat))
    return jnp.concatenate([pos, vel, rotvec], axis=-1)


def _body_local(ws: WorldStates):
    """[..., 78]: the other bodies' positions relative to the root and velocities, in each step's own frame."""
    root_pos, root_quat = ws.body_pos_w[..., ROOT, :], ws.body_quat_w[..., ROOT, :]
    yaw = jm.yaw_quat(root_quat)[..., None, :]
    rel = jm.quat_rotate_inv(yaw, ws.body_pos_w[..., _OTHERS, :] - root_pos[..., None, :])
    vel = jm.quat_rotate_inv(yaw, ws.body_lin_vel_w[..., _OTHERS, :])
    lead = rel.shape[:-2]
    return jnp.concatenate([rel.reshape(lead + (-1,)), vel.reshape(lead + (-1,))], axis=-1)


def encode(rep: StateLayout | str, ws: WorldStates, frame: Frame):
    """World states [..., T, ...] -> states [..., T, D] of representation ``rep``, global dims in ``frame``
    (``frame`` has the leading dims without T, e.g. [...], and is broadcast over the time axis)."""
    rep = layout(rep) if isinstance(rep, str) else rep
    frame = Frame(origin=frame.origin[..., None, :], yaw=frame.yaw[..., None, :])
    glob = _global_dims(ws, frame)
    if rep.name == "body_pos":
        return jnp.concatenate([glob, _body_local(ws)], axis=-1)
    return jnp.concatenate([glob, ws.joint_pos, ws.joint_vel], axis=-1)


def encode_step(rep: StateLayout | str, ws: WorldStates, frame: Frame):
    """One step's world states [..., ...] (no time axis) -> state [..., D] in ``frame``."""
    expanded = WorldStates(*(jnp.expand_dims(x, axis=_time_axis(x, name)) for name, x in zip(WorldStates._fields, ws)))
    return encode(rep, expanded, frame)[..., 0, :]


def _time_axis(x, field: str) -> int:
    """Where a time axis goes in a WorldStates field with no time axis (before the per-body / per-joint dims)."""
    return x.ndim - (2 if field.startswith("body_") else 1)


# -- reading a trajectory back ----------------------------------------------------------------------------------
def root_pos(rep: StateLayout | str, states):
    """[..., T, 3] root positions in the trajectory's frame."""
    rep = layout(rep) if isinstance(rep, str) else rep
    return states[..., rep.slice("root_pos")]


def root_lin_vel(rep: StateLayout | str, states):
    rep = layout(rep) if isinstance(rep, str) else rep
    return states[..., rep.slice("root_lin_vel")]


def root_quat(rep: StateLayout | str, states):
    """[..., T, 4] root orientations relative to the frame's yaw."""
    rep = layout(rep) if isinstance(rep, str) else rep
    return rotvec_to_quat(states[..., rep.slice("root_rotvec")])


def root_yaw(rep: StateLayout | str, states):
    """[..., T] root heading (rad) relative to the frame's yaw."""
    q = root_quat(rep, states)
    w, x, y, z = jnp.moveaxis(q, -1, 0)
    return jnp.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def body_positions(states):
    """Body-Pos states [..., T, 87] -> [..., T, 14, 3] every tracked body's position in the trajectory's frame
    (root first), for costs on body spheres."""
    root = root_pos(BODY_POS, states)
    local = states[..., BODY_POS.slice("body_pos_b")].reshape(states.shape[:-1] + (len(_OTHERS), 3))
    yaw = jm.yaw_quat(root_quat(BODY_POS, states))[..., None, :]
    others = root[..., None, :] + jm.quat_rotate(yaw, local)
    bodies = jnp.zeros(states.shape[:-1] + (NUM_BODIES, 3), states.dtype)
    return bodies.at[..., ROOT, :].set(root).at[..., _OTHERS, :].set(others)


def reanchor(rep: StateLayout | str, states, t0: int | jnp.ndarray):
    """A trajectory [..., T, D] whose global dims are in some frame F -> the same trajectory with its global
    dims in the character frame of its own step ``t0`` (local dims are frame-free and unchanged)."""
    rep = layout(rep) if isinstance(rep, str) else rep
    pos, vel = root_pos(rep, states), root_lin_vel(rep, states)
    quat = root_quat(rep, states)
    take = lambda x: jnp.take(x, t0, axis=-2)  # noqa: E731
    frame = character_frame(take(pos), take(quat))  # F_t0 expressed in F
    frame = Frame(origin=frame.origin[..., None, :], yaw=frame.yaw[..., None, :])
    new_pos = to_frame(frame, pos)
    new_vel = jm.quat_rotate_inv(frame.yaw, vel)
    new_rot = quat_to_rotvec(jm.quat_mul(jm.quat_conj(frame.yaw), quat))
    return jnp.concatenate([new_pos, new_vel, new_rot, states[..., GLOBAL_SIZE:]], axis=-1)
