"""Reward terms: one table of named terms; the reward is their weighted sum (times dt, as Isaac Lab does).

Each row of :data:`TERMS` is a term's name (logged as ``reward/<name>``), the amount it measures, its
published weight and, for the tracking terms, the kernel width sigma: the term is exp(-amount / sigma^2)
in (0, 1]; without a sigma it is the raw non-negative amount (a penalty with a negative weight).
:class:`RewardConfig` is made from the table (``<name>_weight`` and ``<name>_sigma`` fields, settable as
``--set env.rewards.body_pos_sigma=0.2``), so adding a term is one new row here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax.numpy as jnp

from mimic_jax import math as jm
from mimic_jax.configs import FiniteFloat, PositiveFloat, check_fields
from mimic_jax.envs.robot import RobotState
from mimic_jax.motion.library import ANCHOR_INDEX, RefFrame


class RewardInputs(NamedTuple):
    """What the terms measure: robot and reference (also re-anchored onto the robot), actions, limits."""

    robot: RobotState
    ref: RefFrame
    rel_pos: jnp.ndarray  # [14, 3] reference bodies re-anchored onto the robot
    rel_quat: jnp.ndarray  # [14, 4]
    action: jnp.ndarray
    last_action: jnp.ndarray
    soft_lower: jnp.ndarray
    soft_upper: jnp.ndarray
    num_contacts: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class Term:
    amount: Callable[[RewardInputs], jnp.ndarray]
    weight: float
    sigma: float | None = None  # tracking kernel exp(-amount / sigma^2); None: the raw amount


def _mean_sq(a, b):
    return jnp.mean(jnp.sum(jnp.square(a - b), axis=-1))


def _joint_limit(x: RewardInputs):
    q = x.robot.joint_pos
    return jnp.sum(jnp.maximum(x.soft_lower - q, 0.0) + jnp.maximum(q - x.soft_upper, 0.0))


# The published terms (shared reference: tracking_mdp.md, rewards); the order is the order of the sum.
TERMS: dict[str, Term] = {
    "anchor_pos": Term(lambda x: jnp.sum(jnp.square(x.ref.anchor_pos - x.robot.body_pos[ANCHOR_INDEX])),
                       weight=0.5, sigma=0.3),
    "anchor_ori": Term(lambda x: jm.quat_angle_sq(x.ref.anchor_quat, x.robot.body_quat[ANCHOR_INDEX]),
                       weight=0.5, sigma=0.4),
    "body_pos": Term(lambda x: _mean_sq(x.rel_pos, x.robot.body_pos), weight=1.0, sigma=0.3),
    "body_ori": Term(lambda x: jnp.mean(jm.quat_angle_sq(x.rel_quat, x.robot.body_quat)), weight=1.0, sigma=0.4),
    "body_lin_vel": Term(lambda x: _mean_sq(x.ref.body_lin_vel, x.robot.body_lin_vel), weight=1.0, sigma=1.0),
    "body_ang_vel": Term(lambda x: _mean_sq(x.ref.body_ang_vel, x.robot.body_ang_vel), weight=1.0, sigma=3.14),
    "action_rate": Term(lambda x: jnp.sum(jnp.square(x.action - x.last_action)), weight=-0.1),
    "joint_limit": Term(_joint_limit, weight=-10.0),
    "undesired_contacts": Term(lambda x: x.num_contacts, weight=-0.1),
}

# Stored configs written before the table named this weight differently (``configs.from_dict(renamed=...)``).
RENAMED_FIELDS = {"env.rewards.undesired_contact_weight": "env.rewards.undesired_contacts_weight"}


def _config_fields():
    for name, term in TERMS.items():
        if term.sigma is not None:
            yield f"{name}_sigma", PositiveFloat, dataclasses.field(default=term.sigma)
        yield f"{name}_weight", FiniteFloat, dataclasses.field(default=term.weight)
    # Isaac Lab's reward manager multiplies every term by the control step (0.02 s).
    yield "scale_by_dt", bool, dataclasses.field(default=True)


RewardConfig = dataclasses.make_dataclass(
    "RewardConfig", list(_config_fields()), frozen=True, kw_only=True,
    namespace={"__post_init__": check_fields, "__module__": __name__,
               "__doc__": "Weights and kernel widths of the reward terms (made from ``rewards.TERMS``)."})


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


def reward_terms(cfg: RewardConfig, robot: RobotState, ref: RefFrame, action, last_action, soft_lower,
                 soft_upper, num_contacts) -> dict[str, jnp.ndarray]:
    """Unweighted terms: tracking kernels in (0, 1], penalties as raw non-negative amounts."""
    rel_pos, rel_quat = relative_reference(robot, ref)
    x = RewardInputs(robot, ref, rel_pos, rel_quat, action, last_action, soft_lower, soft_upper, num_contacts)
    out = {}
    for name, term in TERMS.items():
        amount = term.amount(x)
        if term.sigma is not None:
            sigma = getattr(cfg, f"{name}_sigma")
            amount = jnp.exp(-amount / (sigma * sigma))
        out[name] = amount
    return out


def weights(cfg: RewardConfig) -> dict[str, float]:
    """Term name -> its weight in ``cfg``."""
    return {name: getattr(cfg, f"{name}_weight") for name in TERMS}


def total_reward(cfg: RewardConfig, terms: dict[str, jnp.ndarray], dt: float) -> jnp.ndarray:
    scale = dt if cfg.scale_by_dt else 1.0
    return scale * sum(w * terms[name] for name, w in weights(cfg).items())
