"""Observations of the tracking problem: actor (noisy, 160 + M) and critic (privileged, 286 + M)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mimic_jax import math as jm
from mimic_jax.envs.config import EnvConfig
from mimic_jax.envs.robot import RobotState
from mimic_jax.motion.library import ANCHOR_INDEX, RefFrame

NUM_TRACKED = 14


def term_sizes(cfg: EnvConfig, num_motions: int) -> dict[str, list[tuple[str, int]]]:
    """Observation terms and sizes in order, for both groups (also written into ONNX metadata)."""
    actor = [("ref_joint_pos", 29), ("ref_joint_vel", 29)]
    if cfg.state_estimation:
        actor.append(("ref_anchor_pos_b", 3))
    actor.append(("ref_anchor_ori_b", 6))
    if cfg.state_estimation:
        actor.append(("base_lin_vel", 3))
    actor += [("base_ang_vel", 3), ("joint_pos", 29), ("joint_vel", 29), ("last_action", 29),
              ("motion_one_hot", num_motions)]
    critic = [("ref_joint_pos", 29), ("ref_joint_vel", 29), ("ref_anchor_pos_b", 3), ("ref_anchor_ori_b", 6),
              ("body_pos_b", 3 * NUM_TRACKED), ("body_ori_b", 6 * NUM_TRACKED), ("base_lin_vel", 3),
              ("base_ang_vel", 3), ("joint_pos", 29), ("joint_vel", 29), ("last_action", 29),
              ("motion_one_hot", num_motions)]
    return {"actor": actor, "critic": critic}


def observation_size(cfg: EnvConfig, num_motions: int) -> dict[str, int]:
    return {k: sum(n for _, n in v) for k, v in term_sizes(cfg, num_motions).items()}


def _terms(robot: RobotState, ref: RefFrame, last_action, default_pos, one_hot) -> dict[str, jnp.ndarray]:
    anchor_pos = robot.body_pos[ANCHOR_INDEX]
    anchor_quat = robot.body_quat[ANCHOR_INDEX]
    rel_pos = robot.body_pos - anchor_pos
    return {
        "ref_joint_pos": ref.joint_pos,
        "ref_joint_vel": ref.joint_vel,
        "ref_anchor_pos_b": jm.quat_rotate_inv(anchor_quat, ref.anchor_pos - anchor_pos),
        "ref_anchor_ori_b": jm.rot6d(jm.quat_mul(jm.quat_conj(anchor_quat), ref.anchor_quat)),
        "body_pos_b": jm.quat_rotate_inv(anchor_quat[None], rel_pos).reshape(-1),
        "body_ori_b": jm.rot6d(jm.quat_mul(jm.quat_conj(anchor_quat)[None], robot.body_quat)).reshape(-1),
        "base_lin_vel": robot.root_lin_vel_b,
        "base_ang_vel": robot.root_ang_vel_b,
        "joint_pos": robot.joint_pos - default_pos,
        "joint_vel": robot.joint_vel,
        "last_action": last_action,
        "motion_one_hot": one_hot,
    }


def _noise_scale(cfg: EnvConfig) -> dict[str, float]:
    n = cfg.noise
    return {"ref_anchor_pos_b": n.anchor_pos, "ref_anchor_ori_b": n.anchor_ori, "base_lin_vel": n.base_lin_vel,
            "base_ang_vel": n.base_ang_vel, "joint_pos": n.joint_pos, "joint_vel": n.joint_vel}


def observe(cfg: EnvConfig, robot: RobotState, ref: RefFrame, last_action, default_pos, motion_id,
            num_motions: int, key) -> dict[str, jnp.ndarray]:
    """Both observation groups for one environment; uniform noise on the actor's terms only."""
    one_hot = jax.nn.one_hot(motion_id, num_motions, dtype=jnp.float32)
    terms = _terms(robot, ref, last_action, default_pos, one_hot)
    sizes = term_sizes(cfg, num_motions)
    actor_terms = dict(terms)
    if cfg.noise.enabled:
        scales = _noise_scale(cfg)
        keys = jax.random.split(key, len(scales))
        for k, (name, scale) in zip(keys, scales.items()):
            x = terms[name]
            actor_terms[name] = x + jax.random.uniform(k, x.shape, x.dtype, -scale, scale)
    return {
        "actor": jnp.concatenate([actor_terms[name] for name, _ in sizes["actor"]]),
        "critic": jnp.concatenate([terms[name] for name, _ in sizes["critic"]]),
    }
