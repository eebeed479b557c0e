"""Failure terminations, each reported by name."""

from __future__ import annotations

import jax.numpy as jnp

from mimic_jax import math as jm
from mimic_jax.envs.config import TerminationConfig
from mimic_jax.envs.rewards import relative_reference
from mimic_jax.envs.robot import RobotState
from mimic_jax.motion.library import ANCHOR_INDEX, END_EFFECTOR_INDEX, RefFrame


def terminations(cfg: TerminationConfig, robot: RobotState, ref: RefFrame) -> dict[str, jnp.ndarray]:
    """Each fires strictly above its threshold."""
    anchor_z = robot.body_pos[ANCHOR_INDEX, 2]
    g_robot = jm.gravity_in_frame(robot.body_quat[ANCHOR_INDEX])
    g_ref = jm.gravity_in_frame(ref.anchor_quat)
    rel_pos, _ = relative_reference(robot, ref)
    ee = jnp.array(END_EFFECTOR_INDEX)
    ee_err = jnp.abs(rel_pos[ee, 2] - robot.body_pos[ee, 2])
    return {
        "anchor_height": jnp.abs(ref.anchor_pos[2] - anchor_z) > cfg.anchor_height,
        "anchor_tilt": jnp.abs(g_ref[2] - g_robot[2]) > cfg.anchor_tilt,
        "end_effector_height": jnp.any(ee_err > cfg.end_effector_height),
    }
