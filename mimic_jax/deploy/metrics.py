"""Tracking metrics and terminations in numpy: the definitions of ``mimic_jax.evaluation.metrics`` and
``mimic_jax.envs.terminations`` (tests check both give the same numbers on the same arrays).

Bodies are the tracked bodies in ``deploy.yaml`` order (``bodies.tracked``); :class:`BodyLayout` says where
the anchor, the root and the end effectors are in that list.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mimic_jax.deploy import maths

METRICS: tuple[str, ...] = ("mpjpe_global_mm", "mpjpe_local_mm", "joint_pos_error_rad", "joint_vel_error_rad_s",
                            "ee_pos_error_mm", "anchor_pos_error_mm", "anchor_ori_error_rad",
                            "anchor_xy_error_mm")


TRACKED_MAX_DRIFT_M = 0.5  # "tracked": no termination and the anchor within this of the reference (x, y), m


class BodyLayout(NamedTuple):
    """Indices into the tracked-body list."""

    anchor: int
    root: int
    end_effectors: tuple[int, ...]

    @classmethod
    def from_config(cls, config: dict) -> BodyLayout:
        bodies = config["bodies"]
        names = list(bodies["tracked"])
        return cls(anchor=names.index(bodies["anchor"]), root=names.index(bodies["root"]),
                   end_effectors=tuple(names.index(n) for n in bodies["end_effectors"]))


class Pose(NamedTuple):
    """The robot or the reference at one instant: tracked bodies (world) and joints."""

    body_pos: np.ndarray  # [B, 3]
    body_quat: np.ndarray  # [B, 4]
    joint_pos: np.ndarray  # [J]
    joint_vel: np.ndarray  # [J]


def frame_errors(robot: Pose, ref: Pose, layout: BodyLayout) -> dict[str, float]:
    """Every metric of one frame (see docs/evaluation.md)."""
    body = np.linalg.norm(robot.body_pos - ref.body_pos, axis=-1)
    robot_local = robot.body_pos - robot.body_pos[layout.anchor]
    ref_local = ref.body_pos - ref.body_pos[layout.anchor]
    ee = list(layout.end_effectors)
    return {
        "mpjpe_global_mm": 1000.0 * float(np.mean(body)),
        "mpjpe_local_mm": 1000.0 * float(np.mean(np.linalg.norm(robot_local - ref_local, axis=-1))),
        "joint_pos_error_rad": float(np.mean(np.abs(robot.joint_pos - ref.joint_pos))),
        "joint_vel_error_rad_s": float(np.mean(np.abs(robot.joint_vel - ref.joint_vel))),
        "ee_pos_error_mm": 1000.0 * float(np.mean(body[ee])),
        "anchor_pos_error_mm": 1000.0 * float(body[layout.anchor]),
        "anchor_ori_error_rad": float(maths.rotation_angle(robot.body_quat[layout.anchor],
                                                           ref.body_quat[layout.anchor])),
        "anchor_xy_error_mm": 1000.0 * float(np.linalg.norm(robot.body_pos[layout.anchor, :2]
                                                            - ref.body_pos[layout.anchor, :2])),
    }


def relative_reference_pos(robot: Pose, ref: Pose, layout: BodyLayout) -> np.ndarray:
    """Reference body positions re-anchored onto the robot (yaw to the robot anchor, its x y, the reference z)."""
    a = layout.anchor
    delta_yaw = maths.yaw_quat(maths.quat_mul(robot.body_quat[a], maths.quat_conj(ref.body_quat[a])))
    anchor = np.concatenate([robot.body_pos[a, :2], ref.body_pos[a, 2:]])
    return anchor + maths.quat_rotate(delta_yaw[None], ref.body_pos - ref.body_pos[a])


def terminations(robot: Pose, ref: Pose, layout: BodyLayout, thresholds: dict) -> dict[str, bool]:
    """The training terminations; each fires strictly above its threshold."""
    a, ee = layout.anchor, list(layout.end_effectors)
    g_robot = maths.gravity_in_frame(robot.body_quat[a])
    g_ref = maths.gravity_in_frame(ref.body_quat[a])
    rel_pos = relative_reference_pos(robot, ref, layout)
    ee_err = np.abs(rel_pos[ee, 2] - robot.body_pos[ee, 2])
    return {
        "anchor_height": bool(abs(ref.body_pos[a, 2] - robot.body_pos[a, 2]) > thresholds["anchor_height"]),
        "anchor_tilt": bool(abs(g_ref[2] - g_robot[2]) > thresholds["anchor_tilt"]),
        "end_effector_height": bool(np.any(ee_err > thresholds["end_effector_height"])),
    }


def summarize(errors: dict[str, list[float]], success: bool, termination: str, clip_frames: int,
              control_dt: float) -> dict:
    """One clean episode's summary: the fields of ``evaluation.metrics.summarize_clip`` for one episode."""
    steps = len(next(iter(errors.values())))
    out = {"episodes": 1, "success_rate": float(success), "mean_episode_length_s": steps * control_dt,
           "mean_episode_length_steps": float(steps), "clip_length_s": (clip_frames - 1) * control_dt}
    for name in METRICS:
        out[name] = float(np.mean(errors[name])) if steps else float("nan")
    drift_m = max(errors["anchor_xy_error_mm"], default=float("-inf")) / 1000.0
    out["tracked_rate"] = float(success and drift_m <= TRACKED_MAX_DRIFT_M)
    out["max_drift_m"] = drift_m
    out["terminations"] = {termination: 1} if termination else {}
    return out
