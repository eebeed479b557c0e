"""One pure learner step, used by every training mode: sampler update, PPO update, iteration metrics.

    out = learner_step(train_state, sampler, rollout, stats, counts, key, nets=..., ppo=..., sampler_cfg=...)

One device: called inside the fused iteration program. Several devices (one or several processes): called
inside the SPMD update program with ``axis_name``; then the rollout statistics and sampler counts are
summed over the devices first, the gradients, advantages and normalizer statistics are reduced inside
``sgd_update``, and every device ends with identical parameters and sampler state.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mimic_jax import sampling
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.networks import PPONetworks
from mimic_jax.ppo.rollout import StepStats, rollout_metrics
from mimic_jax.ppo.update import Rollout, TrainState, sgd_update


class LearnerOut(NamedTuple):
    train_state: TrainState
    sampler: sampling.SamplerState
    metrics: dict


def learner_step(train_state: TrainState, sampler: sampling.SamplerState, rollout: Rollout, stats: StepStats,
                 counts: sampling.SamplerCounts, key, *, nets: PPONetworks, ppo: PPOConfig,
                 sampler_cfg: sampling.SamplerConfig, axis_name: str | None = None) -> LearnerOut:
    """The learner's half of one iteration on this device's share of the batch (all of it with one device).

    ``stats`` [T] and ``counts`` [NB] are this device's sums; ``ppo.num_envs`` is the global batch.
    """
    if axis_name is not None:
        stats, counts = jax.lax.psum((stats, counts), axis_name)
    sampler = sampling.apply_counts(sampler, sampler_cfg, counts, num_steps=ppo.unroll_length)
    train_state, metrics = sgd_update(nets, train_state, rollout, key, ppo, axis_name=axis_name)
    metrics.update(rollout_metrics(stats, ppo.num_envs))
    metrics["params_finite"] = all_finite(train_state.params)
    return LearnerOut(train_state=train_state, sampler=sampler, metrics=metrics)


def all_finite(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
