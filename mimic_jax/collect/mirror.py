"""The G1's sagittal mirror map: reflection of the world through its x-z plane (y -> -y).

Under the reflection M = diag(1, -1, 1):

* positions and linear velocities (vectors): v -> M v = (x, -y, z);
* angular velocities (pseudo-vectors): w -> det(M) M w = (-wx, wy, -wz);
* orientations: R -> M R M, i.e. the quaternion (w, x, y, z) -> (w, -x, y, -z);
* bodies and joints swap left <-> right; a joint's angle keeps its sign when its axis lies along the
  robot's y (pitch joints, the knees and elbows) and flips when the axis lies in the robot's x-z plane (roll
  and yaw joints, the waist's included).

Our G1 is left/right symmetric (body offsets agree to 1e-5 m), and its default pose and action scales are
mirror-symmetric, so the same joint map mirrors joint positions, joint velocities and actions. Mirroring twice
is the identity; the mirrored world states equal the forward kinematics of the mirrored joint trajectory
(``tests/test_collect.py``). Everything works on numpy and JAX arrays alike.
"""

from __future__ import annotations

import numpy as np

from mimic_jax.assets import g1
from mimic_jax.states import WorldStates

VECTOR = np.array([1.0, -1.0, 1.0], np.float32)
PSEUDO = np.array([-1.0, 1.0, -1.0], np.float32)
QUAT = np.array([1.0, -1.0, 1.0, -1.0], np.float32)


def swap_side(name: str) -> str:
    """'left_knee_link' -> 'right_knee_link' and back; names without a side are their own mirror."""
    for a, b in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(a):
            return b + name[len(a):]
    return name


def permutation(names) -> np.ndarray:
    """[n] index of each name's mirror partner in ``names``; refuses a list without every partner."""
    names = list(names)
    missing = [n for n in names if swap_side(n) not in names]
    if missing:
        raise ValueError(f"no mirror partner for {missing}")
    return np.array([names.index(swap_side(n)) for n in names], np.int32)


def joint_signs(names) -> np.ndarray:
    """[n] -1 for roll and yaw joints (axis in the robot's x-z plane), +1 for pitch-like ones."""
    return np.array([-1.0 if ("_roll_" in n or "_yaw_" in n) else 1.0 for n in names], np.float32)


JOINT_PERM = permutation(g1.JOINT_NAMES)
JOINT_SIGN = joint_signs(g1.JOINT_NAMES)
TRACKED_PERM = permutation(g1.TRACKED_BODY_NAMES)
BODY_PERM = permutation(g1.BODY_NAMES)


def mirror_joints(x):
    """Joint positions, velocities or actions [..., 29] (``g1.JOINT_NAMES`` order)."""
    return (x * JOINT_SIGN)[..., JOINT_PERM]


def mirror_bodies(x, flip: np.ndarray, perm: np.ndarray = TRACKED_PERM):
    """Per-body vectors [..., B, k]: sign ``flip`` [k] on the components, bodies permuted by ``perm``."""
    return (x * flip)[..., perm, :]


def mirror_world_states(ws: WorldStates) -> WorldStates:
    """World states of the 14 tracked bodies and 29 joints, any leading dims."""
    return WorldStates(body_pos_w=mirror_bodies(ws.body_pos_w, VECTOR),
                       body_quat_w=mirror_bodies(ws.body_quat_w, QUAT),
                       body_lin_vel_w=mirror_bodies(ws.body_lin_vel_w, VECTOR),
                       body_ang_vel_w=mirror_bodies(ws.body_ang_vel_w, PSEUDO),
                       joint_pos=mirror_joints(ws.joint_pos), joint_vel=mirror_joints(ws.joint_vel))


def mirror_root(root_pos, root_quat):
    """Root position [..., 3] and orientation [..., 4] of the mirrored motion."""
    return root_pos * VECTOR, root_quat * QUAT
