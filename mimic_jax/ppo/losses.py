"""PPO maths: GAE with time-out bootstrapping, the rsl_rl PPO loss and its adaptive-KL learning rate."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.networks import (
    NormalizerState,
    Obs,
    PPONetworks,
    PPOParams,
    normal_entropy,
    normal_kl,
    normal_log_prob,
)


class Batch(NamedTuple):
    """Flat training samples (leading dim B); `obs` holds at least obs['actor'] and obs['critic']."""

    obs: Obs
    actions: jax.Array  # [B, A] sampled (raw, unclipped) actions
    log_probs: jax.Array  # [B] behaviour log pi_old(a|s)
    means: jax.Array  # [B, A] behaviour Gaussian mean
    stds: jax.Array  # [B, A] behaviour Gaussian std
    values: jax.Array  # [B] behaviour critic V_old(s)
    advantages: jax.Array  # [B] (already normalised if cfg.normalize_advantage)
    returns: jax.Array  # [B] value targets R = A_gae + V_old (un-normalised advantages)


class _GAECarry(NamedTuple):
    advantage: jax.Array  # A_{t+1}
    next_value: jax.Array  # V(s_{t+1})


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    bootstrap_value: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    truncation_values: jax.Array | None = None,
    *,
    gamma: float,
    lam: float,
) -> tuple[jax.Array, jax.Array]:
    """GAE(gamma, lambda) over a [T, N] rollout, rsl_rl / Isaac-Lab style time-out bootstrapping.

    Step t is (s_t, a_t, r_t) with V_t = V(s_t); `bootstrap_value` = V(s_T) of the observation after the
    last step. A truncated step (time limit, not a failure) gets the discounted value of the final
    pre-reset observation folded into its reward, and then every done step cuts the recursion:
      r'_t   = r_t + gamma * truncated_t * Vfin_t,   Vfin = `truncation_values` (default: `values`), read only
                                                 where truncated (NaN elsewhere is ignored)
      done_t = terminated_t OR truncated_t
      delta_t = r'_t + gamma * (1 - done_t) * V_{t+1} - V_t,            V_T = bootstrap_value
      A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},         A_T = 0
      R_t     = A_t + V_t
    Terminations therefore never bootstrap, truncations bootstrap exactly one step of V(s_final).
    `truncation_values=None` uses V(s_t) in place of V(s_final): exactly what rsl_rl does
    (`rewards += gamma * values * time_outs`); pass V(final obs) for the unbiased version.
    Returns (advantages [T, N], returns [T, N]), gradients stopped.
    """
    terminated = terminated.astype(rewards.dtype)
    truncated = truncated.astype(rewards.dtype)
    final_values = values if truncation_values is None else truncation_values
    # where, not a product: a non-truncated step's final value may be NaN (a blown-up env), and 0 * NaN = NaN.
    rewards = rewards + gamma * jnp.where(truncated > 0, truncated * final_values, 0.0)
    not_done = 1.0 - jnp.maximum(terminated, truncated)

    def step(carry: _GAECarry, xs) -> tuple[_GAECarry, jax.Array]:
        reward, value, live = xs
        delta = reward + gamma * live * carry.next_value - value
        advantage = delta + gamma * lam * live * carry.advantage
        return _GAECarry(advantage=advantage, next_value=value), advantage

    init = _GAECarry(advantage=jnp.zeros_like(bootstrap_value), next_value=bootstrap_value)
    _, advantages = jax.lax.scan(step, init, (rewards, values, not_done), reverse=True)
    advantages = jax.lax.stop_gradient(advantages)
    return advantages, jax.lax.stop_gradient(advantages + values)


def normalize_advantages(advantages: jax.Array, axis_name: str | None = None) -> jax.Array:
    """(A - mean) / (std + 1e-8) over every sample (all devices when `axis_name` is given).

    std is the unbiased (n - 1) estimate, as `torch.Tensor.std` in rsl_rl. Devices must hold equally
    many samples (true for the fixed-shape SPMD rollout), so pmean of per-device means is the global mean.
    """
    n = advantages.size
    mean = jnp.mean(advantages)
    mean_sq = jnp.mean(jnp.square(advantages))
    if axis_name is not None:
        mean, mean_sq = jax.lax.pmean((mean, mean_sq), axis_name)
        n = n * jax.lax.psum(1, axis_name)
    var = jnp.maximum(mean_sq - jnp.square(mean), 0.0) * n / jnp.maximum(n - 1, 1)
    return (advantages - mean) / (jnp.sqrt(var) + 1e-8)


def clipped_surrogate_loss(
    log_probs: jax.Array, old_log_probs: jax.Array, advantages: jax.Array, clip: float
) -> tuple[jax.Array, jax.Array]:
    """PPO-clip policy loss and clip fraction.

      rho = exp(log pi(a|s) - log pi_old(a|s))
      L   = mean( max(-A * rho, -A * clip(rho, 1 - eps, 1 + eps)) )
      clip_fraction = mean( |rho - 1| > eps )
    """
    ratio = jnp.exp(log_probs - old_log_probs)
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - clip, 1.0 + clip)
    loss = jnp.mean(jnp.maximum(unclipped, clipped))
    clip_fraction = jnp.mean((jnp.abs(ratio - 1.0) > clip).astype(jnp.float32))
    return loss, clip_fraction


def clipped_value_loss(values: jax.Array, old_values: jax.Array, returns: jax.Array, clip: float) -> jax.Array:
    """rsl_rl clipped value loss (no 1/2 factor).

      V_clip = V_old + clip(V - V_old, -eps, eps)
      L_V    = mean( max((V - R)^2, (V_clip - R)^2) )
    """
    value_clipped = old_values + jnp.clip(values - old_values, -clip, clip)
    return jnp.mean(jnp.maximum(jnp.square(values - returns), jnp.square(value_clipped - returns)))


def ppo_loss(
    nets: PPONetworks, params: PPOParams, norm_params: NormalizerState, batch: Batch, cfg: PPOConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total loss L = L_clip + c_v * L_V - c_H * mean H(pi(.|s)), with metrics.

    L_V is `clipped_value_loss` (or the plain mean((V - R)^2) with `cfg.clipped_value_loss=False`).
    `approx_kl` is the rsl_rl analytic mean KL(pi_old || pi) over the minibatch (no gradient); it drives
    `adaptive_lr`. Advantages are used as given (normalised once per update by the caller).
    """
    mean, std = nets.policy_distribution(params, norm_params, batch.obs)
    values = nets.value(params, norm_params, batch.obs)
    log_probs = normal_log_prob(mean, std, batch.actions)
    policy_loss, clip_fraction = clipped_surrogate_loss(log_probs, batch.log_probs, batch.advantages, cfg.clip_param)
    if cfg.clipped_value_loss:
        value_loss = clipped_value_loss(values, batch.values, batch.returns, cfg.value_clip_param)
    else:
        value_loss = jnp.mean(jnp.square(values - batch.returns))
    entropy = jnp.mean(normal_entropy(mean, std))
    loss = policy_loss + cfg.value_loss_coef * value_loss - cfg.entropy_coef * entropy
    kl = jax.lax.stop_gradient(jnp.mean(normal_kl(batch.means, batch.stds, mean, std)))
    metrics = {
        "total_loss": loss,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": kl,
        "clip_fraction": clip_fraction,
        "action_std": jnp.mean(std),
    }
    return loss, metrics


def adaptive_lr(lr: jax.Array, kl: jax.Array, cfg: PPOConfig) -> jax.Array:
    """rsl_rl adaptive-KL schedule (identity when `cfg.schedule == 'fixed'`).

      kl > 2 * kl*            -> lr = max(lr_min, lr / 1.5)
      0 < kl < kl* / 2        -> lr = min(lr_max, lr * 1.5)
      otherwise               -> lr unchanged
    with kl* = cfg.desired_kl, [lr_min, lr_max] = [cfg.min_learning_rate, cfg.max_learning_rate].
    """
    if cfg.schedule == "fixed":
        return jnp.asarray(lr)
    if cfg.schedule != "adaptive":
        raise ValueError(f"unknown schedule {cfg.schedule!r}; expected 'adaptive' or 'fixed'")
    lr = jnp.asarray(lr)
    lr = jnp.where(kl > 2.0 * cfg.desired_kl, jnp.maximum(cfg.min_learning_rate, lr / 1.5), lr)
    grow = (kl < 0.5 * cfg.desired_kl) & (kl > 0.0)
    return jnp.where(grow, jnp.minimum(cfg.max_learning_rate, lr * 1.5), lr)
