"""Asymmetric actor-critic for PPO, built from brax pieces.

* Actor: `brax.training.networks.make_policy_network(distribution_type='normal', noise_std_type='log')`
  on `obs['actor']`: an MLP (ELU, `cfg.hidden_sizes`) gives the mean mu(s) of a diagonal Gaussian,
  **no tanh squashing** (actions are unbounded; the env scales/clips them), and a state-independent
  learned log-std vector `params.policy['params']['std_logparam']['log_value']`, std = exp(log_std),
  initialised to log(cfg.init_std) so std == init_std == 1.0 at start (rsl_rl's `init_noise_std`).
* Critic: `make_value_network` on `obs['critic']` (privileged observations), scalar output.
* Kernels use PyTorch's default `nn.Linear` init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) =
  variance_scaling(1/3, fan_in, uniform), as rsl_rl; biases start at 0 (brax default).
* Observation normalisation: one `brax.training.acme.running_statistics.RunningStatisticsState` whose
  mean/std are dicts `{'actor': [A], 'critic': [C]}`; brax's `normalizer_select(state, obs_key)` feeds
  each network its own statistics, x_norm = (x - mean) / std. The statistics are exact running
  (Welford) population mean/variance over every observation seen; std is clamped to
  >= `cfg.obs_std_min` so constant features cannot blow up. With `normalize_observations=False` the
  state is never updated, i.e. stays mean 0 / std 1, so normalisation is the identity.

Diagonal Normal maths (all sums over the action dimension, d = action_size):
  log N(a; mu, s) = sum_i [ -(a_i - mu_i)^2 / (2 s_i^2) - log s_i - log(2 pi) / 2 ]
  H(mu, s)       = sum_i [ 1/2 + log(2 pi)/2 + log s_i ]
  KL(old || new) = sum_i [ log(s_i / s_old_i + 1e-5) + (s_old_i^2 + (mu_old_i - mu_i)^2) / (2 s_i^2) - 1/2 ]
The KL is rsl_rl's formula (including its 1e-5) and brax's `_NormalDistribution.kl_divergence`.
"""

import dataclasses
from typing import Any, Mapping, NamedTuple

import flax
import jax
import jax.numpy as jnp
from brax.training import distribution
from brax.training import networks as brax_networks
from brax.training.acme import running_statistics

from mimic_jax.ppo.config import PPOConfig

ACTOR_KEY = "actor"
CRITIC_KEY = "critic"
OBS_KEYS = (ACTOR_KEY, CRITIC_KEY)

NormalizerState = running_statistics.RunningStatisticsState
Obs = Mapping[str, jax.Array]


@flax.struct.dataclass
class PPOParams:
    """Trainable parameters: flax variable dicts of the actor (`policy`) and the critic (`value`)."""

    policy: Any
    value: Any


class ActOutput(NamedTuple):
    """One draw of the behaviour policy and what PPO stores with it (leading dims are the env batch dims)."""

    action: jax.Array  # [..., A] raw Gaussian sample (what the log-prob refers to)
    log_prob: jax.Array  # [...]
    mean: jax.Array  # [..., A]
    std: jax.Array  # [..., A]


def _gaussian(mean: jax.Array, std: jax.Array):
    """brax's diagonal Normal (identity post-processor, i.e. no tanh)."""
    return distribution.NormalDistribution(event_size=mean.shape[-1]).create_dist((mean, std))


def normal_log_prob(mean: jax.Array, std: jax.Array, action: jax.Array) -> jax.Array:
    """log N(action; mean, std) summed over the last axis."""
    return jnp.sum(_gaussian(mean, std).log_prob(action), axis=-1)


def normal_entropy(mean: jax.Array, std: jax.Array) -> jax.Array:
    """Differential entropy of the diagonal Normal, summed over the last axis."""
    return jnp.sum(_gaussian(mean, std).entropy(), axis=-1)


def normal_kl(old_mean: jax.Array, old_std: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """rsl_rl's KL(old || new) between diagonal Normals, summed over the last axis."""
    return _gaussian(mean, std).kl_divergence(_gaussian(old_mean, old_std))


def _cast(tree: Any, dtype: jnp.dtype) -> Any:
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _make_preprocess(dtype: jnp.dtype):
    """Normalise in float32, then cast to the network compute dtype."""

    def preprocess(obs: jax.Array, mean_std: running_statistics.NestedMeanStd) -> jax.Array:
        return running_statistics.normalize(obs, mean_std).astype(dtype)

    return preprocess


@dataclasses.dataclass(frozen=True, eq=False)
class PPONetworks:
    """Pure functions of (params, normalizer state, obs dict); hashable by identity (static for jit)."""

    policy_network: brax_networks.FeedForwardNetwork
    value_network: brax_networks.FeedForwardNetwork
    actor_obs_size: int
    critic_obs_size: int
    action_size: int
    dtype: jnp.dtype

    def init(self, key: jax.Array) -> PPOParams:
        """Random initial parameters (std == cfg.init_std)."""
        key_policy, key_value = jax.random.split(key)
        return PPOParams(policy=self.policy_network.init(key_policy), value=self.value_network.init(key_value))

    def init_normalizer(self) -> NormalizerState:
        """Running statistics for obs['actor'] and obs['critic'] (mean 0, std 1, count 0)."""
        sizes = {ACTOR_KEY: self.actor_obs_size, CRITIC_KEY: self.critic_obs_size}
        return running_statistics.init_state({k: jnp.zeros((n,), jnp.float32) for k, n in sizes.items()})

    def policy_distribution(self, params: PPOParams, norm_params: NormalizerState, obs: Obs):
        """(mean [..., A], std [..., A]) of the Gaussian policy at obs['actor']."""
        mean, std = self.policy_network.apply(norm_params, _cast(params.policy, self.dtype), obs)
        return mean.astype(jnp.float32), std.astype(jnp.float32)

    def deterministic_action(self, params: PPOParams, norm_params: NormalizerState, obs: Obs) -> jax.Array:
        """The Gaussian mean (mode), unbounded."""
        return self.policy_distribution(params, norm_params, obs)[0]

    def value(self, params: PPOParams, norm_params: NormalizerState, obs: Obs) -> jax.Array:
        """Critic V(obs['critic']), shape [...]."""
        value = self.value_network.apply(norm_params, _cast(params.value, self.dtype), obs)
        return value.astype(jnp.float32)

    def act(self, params: PPOParams, norm_params: NormalizerState, obs: Obs, keys: jax.Array) -> ActOutput:
        """The one way to draw an action: a = mean + std * eps, eps ~ N(0, I) drawn from each environment's
        own key (``keys`` [..., 2], the batch dims of ``obs``), so a batch split over devices draws what the
        whole batch draws on one device."""
        mean, std = self.policy_distribution(params, norm_params, obs)
        flat = keys.reshape((-1, keys.shape[-1]))
        noise = jax.vmap(lambda k: jax.random.normal(k, mean.shape[-1:], mean.dtype))(flat).reshape(mean.shape)
        action = mean + std * noise
        return ActOutput(action=action, log_prob=normal_log_prob(mean, std, action), mean=mean, std=std)


def make_networks(actor_obs_size: int, critic_obs_size: int, action_size: int, cfg: PPOConfig) -> PPONetworks:
    """Build the actor (obs['actor']) and critic (obs['critic']) networks of `cfg`."""
    dtype = jnp.dtype(cfg.network_dtype)
    activation = brax_networks.ACTIVATION[cfg.activation]
    kernel_init = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
    preprocess = _make_preprocess(dtype)
    policy_network = brax_networks.make_policy_network(
        action_size,
        actor_obs_size,
        preprocess_observations_fn=preprocess,
        hidden_layer_sizes=tuple(cfg.hidden_sizes),
        activation=activation,
        kernel_init=kernel_init,
        obs_key=ACTOR_KEY,
        distribution_type="normal",
        noise_std_type="log",
        init_noise_std=cfg.init_std,
    )
    value_network = brax_networks.make_value_network(
        critic_obs_size,
        preprocess_observations_fn=preprocess,
        hidden_layer_sizes=tuple(cfg.value_hidden_sizes or cfg.hidden_sizes),
        activation=activation,
        obs_key=CRITIC_KEY,
        kernel_init=kernel_init,
    )
    return PPONetworks(policy_network, value_network, actor_obs_size, critic_obs_size, action_size, dtype)


def update_normalizer(
    norm_params: NormalizerState, obs: Obs, cfg: PPOConfig, axis_name: str | None = None
) -> NormalizerState:
    """Fold a batch of observations (any leading batch dims, e.g. [T, N]) into the running statistics.

    Welford batch merge (brax `running_statistics.update`): with n = count + batch size,
      mean' = mean + sum(x - mean) / n,   M2' = M2 + sum((x - mean) * (x - mean')),   std = sqrt(M2' / n).
    With `axis_name`, the batch count and both sums are `psum`-ed over that named axis, so every
    device ends with the statistics of the union of all devices' batches (exact, not an average).
    """
    if not cfg.normalize_observations:
        return norm_params
    batch = {k: obs[k].astype(jnp.float32) for k in OBS_KEYS}
    return running_statistics.update(
        norm_params, batch, std_min_value=cfg.obs_std_min, pmap_axis_name=axis_name
    )
