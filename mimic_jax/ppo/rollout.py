"""The rollout: ``lax.scan`` of policy + batched env over the unroll, producing a PPO ``Rollout``.

Random draws are per environment (from each env's own key), so a batch split over devices draws exactly
what the same batch draws on one device.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mimic_jax.envs.autoreset import BatchedEnv, BatchState
from mimic_jax.envs.tracking import buffer_overflow
from mimic_jax.ppo.networks import PPONetworks, PPOParams, normal_log_prob
from mimic_jax.ppo.update import Rollout

ACTION_NOISE_SALT = 0x5EED


class StepStats(NamedTuple):
    """Per-step sums over the batch, reduced to iteration metrics by ``rollout_metrics``."""

    reward: jax.Array
    terms: dict
    terminations: dict
    episodes: jax.Array  # episodes that ended (failure or time limit)
    failures: jax.Array
    episode_length_sum: jax.Array  # control steps of the episodes that ended
    nonfinite: jax.Array
    overflow: jax.Array  # MJX-Warp contact/constraint buffer overflow this step
    counts: tuple  # sampler increments


def _policy(nets: PPONetworks, params: PPOParams, normalizer, obs, env_keys):
    mean, std = nets.policy_distribution(params, normalizer, obs)
    noise = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, ACTION_NOISE_SALT), mean.shape[1:]))(env_keys)
    action = mean + std * noise
    return action, normal_log_prob(mean, std, action), mean, std


def rollout(nets: PPONetworks, benv: BatchedEnv, unroll_length: int, params: PPOParams, normalizer, m, in_axes,
            lib, bs: BatchState):
    """Returns (new BatchState, Rollout [T, N], StepStats summed per step [T])."""

    def body(bs: BatchState, _):
        obs = bs.env.obs
        action, log_prob, mean, std = _policy(nets, params, normalizer, obs, bs.env.rng)
        value = nets.value(params, normalizer, obs)
        ep_len = bs.env.step + 1
        bs, tr = benv.step(m, in_axes, lib, bs, action)
        truncation_value = nets.value(params, normalizer, tr.final_obs)
        ended = tr.terminated | (tr.truncated & (tr.info.time_out | (benv.cfg.on_clip_end == "truncate")))
        step = (obs, action, log_prob, mean, std, value, tr.reward, tr.terminated, tr.truncated, truncation_value)
        f32 = lambda x: jnp.sum(x.astype(jnp.float32))  # noqa: E731
        stats = StepStats(
            reward=jnp.sum(tr.reward), terms={k: jnp.sum(v) for k, v in tr.info.terms.items()},
            terminations={k: f32(v) for k, v in tr.info.terminations.items()}, episodes=f32(ended),
            failures=f32(tr.terminated), episode_length_sum=jnp.sum(jnp.where(ended, ep_len, 0)).astype(jnp.float32),
            nonfinite=f32(tr.info.nonfinite), overflow=buffer_overflow(bs.env.data).astype(jnp.float32),
            counts=tr.counts)
        return bs, (step, stats)

    bs, (steps, stats) = jax.lax.scan(body, bs, None, length=unroll_length)
    obs, actions, log_probs, means, stds, values, rewards, terminated, truncated, trunc_values = steps
    out = Rollout(obs=obs, actions=actions, log_probs=log_probs, means=means, stds=stds, values=values,
                  rewards=rewards, terminated=terminated, truncated=truncated, truncation_values=trunc_values,
                  bootstrap_value=nets.value(params, normalizer, bs.env.obs))
    return bs, out, stats


def rollout_metrics(stats: StepStats, num_envs: int) -> dict[str, jax.Array]:
    """Iteration metrics from per-step sums (already summed over devices)."""
    steps = stats.reward.shape[0] * num_envs
    episodes = jnp.sum(stats.episodes)
    metrics = {"rollout/reward_per_step": jnp.sum(stats.reward) / steps,
               "episode/count": episodes,
               "episode/length": jnp.sum(stats.episode_length_sum) / jnp.maximum(episodes, 1.0),
               "episode/failure_rate": jnp.sum(stats.failures) / jnp.maximum(episodes, 1.0),
               "physics/nonfinite_resets": jnp.sum(stats.nonfinite),
               "physics/buffer_overflow_steps": jnp.sum(stats.overflow)}
    metrics.update({f"reward/{k}": jnp.sum(v) / steps for k, v in stats.terms.items()})
    metrics.update({f"termination/{k}": jnp.sum(v) / steps for k, v in stats.terminations.items()})
    return metrics
