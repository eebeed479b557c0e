"""A tilted IMU: the actor's anchor- and pelvis-frame observations read in a frame rotated by ``R``.

The sensor frame is rotated by ``R`` (a small roll and pitch) in the body it measures, so every quantity the
actor reads in the anchor or pelvis frame is read in the rotated frame: ``v' = R^T v`` for ``ref_anchor_pos_b``,
``base_lin_vel`` and ``base_ang_vel``, and ``R^T R_rel`` for the orientation in ``ref_anchor_ori_b`` (the two
stored columns of ``R_rel`` are rotated). The same ``R`` stands for the torso's and the pelvis's frame: an
orientation estimate rotated by a fixed mounting error. Joint terms, the reference joints and the last action
are untouched; the critic, rewards, terminations and metrics see the true state.

Used by the environment (``env.randomization.imu_tilt_deg``, drawn per episode, for training) and by the
mismatch suite (``evaluation/sensing.py``, a fixed tilt per episode).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from mimic_jax.envs.config import EnvConfig
from mimic_jax.envs.observations import term_sizes

TILTED_VECTORS = ("ref_anchor_pos_b", "base_lin_vel", "base_ang_vel")
TILTED_ORIENTATION = "ref_anchor_ori_b"


def actor_layout(env_cfg: EnvConfig, num_motions: int) -> dict[str, tuple[int, int]]:
    """(start, stop) of every actor observation term."""
    out, start = {}, 0
    for name, size in term_sizes(env_cfg, num_motions)["actor"]:
        out[name] = (start, start + size)
        start += size
    return out


def tilt_rotation(roll, pitch):
    """[..., 3, 3] rotation of the IMU frame in the body: roll about x, then pitch about y (R = R_x R_y);
    angles in radians, any leading axes."""
    roll, pitch = jnp.asarray(roll, jnp.float32), jnp.asarray(pitch, jnp.float32)
    cr, sr, cp, sp = jnp.cos(roll), jnp.sin(roll), jnp.cos(pitch), jnp.sin(pitch)
    zero, one = jnp.zeros_like(cr), jnp.ones_like(cr)
    def mat(rows):
        return jnp.stack([jnp.stack(row, -1) for row in rows], -2)

    rx = mat([[one, zero, zero], [zero, cr, -sr], [zero, sr, cr]])
    ry = mat([[cp, zero, sp], [zero, one, zero], [-sp, zero, cp]])
    return rx @ ry


def tilt_matrix(roll_deg: float = 0.0, pitch_deg: float = 0.0):
    """:func:`tilt_rotation` of angles in degrees."""
    return tilt_rotation(math.radians(roll_deg), math.radians(pitch_deg))


def tilt_observation(obs, layout: dict, rot):
    """Actor observations [..., A] as read in the tilted IMU frame ``rot`` [..., 3, 3] (module doc)."""
    inv = jnp.swapaxes(jnp.asarray(rot, obs.dtype), -1, -2)
    for name in TILTED_VECTORS:
        if name in layout:
            lo, hi = layout[name]
            obs = obs.at[..., lo:hi].set(jnp.einsum("...ij,...j->...i", inv, obs[..., lo:hi]))
    lo, hi = layout[TILTED_ORIENTATION]
    cols = obs[..., lo:hi].reshape(obs.shape[:-1] + (3, 2))
    return obs.at[..., lo:hi].set((inv @ cols).reshape(obs.shape[:-1] + (6,)))
