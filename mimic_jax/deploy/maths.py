"""Quaternion and frame maths in numpy (float64), the same formulas as ``mimic_jax.math``.

Quaternions are (w, x, y, z) and broadcast over leading axes. This module, like the whole ``deploy``
package, imports only numpy: a controller can copy it.
"""

from __future__ import annotations

import numpy as np


def quat_mul(a, b):
    aw, ax, ay, az = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_conj(q):
    return np.asarray(q, np.float64) * np.array([1.0, -1.0, -1.0, -1.0])


def quat_rotate(q, v):
    """Rotates vectors v [..., 3] by q [..., 4]."""
    q, v = np.asarray(q, np.float64), np.asarray(v, np.float64)
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def quat_rotate_inv(q, v):
    return quat_rotate(quat_conj(q), v)


def quat_to_mat(q):
    w, x, y, z = np.moveaxis(np.asarray(q, np.float64), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=-2)


def rot6d(q):
    """First two columns of the rotation matrix, row by row: [m00, m01, m10, m11, m20, m21]."""
    m = quat_to_mat(q)
    return m[..., :, :2].reshape(m.shape[:-2] + (6,))


def yaw_quat(q):
    """The yaw-only part of q (rotation about world z)."""
    w, x, y, z = np.moveaxis(np.asarray(q, np.float64), -1, 0)
    yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    zero = np.zeros_like(yaw)
    return np.stack([np.cos(yaw / 2), zero, zero, np.sin(yaw / 2)], axis=-1)


def gravity_in_frame(q):
    """World gravity direction (0, 0, -1) expressed in the frame of q."""
    q = np.asarray(q, np.float64)
    return quat_rotate_inv(q, np.broadcast_to([0.0, 0.0, -1.0], q.shape[:-1] + (3,)))


def rotation_angle(a, b):
    """Angle (rad, in [0, pi]) of the rotation between orientations a and b, accurate near 0."""
    rel = quat_mul(quat_conj(a), b)
    return 2.0 * np.arctan2(np.linalg.norm(rel[..., 1:], axis=-1), np.abs(rel[..., 0]))
