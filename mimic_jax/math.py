"""Quaternion and frame maths in JAX. Quaternions are (w, x, y, z), unit norm, broadcasting over leading axes."""

from __future__ import annotations

import jax.numpy as jnp


def quat_mul(a, b):
    aw, ax, ay, az = jnp.moveaxis(a, -1, 0)
    bw, bx, by, bz = jnp.moveaxis(b, -1, 0)
    return jnp.stack([aw * bw - ax * bx - ay * by - az * bz,
                      aw * bx + ax * bw + ay * bz - az * by,
                      aw * by - ax * bz + ay * bw + az * bx,
                      aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_conj(q):
    return q * jnp.array([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def quat_rotate(q, v):
    """Rotates vectors v [..., 3] by q [..., 4]."""
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * jnp.cross(u, v)
    return v + w * t + jnp.cross(u, t)


def quat_rotate_inv(q, v):
    return quat_rotate(quat_conj(q), v)


def quat_normalize(q):
    return q / jnp.linalg.norm(q, axis=-1, keepdims=True)


def yaw_quat(q):
    """The yaw-only part of q (rotation about world z)."""
    w, x, y, z = jnp.moveaxis(q, -1, 0)
    yaw = jnp.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    zero = jnp.zeros_like(yaw)
    return jnp.stack([jnp.cos(yaw / 2), zero, zero, jnp.sin(yaw / 2)], axis=-1)


def quat_from_euler_xyz(roll, pitch, yaw):
    """Rotation R = Rz(yaw) Ry(pitch) Rx(roll) as a quaternion."""
    cr, sr = jnp.cos(roll / 2), jnp.sin(roll / 2)
    cp, sp = jnp.cos(pitch / 2), jnp.sin(pitch / 2)
    cy, sy = jnp.cos(yaw / 2), jnp.sin(yaw / 2)
    return jnp.stack([cy * cr * cp + sy * sr * sp,
                      cy * sr * cp - sy * cr * sp,
                      cy * cr * sp + sy * sr * cp,
                      sy * cr * cp - cy * sr * sp], axis=-1)


def quat_angle(a, b):
    """Rotation angle between orientations a and b, in [0, pi]."""
    dot = jnp.abs(jnp.sum(a * b, axis=-1))
    return 2.0 * jnp.arccos(jnp.clip(dot, 0.0, 1.0))


def quat_angle_sq(a, b):
    """Squared rotation angle, via atan2 on the relative quaternion (well-behaved gradient at 0)."""
    rel = quat_mul(quat_conj(a), b)
    vec = jnp.linalg.norm(rel[..., 1:], axis=-1)
    angle = 2.0 * jnp.arctan2(vec, jnp.abs(rel[..., 0]))
    return angle * angle


def quat_to_mat(q):
    w, x, y, z = jnp.moveaxis(q, -1, 0)
    return jnp.stack([
        jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        jnp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=-2)


def rot6d(q):
    """First two columns of the rotation matrix, flattened row by row: [m00, m01, m10, m11, m20, m21]."""
    m = quat_to_mat(q)
    return m[..., :, :2].reshape(m.shape[:-2] + (6,))


def gravity_in_frame(q):
    """World gravity direction (0, 0, -1) expressed in the frame of q."""
    g = jnp.broadcast_to(jnp.array([0.0, 0.0, -1.0], dtype=q.dtype), q.shape[:-1] + (3,))
    return quat_rotate_inv(q, g)
