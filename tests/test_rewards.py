"""Reward terms: the table of named terms, their kernels and weights, pinned on one fixed robot state."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from mimic_jax.envs import rewards
from mimic_jax.envs.config import RewardConfig
from mimic_jax.envs.robot import RobotState
from mimic_jax.motion.library import RefFrame

NAMES = ("anchor_pos", "anchor_ori", "body_pos", "body_ori", "body_lin_vel", "body_ang_vel", "action_rate",
         "joint_limit", "undesired_contacts")
# total_reward(RewardConfig(), ...) on fixed_inputs(), computed by the code before the term table (three
# places: RewardConfig fields, reward_terms, weights) at commit 0a662af, float32 on a CPU.
PINNED_TOTAL = -0.359889417886734


def _quats(rng, n):
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def fixed_inputs():
    """A robot 5-20 cm and a few degrees off its reference, with some joints beyond their soft limits."""
    rng = np.random.default_rng(7)
    ref = RefFrame(joint_pos=jnp.asarray(rng.normal(size=29) * 0.3, jnp.float32),
                   joint_vel=jnp.asarray(rng.normal(size=29), jnp.float32),
                   body_pos=jnp.asarray(rng.normal(size=(14, 3)) * 0.4 + [0, 0, 0.8], jnp.float32),
                   body_quat=jnp.asarray(_quats(rng, 14), jnp.float32),
                   body_lin_vel=jnp.asarray(rng.normal(size=(14, 3)), jnp.float32),
                   body_ang_vel=jnp.asarray(rng.normal(size=(14, 3)) * 2, jnp.float32))
    quat = np.asarray(ref.body_quat) + rng.normal(size=(14, 4)) * 0.05
    robot = RobotState(body_pos=ref.body_pos + jnp.asarray(rng.normal(size=(14, 3)) * 0.1, jnp.float32),
                       body_quat=jnp.asarray(quat / np.linalg.norm(quat, axis=-1, keepdims=True), jnp.float32),
                       body_lin_vel=ref.body_lin_vel + jnp.asarray(rng.normal(size=(14, 3)) * 0.5, jnp.float32),
                       body_ang_vel=ref.body_ang_vel + jnp.asarray(rng.normal(size=(14, 3)), jnp.float32),
                       joint_pos=ref.joint_pos + jnp.asarray(rng.normal(size=29) * 0.2, jnp.float32),
                       joint_vel=ref.joint_vel, root_lin_vel_b=jnp.zeros(3), root_ang_vel_b=jnp.zeros(3))
    action, last_action = (jnp.asarray(rng.normal(size=29), jnp.float32) for _ in range(2))
    limits = jnp.full(29, 0.4, jnp.float32)
    return robot, ref, action, last_action, -limits, limits, jnp.asarray(3.0)


def test_total_reward_is_pinned():
    robot, ref, *rest = fixed_inputs()
    terms = rewards.reward_terms(RewardConfig(), robot, ref, *rest)
    assert tuple(terms) == NAMES
    total = rewards.total_reward(RewardConfig(), terms, 0.02)
    assert float(total) == PINNED_TOTAL
    weights = {"anchor_pos": 0.5, "anchor_ori": 0.5, "body_pos": 1.0, "body_ori": 1.0, "body_lin_vel": 1.0,
               "body_ang_vel": 1.0, "action_rate": -0.1, "joint_limit": -10.0, "undesired_contacts": -0.1}
    np.testing.assert_allclose(total, 0.02 * sum(w * float(terms[k]) for k, w in weights.items()), rtol=1e-6)
    unscaled = rewards.total_reward(RewardConfig(scale_by_dt=False), terms, 0.02)
    np.testing.assert_allclose(unscaled, total / 0.02, rtol=1e-6)


def test_kernels_and_penalties():
    robot, ref, action, last_action, lower, upper, contacts = fixed_inputs()
    cfg = RewardConfig(body_pos_sigma=0.2, undesired_contacts_weight=-1.0)
    terms = rewards.reward_terms(cfg, robot, ref, action, last_action, lower, upper, contacts)
    rel_pos = np.asarray(rewards.relative_reference(robot, ref)[0])
    err = np.mean(np.sum(np.square(rel_pos - np.asarray(robot.body_pos)), axis=-1))
    np.testing.assert_allclose(terms["body_pos"], np.exp(-err / 0.2 ** 2), rtol=1e-5)
    q = np.asarray(robot.joint_pos)
    np.testing.assert_allclose(terms["joint_limit"], np.sum(np.maximum(np.abs(q) - 0.4, 0.0)), rtol=1e-5)
    np.testing.assert_allclose(terms["action_rate"], np.sum(np.square(np.asarray(action - last_action))), rtol=1e-5)
    assert float(terms["undesired_contacts"]) == 3.0


def test_config_fields_come_from_the_term_table():
    fields = {f.name: f.default for f in dataclasses.fields(RewardConfig)}
    for name, term in rewards.TERMS.items():
        assert fields.pop(f"{name}_weight") == term.weight
        if term.sigma is not None:
            assert fields.pop(f"{name}_sigma") == term.sigma
    assert fields == {"scale_by_dt": True}
    with pytest.raises(ValueError, match="body_pos_sigma must be > 0"):
        RewardConfig(body_pos_sigma=0.0)
