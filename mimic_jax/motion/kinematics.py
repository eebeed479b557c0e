"""Forward kinematics, resampling and finite differences for motion clips (numpy, CPU).

Quaternions are (w, x, y, z). Velocities are central differences (one-sided at the ends); angular
velocities come from the relative rotation between neighbouring frames, expressed in the world frame.
"""

from __future__ import annotations

import mujoco
import numpy as np


def quat_normalize(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_conj(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle) of a unit quaternion, shortest way round."""
    q = np.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    scale = np.where(s > 1e-12, angle / np.maximum(s, 1e-12), 2.0)
    return v * scale


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between unit quaternions, elementwise over leading axes."""
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    t = np.asarray(t)[..., None]
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    small = sin < 1e-6
    w0 = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / np.where(small, 1.0, sin))
    w1 = np.where(small, t, np.sin(t * theta) / np.where(small, 1.0, sin))
    return quat_normalize(w0 * q0 + w1 * q1)


def resample(root_pos, root_quat, joint_pos, fps_in: float, fps_out: float):
    """Resample a clip to ``fps_out``: lerp positions and joints, slerp the root quaternion."""
    n = root_pos.shape[0]
    duration = (n - 1) / fps_in
    n_out = int(np.floor(duration * fps_out + 1e-9)) + 1
    t = np.arange(n_out) / fps_out * fps_in
    i0 = np.clip(np.floor(t).astype(int), 0, n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    a = t - i0
    lerp = lambda x: x[i0] + (x[i1] - x[i0]) * a[:, None]  # noqa: E731
    return lerp(root_pos), slerp(root_quat[i0], root_quat[i1], a), lerp(joint_pos)


def finite_difference(x: np.ndarray, dt: float) -> np.ndarray:
    """Central differences along axis 0 (``np.gradient``: one-sided at the ends)."""
    if x.shape[0] < 2:
        return np.zeros_like(x)
    return np.gradient(x, dt, axis=0)


def angular_velocity(quat: np.ndarray, dt: float) -> np.ndarray:
    """World-frame angular velocity [T, ..., 3] from orientations [T, ..., 4] by central differences."""
    if quat.shape[0] < 2:
        return np.zeros(quat.shape[:-1] + (3,))
    nxt = np.concatenate([quat[1:], quat[-1:]], axis=0)
    prv = np.concatenate([quat[:1], quat[:-1]], axis=0)
    span = np.full(quat.shape[0], 2.0 * dt)
    span[0] = span[-1] = dt
    rel = quat_mul(nxt, quat_conj(prv))  # world-frame rotation from prv to nxt
    return quat_to_axis_angle(rel) / span.reshape((-1,) + (1,) * (quat.ndim - 1))


def forward_kinematics(model: mujoco.MjModel, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World positions [T, B, 3] and orientations [T, B, 4] of every robot body (world excluded)."""
    data = mujoco.MjData(model)
    pos = np.empty((qpos.shape[0], model.nbody - 1, 3))
    quat = np.empty((qpos.shape[0], model.nbody - 1, 4))
    for t, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        pos[t] = data.xpos[1:]
        quat[t] = data.xquat[1:]
    return pos, quat
