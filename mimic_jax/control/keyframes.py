"""Inpainting keyframes: world-frame target poses at given control steps, turned at each replan into a clamp on
the predicted states (the sampler sets those dims at noise level 0) or a soft cost (``costs.keyframe``).

A :class:`Keyframes` holds K target world states (``states.WorldStates``, tracked bodies and joints) and the
control step (from the episode start) at which each is wanted, plus which state dims a keyframe fixes (default:
root position and rotation and the local pose; velocities free). At a replan at step ``now`` from character
frame F, the keyframes with now < step <= now + H land on predicted index j = step - now; their targets are the
keyframe states encoded in F (``states.encode``), so they are in metres in the frame the sampler predicts in.
:func:`state_clamp` gives that window as the sampler's clamp (whole states, at noise level 0), :func:`constraint`
the same per dim of ``dims``, which the soft cost term :func:`keyframe` uses.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mimic_jax import math as jm
from mimic_jax import states as st
from mimic_jax.control.costs import CostInput

POSE_PARTS = {"body_pos": ("root_pos", "root_rotvec", "body_pos_b"),
              "joint_pos": ("root_pos", "root_rotvec", "joint_pos")}


def dims_mask(rep: st.StateLayout | str, parts: tuple[str, ...] | None = None) -> np.ndarray:
    """[D] True on the dims of ``parts`` (default: the pose parts of ``POSE_PARTS``)."""
    rep = st.layout(rep) if isinstance(rep, str) else rep
    mask = np.zeros(rep.size, bool)
    for part in parts if parts is not None else POSE_PARTS[rep.name]:
        mask[rep.slice(part)] = True
    return mask


@struct.dataclass
class Keyframes:
    """K keyframes of one episode (leading batch dims allowed on every leaf)."""

    step: jax.Array  # [K] int32 control step of each keyframe, counted from the episode start
    world: st.WorldStates  # [K, ...] target world states
    dims: jax.Array  # [D] bool, the dims a keyframe fixes (its size tells the state layout)


class Clamp(NamedTuple):
    """The keyframe targets of one replan, per dim: ``values`` where ``mask``."""

    mask: jax.Array  # [H+1, D] bool
    values: jax.Array  # [H+1, D] metres, replanning frame; 0 where mask is False


def constraint(kf: Keyframes, frame: st.Frame, now, horizon: int) -> Clamp:
    """The keyframes that fall in the predicted window [now, now + horizon], as a :class:`Clamp` in ``frame``.

    Index 0 (the current state, given by the history) is never clamped."""
    rep = _layout(kf.dims)
    targets = st.encode(rep, kf.world, frame)  # [K, D]
    index = kf.step - now
    hits = (index[:, None] == jnp.arange(horizon + 1)[None, :]) & (index[:, None] >= 1)  # [K, H+1]
    mask = jnp.any(hits, axis=0)[:, None] & kf.dims[None, :]
    values = jnp.einsum("kj,kd->jd", hits.astype(targets.dtype), targets)
    return Clamp(mask=mask, values=jnp.where(mask, values, 0.0))


class StepClamp(NamedTuple):
    """Whole future states to clamp at noise level 0 (the sampler clamps state tokens, not single dims: the
    emphasis projection mixes dims), over the predicted steps t+1 .. t+H."""

    mask: jax.Array  # [H] bool
    states: jax.Array  # [H, D] metres, replanning frame; 0 where mask is False


def state_clamp(kf: Keyframes, frame: st.Frame, now, horizon: int) -> StepClamp:
    """The keyframes that fall in t+1 .. t+H as whole states (every dim, velocities included, from the
    keyframes' world states) encoded in ``frame``."""
    targets = st.encode(_layout(kf.dims), kf.world, frame)  # [K, D]
    hits = (kf.step - now)[:, None] == jnp.arange(1, horizon + 1)[None, :]  # [K, H]
    mask = jnp.any(hits, axis=0)
    states = jnp.einsum("kj,kd->jd", hits.astype(targets.dtype), targets)
    return StepClamp(mask=mask, states=jnp.where(mask[:, None], states, 0.0))


@struct.dataclass
class KeyframeGoal:
    """Parameters of the soft :func:`keyframe` term: the episode's keyframes and the current control step."""

    keys: Keyframes
    now: jax.Array  # [] int32


def keyframe(inp: CostInput, p: KeyframeGoal) -> jax.Array:
    """1/2 sum of (s - s_key)^2 over the dims fixed by the keyframes inside the predicted window, the targets
    expressed in the replanning frame ``inp.frame``."""
    clamp = constraint(p.keys, inp.frame, p.now, inp.states.shape[0] - 1)
    return 0.5 * jnp.sum(jnp.where(clamp.mask, jnp.square(inp.states - clamp.values), 0.0))


def _layout(dims) -> st.StateLayout:
    sizes = {layout.size: layout for layout in st.LAYOUTS.values()}
    return sizes[int(dims.shape[-1])]


# -- placing motions in the world ---------------------------------------------------------------------------------
def move(ws: st.WorldStates, src: st.Frame, dst: st.Frame) -> st.WorldStates:
    """World states [T, ...] moved rigidly in the plane so that what was at character frame ``src`` is at ``dst``
    (yaw and ground position; heights kept)."""
    rot = jm.quat_mul(dst.yaw, jm.quat_conj(src.yaw))
    pos = st.from_frame(dst, st.to_frame(src, ws.body_pos_w))
    quat = jm.quat_mul(jnp.broadcast_to(rot, ws.body_quat_w.shape), ws.body_quat_w)
    return st.WorldStates(body_pos_w=pos, body_quat_w=quat, body_lin_vel_w=jm.quat_rotate(rot, ws.body_lin_vel_w),
                          body_ang_vel_w=jm.quat_rotate(rot, ws.body_ang_vel_w), joint_pos=ws.joint_pos,
                          joint_vel=ws.joint_vel)


def join(segments: list[st.WorldStates]) -> st.WorldStates:
    """Segments [T_i, ...] played one after another: each is moved so that its first character frame is the
    previous one's last (the first stays where it is). Poses jump at the joins: that is what the model
    in-betweens."""
    out = [segments[0]]
    for seg in segments[1:]:
        out.append(move(seg, st.frame_at(seg, 0), st.frame_at(out[-1], -1)))
    return st.WorldStates(*(jnp.concatenate(fields, axis=0) for fields in zip(*out)))
