"""Domain randomization as a pure function ``model, key -> batched model, in_axes`` (per environment, fixed
for its life): foot friction, torso centre of mass; plus default joint offsets, which live in the env state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from mimic_jax.envs.config import RandomizationConfig

RANDOMIZED_FIELDS = ("geom_friction", "body_ipos")


def foot_geom_ids(model: mujoco.MjModel) -> np.ndarray:
    return np.array([g for g in range(model.ngeom) if "_foot" in (model.geom(g).name or "")], dtype=np.int32)


def randomize_model(mx, key, num_envs: int, cfg: RandomizationConfig, foot_geoms: np.ndarray, torso_body: int):
    """Returns (batched model, in_axes): only the randomized fields carry the batch axis."""
    k_fric, k_com = jax.random.split(key)
    lo, hi = cfg.foot_friction
    friction = jnp.broadcast_to(mx.geom_friction, (num_envs,) + mx.geom_friction.shape)
    sliding = jax.random.uniform(k_fric, (num_envs,), minval=lo, maxval=hi)
    friction = friction.at[:, foot_geoms, 0].set(sliding[:, None])
    ipos = jnp.broadcast_to(mx.body_ipos, (num_envs,) + mx.body_ipos.shape)
    span = jnp.array([cfg.torso_com_x, cfg.torso_com_yz, cfg.torso_com_yz])
    offset = jax.random.uniform(k_com, (num_envs, 3), minval=-1.0, maxval=1.0) * span
    ipos = ipos.at[:, torso_body].add(offset)
    batched = mx.tree_replace({"geom_friction": friction, "body_ipos": ipos})
    in_axes = jax.tree_util.tree_map(lambda _: None, mx)
    in_axes = in_axes.tree_replace({"geom_friction": 0, "body_ipos": 0})
    return batched, in_axes


def default_joint_offsets(key, num_envs: int, cfg: RandomizationConfig, num_joints: int = 29):
    return jax.random.uniform(key, (num_envs, num_joints), minval=-cfg.joint_default_offset,
                              maxval=cfg.joint_default_offset)
