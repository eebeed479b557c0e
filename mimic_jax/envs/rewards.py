"""Reward terms: a dict of named terms; the reward is the weighted sum (times dt, as Isaac Lab does)."""

from __future__ import annotations

import jax.numpy as jnp

from mimic_jax import math as jm
from mimic_jax.envs.config import RewardConfig
from mimic_jax.envs.robot import RobotState
from mimic_jax.motion.library import ANCHOR_INDEX, RefFrame


def relative_reference(robot: RobotState, ref: RefFrame):
    """Reference bodies re-anchored onto the robot.

    Yaw-only rotation from the reference anchor to the robot anchor; horizontal position of the robot
    anchor; height of the reference anchor.
    """
    robot_anchor_pos = robot.body_pos[ANCHOR_INDEX]
    delta_yaw = jm.yaw_quat(jm.quat_mul(robot.body_quat[ANCHOR_INDEX], jm.quat_conj(ref.anchor_quat)))
    anchor = jnp.concatenate([robot_anchor_pos[:2], ref.anchor_pos[2:]])
    pos = anchor + jm.quat_rotate(delta_yaw[None], ref.body_pos - ref.anchor_pos)
    quat = jm.quat_mul(delta_yaw[None], ref.body_quat)
    return pos, quat


def _kernel(error, sigma):
    return jnp.exp(-error / (sigma * sigma))


def tracking_errors(robot: RobotState, ref: RefFrame) -> dict[str, jnp.ndarray]:
    rel_pos, rel_quat = relative_reference(robot, ref)
    return {
        "anchor_pos": jnp.sum(jnp.square(ref.anchor_pos - robot.body_pos[ANCHOR_INDEX])),
        "anchor_ori": jm.quat_angle_sq(ref.anchor_quat, robot.body_quat[ANCHOR_INDEX]),
        "body_pos": jnp.mean(jnp.sum(jnp.square(rel_pos - robot.body_pos), axis=-1)),
        "body_ori": jnp.mean(jm.quat_angle_sq(rel_quat, robot.body_quat)),
        "body_lin_vel": jnp.mean(jnp.sum(jnp.square(ref.body_lin_vel - robot.body_lin_vel), axis=-1)),
        "body_ang_vel": jnp.mean(jnp.sum(jnp.square(ref.body_ang_vel - robot.body_ang_vel), axis=-1)),
    }


def reward_terms(cfg: RewardConfig, robot: RobotState, ref: RefFrame, action, last_action, soft_lower,
                 soft_upper, num_contacts) -> dict[str, jnp.ndarray]:
    """Unweighted terms: tracking kernels in (0, 1], penalties as raw non-negative amounts."""
    err = tracking_errors(robot, ref)
    q = robot.joint_pos
    violation = jnp.sum(jnp.maximum(soft_lower - q, 0.0) + jnp.maximum(q - soft_upper, 0.0))
    return {
        "anchor_pos": _kernel(err["anchor_pos"], cfg.anchor_pos_sigma),
        "anchor_ori": _kernel(err["anchor_ori"], cfg.anchor_ori_sigma),
        "body_pos": _kernel(err["body_pos"], cfg.body_pos_sigma),
        "body_ori": _kernel(err["body_ori"], cfg.body_ori_sigma),
        "body_lin_vel": _kernel(err["body_lin_vel"], cfg.body_lin_vel_sigma),
        "body_ang_vel": _kernel(err["body_ang_vel"], cfg.body_ang_vel_sigma),
        "action_rate": jnp.sum(jnp.square(action - last_action)),
        "joint_limit": violation,
        "undesired_contacts": num_contacts,
    }


def weights(cfg: RewardConfig) -> dict[str, float]:
    return {"anchor_pos": cfg.anchor_pos_weight, "anchor_ori": cfg.anchor_ori_weight,
            "body_pos": cfg.body_pos_weight, "body_ori": cfg.body_ori_weight,
            "body_lin_vel": cfg.body_lin_vel_weight, "body_ang_vel": cfg.body_ang_vel_weight,
            "action_rate": cfg.action_rate_weight, "joint_limit": cfg.joint_limit_weight,
            "undesired_contacts": cfg.undesired_contact_weight}


def total_reward(cfg: RewardConfig, terms: dict[str, jnp.ndarray], dt: float) -> jnp.ndarray:
    scale = dt if cfg.scale_by_dt else 1.0
    return scale * sum(w * terms[name] for name, w in weights(cfg).items())
