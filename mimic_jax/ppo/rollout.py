"""The training rollout: ``lax.scan`` of policy + batched auto-reset env over the unroll, producing a PPO
``Rollout``, per-step statistics and the sampler counts of the whole unroll.

Random draws are per environment: action noise from ``envs.episodes.policy_keys`` of each env's own key
(the same keys the episode runner gives a policy), start frames and reset noise likewise (``autoreset``),
so a batch split over devices draws exactly what the same batch draws on one device.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mimic_jax import sampling
from mimic_jax.envs.autoreset import BatchedEnv, BatchState
from mimic_jax.envs.episodes import World, policy_keys
from mimic_jax.envs.tracking import buffer_overflow
from mimic_jax.ppo.networks import PPONetworks, PPOParams
from mimic_jax.ppo.update import Rollout


class Step(NamedTuple):
    """One control step of the rollout: the fields of ``Rollout`` but ``bootstrap_value`` ([N] each step;
    the scan stacks them to [T, N])."""

    obs: dict
    actions: jax.Array
    log_probs: jax.Array
    means: jax.Array
    stds: jax.Array
    values: jax.Array
    rewards: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    truncation_values: jax.Array


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


class _ScanOut(NamedTuple):
    step: Step
    stats: StepStats
    counts: sampling.SamplerCounts


class RolloutResult(NamedTuple):
    """One unroll: the env state after it, the PPO batch [T, N], statistics [T] and the sampler counts
    summed over the unroll ([NB] each)."""

    state: BatchState
    rollout: Rollout
    stats: StepStats
    counts: sampling.SamplerCounts


def _step_stats(tr, ended, ep_len, data) -> StepStats:
    f32 = lambda x: jnp.sum(x.astype(jnp.float32))  # noqa: E731
    return StepStats(
        reward=jnp.sum(tr.reward), terms={k: jnp.sum(v) for k, v in tr.info.terms.items()},
        terminations={k: f32(v) for k, v in tr.info.terminations.items()}, episodes=f32(ended),
        failures=f32(tr.terminated), episode_length_sum=jnp.sum(jnp.where(ended, ep_len, 0)).astype(jnp.float32),
        nonfinite=f32(tr.info.nonfinite), overflow=buffer_overflow(data).astype(jnp.float32))


def rollout(nets: PPONetworks, benv: BatchedEnv, unroll_length: int, params: PPOParams, normalizer, world: World,
            bs: BatchState) -> RolloutResult:
    """``unroll_length`` steps of the behaviour policy in the batched env."""

    def body(bs: BatchState, _):
        obs = bs.env.obs
        act = nets.act(params, normalizer, obs, policy_keys(bs.env.rng))
        value = nets.value(params, normalizer, obs)
        ep_len = bs.env.step + 1
        bs, tr = benv.step(world, bs, act.action)
        # Only a truncated (hence finite) step bootstraps: a blown-up env's final obs is NaN and 0 * NaN = NaN.
        truncation_value = jnp.where(tr.truncated, nets.value(params, normalizer, tr.final_obs), 0.0)
        ended = tr.terminated | (tr.truncated & (tr.info.time_out | (benv.cfg.on_clip_end == "truncate")))
        step = Step(obs=obs, actions=act.action, log_probs=act.log_prob, means=act.mean, stds=act.std, values=value,
                    rewards=tr.reward, terminated=tr.terminated, truncated=tr.truncated,
                    truncation_values=truncation_value)
        return bs, _ScanOut(step, _step_stats(tr, ended, ep_len, bs.env.data), tr.counts)

    bs, out = jax.lax.scan(body, bs, None, length=unroll_length)
    batch = Rollout(**out.step._asdict(), bootstrap_value=nets.value(params, normalizer, bs.env.obs))
    counts = jax.tree.map(lambda x: jnp.sum(x, axis=0), out.counts)
    return RolloutResult(state=bs, rollout=batch, stats=out.stats, counts=counts)


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
