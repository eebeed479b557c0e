"""PPO learner step: GAE + advantage normalisation, epochs x shuffled minibatches, adaptive-KL Adam.

Everything is fixed-shape `lax.scan`, so `sgd_update` can be fused with the rollout in one XLA program.

Multi-device (SPMD, e.g. `shard_map`/`pmap` with a named axis): pass `axis_name`. Then
  * advantage mean/std are global (`pmean`),
  * gradients are `pmean`-ed before clipping and Adam, so every device applies the same update,
  * the minibatch KL that drives the learning rate is `pmean`-ed (rsl_rl all-reduces it too), so the
    learning rate stays identical on all devices,
  * reported metrics are `pmean`-ed,
  * the observation normaliser merges all devices' batches exactly (`psum` of counts and Welford sums,
    brax `running_statistics.update(pmap_axis_name=...)`).
Each device shuffles its own local samples (the same `key` on every device is fine).
"""

import functools
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.losses import Batch, adaptive_lr, compute_gae, normalize_advantages, ppo_loss
from mimic_jax.ppo.networks import OBS_KEYS, NormalizerState, Obs, PPONetworks, PPOParams, update_normalizer


@flax.struct.dataclass
class TrainState:
    """Learner state. The current learning rate lives in `opt_state[1].hyperparams['learning_rate']`."""

    params: PPOParams
    normalizer: NormalizerState
    opt_state: Any
    iteration: jax.Array  # int32, number of `sgd_update` calls
    sgd_steps: jax.Array  # int32, number of optimizer steps


class Rollout(NamedTuple):
    """What the rollout must produce for one iteration; time-major [T, N] (T = unroll_length).

    Step t: the agent saw obs_t, sampled a_t ~ N(mean_t, std_t) (stored raw, before any env clipping),
    received r_t, and the env reported whether the step ended the episode.
    """

    obs: Obs  # {'actor': [T, N, A_obs], 'critic': [T, N, C_obs]} observations before acting (raw)
    actions: jax.Array  # [T, N, A]
    log_probs: jax.Array  # [T, N] log pi_old(a_t | s_t)
    means: jax.Array  # [T, N, A]
    stds: jax.Array  # [T, N, A]
    values: jax.Array  # [T, N] V_old(s_t)
    rewards: jax.Array  # [T, N]
    terminated: jax.Array  # [T, N] bool/float: episode failed at this step (no bootstrap)
    truncated: jax.Array  # [T, N] bool/float: time limit / clip end at this step (bootstrap)
    truncation_values: jax.Array  # [T, N] V(final pre-reset obs) where truncated (else anything)
    bootstrap_value: jax.Array  # [N] V(s_T), critic value of the observation after the last step


class _OptCarry(NamedTuple):
    params: PPOParams
    opt_state: Any


class _EpochCarry(NamedTuple):
    params: PPOParams
    opt_state: Any
    key: jax.Array


def make_optimizer(cfg: PPOConfig) -> optax.GradientTransformation:
    """clip_by_global_norm(max_grad_norm) -> Adam(lr) with an injectable learning rate."""
    return optax.chain(
        optax.clip_by_global_norm(cfg.max_grad_norm),
        optax.inject_hyperparams(optax.adam)(learning_rate=cfg.learning_rate),
    )


def init_train_state(nets: PPONetworks, key: jax.Array, cfg: PPOConfig) -> TrainState:
    """Fresh parameters, empty normaliser statistics, Adam state at lr = cfg.learning_rate."""
    params = nets.init(key)
    zero = jnp.zeros((), jnp.int32)
    return TrainState(
        params=params,
        normalizer=nets.init_normalizer(),
        opt_state=make_optimizer(cfg).init(params),
        iteration=zero,
        sgd_steps=zero,
    )


def learning_rate(opt_state: Any) -> jax.Array:
    """Current learning rate stored in the optimizer state."""
    return opt_state[1].hyperparams["learning_rate"]


def _with_learning_rate(opt_state: Any, lr: jax.Array) -> Any:
    adam_state = opt_state[1]
    hyperparams = {**adam_state.hyperparams, "learning_rate": lr}
    return (opt_state[0], adam_state._replace(hyperparams=hyperparams), *opt_state[2:])


def prepare_batch(rollout: Rollout, cfg: PPOConfig, axis_name: str | None = None) -> Batch:
    """GAE on the [T, N] rollout, optional whole-batch advantage normalisation, flatten to [T * N]."""
    advantages, returns = compute_gae(
        rollout.rewards,
        rollout.values,
        rollout.bootstrap_value,
        rollout.terminated,
        rollout.truncated,
        rollout.truncation_values,
        gamma=cfg.gamma,
        lam=cfg.gae_lambda,
    )
    if cfg.normalize_advantage:
        advantages = normalize_advantages(advantages, axis_name)
    batch = Batch(
        obs={k: rollout.obs[k] for k in OBS_KEYS},
        actions=rollout.actions,
        log_probs=rollout.log_probs,
        means=rollout.means,
        stds=rollout.stds,
        values=rollout.values,
        advantages=advantages,
        returns=returns,
    )
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)


def _pmean(tree: Any, axis_name: str | None) -> Any:
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _minibatch_step(nets, cfg, axis_name, normalizer, carry: _OptCarry, minibatch: Batch):
    """One rsl_rl minibatch step: forward/backward, adapt lr from this minibatch's KL, then Adam.

    As in rsl_rl the KL is measured before the step and the adapted lr is used for this very step.
    """
    grad_fn = jax.value_and_grad(ppo_loss, argnums=1, has_aux=True)
    (_, metrics), grads = grad_fn(nets, carry.params, normalizer, minibatch, cfg)
    grads, metrics = _pmean((grads, metrics), axis_name)
    lr = adaptive_lr(learning_rate(carry.opt_state), metrics["approx_kl"], cfg)
    opt_state = _with_learning_rate(carry.opt_state, lr)
    updates, opt_state = make_optimizer(cfg).update(grads, opt_state, carry.params)
    params = optax.apply_updates(carry.params, updates)
    metrics = {**metrics, "grad_norm": optax.tree.norm(grads), "learning_rate": lr}
    return _OptCarry(params, opt_state), metrics


def _epoch(nets, cfg, axis_name, normalizer, batch: Batch, carry: _EpochCarry, _):
    """Shuffle the local batch (fresh permutation each epoch) and sweep its minibatches."""
    key, key_perm = jax.random.split(carry.key)
    num_samples = batch.actions.shape[0]
    perm = jax.random.permutation(key_perm, num_samples)
    shape = (cfg.num_minibatches, num_samples // cfg.num_minibatches)
    minibatches = jax.tree.map(lambda x: x[perm].reshape(shape + x.shape[1:]), batch)
    step = functools.partial(_minibatch_step, nets, cfg, axis_name, normalizer)
    opt_carry, metrics = jax.lax.scan(step, _OptCarry(carry.params, carry.opt_state), minibatches)
    return _EpochCarry(opt_carry.params, opt_carry.opt_state, key), metrics


def sgd_update(
    nets: PPONetworks,
    train_state: TrainState,
    rollout: Rollout,
    key: jax.Array,
    cfg: PPOConfig,
    axis_name: str | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One PPO learning phase on a rollout: cfg.num_epochs x cfg.num_minibatches optimizer steps.

    The loss uses `train_state.normalizer`, i.e. the statistics the rollout was collected with, so the
    stored log-probs / means / values match the networks' inputs; the normaliser is updated with the
    rollout's observations afterwards (brax's order for adaptive KL). Returns the new state and the
    metrics averaged over all minibatches, plus `learning_rate` = the lr after the update.
    """
    num_samples = rollout.actions.shape[0] * rollout.actions.shape[1]
    if num_samples % cfg.num_minibatches:
        raise ValueError(f"{num_samples} samples not divisible by {cfg.num_minibatches} minibatches")
    batch = prepare_batch(rollout, cfg, axis_name)
    epoch = functools.partial(_epoch, nets, cfg, axis_name, train_state.normalizer, batch)
    init = _EpochCarry(train_state.params, train_state.opt_state, key)
    carry, metrics = jax.lax.scan(epoch, init, None, length=cfg.num_epochs)
    metrics = jax.tree.map(jnp.mean, metrics)
    metrics["learning_rate"] = learning_rate(carry.opt_state)
    new_state = TrainState(
        params=carry.params,
        normalizer=update_normalizer(train_state.normalizer, rollout.obs, cfg, axis_name),
        opt_state=carry.opt_state,
        iteration=train_state.iteration + 1,
        sgd_steps=train_state.sgd_steps + cfg.num_epochs * cfg.num_minibatches,
    )
    return new_state, metrics
