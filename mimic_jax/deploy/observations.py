"""The actor's observation terms, computed from what a robot measures (numpy only).

Each term is defined on :class:`Inputs`: the sensor readings (:class:`Sensors`), the robot anchor's world
pose (forward kinematics of the robot model from the pelvis pose and the joint encoders, as a controller
computes it), the reference frame, the last action and the motion one-hot. ``TERMS`` holds, per term name,
its frame, its noise-free definition and the sensors it needs; the export writes them into
``deploy.yaml`` and refuses a term this table does not know, so the runner can compute every exported term.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from mimic_jax.deploy import maths


class Sensors(NamedTuple):
    """One reading of the robot's sensors (joints in ``joints.names`` order)."""

    imu_quat_w: np.ndarray  # [4] IMU orientation in the world (w, x, y, z)
    imu_gyro: np.ndarray  # [3] angular velocity in the IMU frame
    joint_pos: np.ndarray  # [J] encoders
    joint_vel: np.ndarray  # [J]
    pelvis_pos_w: np.ndarray  # [3] state estimator (zeros when the policy does not use it)
    pelvis_lin_vel_w: np.ndarray  # [3] state estimator, world frame, at the pelvis origin


class Inputs(NamedTuple):
    """Everything the observation is computed from at one control step."""

    sensors: Sensors
    pelvis_quat_w: np.ndarray  # [4] from the IMU (imu.quat_in_body removed)
    gyro_pelvis: np.ndarray  # [3] the gyro rotated into the pelvis frame
    anchor_pos_w: np.ndarray  # [3] robot anchor by forward kinematics
    anchor_quat_w: np.ndarray  # [4]
    ref_joint_pos: np.ndarray  # [J]
    ref_joint_vel: np.ndarray  # [J]
    ref_anchor_pos_w: np.ndarray  # [3]
    ref_anchor_quat_w: np.ndarray  # [4]
    last_action: np.ndarray  # [J]
    default_joint_pos: np.ndarray  # [J] nominal
    one_hot: np.ndarray  # [M]


class Term(NamedTuple):
    frame: str
    definition: str
    sources: tuple[str, ...]
    compute: Callable[[Inputs], np.ndarray]


_ANCHOR = ("imu.orientation", "joint_encoders.position")
TERMS: dict[str, Term] = {
    "ref_joint_pos": Term("joint space", "reference joint positions at the current frame (joints.names order)",
                          ("reference.joint_pos",), lambda x: x.ref_joint_pos),
    "ref_joint_vel": Term("joint space", "reference joint velocities at the current frame",
                          ("reference.joint_vel",), lambda x: x.ref_joint_vel),
    "ref_anchor_pos_b": Term(
        "robot anchor body", "R_a^T (p_ref_a - p_a): the reference anchor position in the robot anchor frame; "
        "p_a, R_a the robot anchor's world pose by forward kinematics from the pelvis pose and joint positions",
        ("reference.body_pos_w[anchor]", "state_estimator.pelvis_pos_w") + _ANCHOR,
        lambda x: maths.quat_rotate_inv(x.anchor_quat_w, x.ref_anchor_pos_w - x.anchor_pos_w)),
    "ref_anchor_ori_b": Term(
        "robot anchor body", "rot6d(R_a^T R_ref_a): first two columns of the relative rotation matrix, row by "
        "row [m00, m01, m10, m11, m20, m21]", ("reference.body_quat_w[anchor]",) + _ANCHOR,
        lambda x: maths.rot6d(maths.quat_mul(maths.quat_conj(x.anchor_quat_w), x.ref_anchor_quat_w))),
    "base_lin_vel": Term(
        "pelvis", "R_pelvis^T v_pelvis: the pelvis linear velocity (world, at the pelvis origin) in the pelvis "
        "frame", ("state_estimator.pelvis_lin_vel_w", "imu.orientation"),
        lambda x: maths.quat_rotate_inv(x.pelvis_quat_w, x.sensors.pelvis_lin_vel_w)),
    "base_ang_vel": Term("pelvis", "the pelvis angular velocity in the pelvis frame: the gyro rotated from the "
                         "IMU frame into the pelvis frame (imu.quat_in_body)", ("imu.gyro",),
                         lambda x: x.gyro_pelvis),
    "joint_pos": Term("joint space", "q - default_joint_pos.nominal (training: minus the randomized default)",
                      ("joint_encoders.position",), lambda x: x.sensors.joint_pos - x.default_joint_pos),
    "joint_vel": Term("joint space", "dq", ("joint_encoders.velocity",), lambda x: x.sensors.joint_vel),
    "last_action": Term("action space", "the policy's previous actions output (zeros at the first step)",
                        ("policy.actions",), lambda x: x.last_action),
    "motion_one_hot": Term("-", "one-hot of the clip in motion.names; motion.unseen_clip_one_hot for a clip "
                           "the policy was not trained on", ("motion",), lambda x: x.one_hot),
}


def observation(terms: list[dict], inputs: Inputs) -> np.ndarray:
    """The observation vector (float32) of ``deploy.yaml``'s ``observation.terms``, in their order."""
    parts = [np.asarray(TERMS[t["name"]].compute(inputs), np.float64).reshape(-1) for t in terms]
    return np.concatenate(parts).astype(np.float32)
