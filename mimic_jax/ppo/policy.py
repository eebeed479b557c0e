"""The PPO actor as an episode-runner :class:`~mimic_jax.envs.episodes.Policy` (a pytree: parameters are
leaves, the networks static), so one compiled runner serves every set of parameters of the same shapes."""

from __future__ import annotations

import jax
from flax import struct

from mimic_jax.ppo.networks import ACTOR_KEY, NormalizerState, PPONetworks, PPOParams


@struct.dataclass
class PPOPolicy:
    """The actor's mean action (``sample=True``: a draw from its Gaussian, through ``PPONetworks.act``).

    ``one_hot`` [N, M], when given, replaces the motion one-hot block ``one_hot_block`` = (start, stop) of
    every actor observation: evaluation feeds clips outside the training set the normalizer-mean one-hot.
    """

    params: PPOParams
    normalizer: NormalizerState
    nets: PPONetworks = struct.field(pytree_node=False)
    one_hot: jax.Array | None = None
    one_hot_block: tuple[int, int] | None = struct.field(pytree_node=False, default=None)
    sample: bool = struct.field(pytree_node=False, default=False)

    def init(self, num_envs: int, key) -> tuple:
        del num_envs, key
        return ()

    def step(self, carry, obs: dict, key) -> tuple[jax.Array, tuple]:
        obs = {ACTOR_KEY: self.actor_obs(obs[ACTOR_KEY])}
        if self.sample:
            return self.nets.act(self.params, self.normalizer, obs, key).action, carry
        return self.nets.deterministic_action(self.params, self.normalizer, obs), carry

    def actor_obs(self, actor: jax.Array) -> jax.Array:
        """The actor observation the networks see (one-hot block replaced where configured)."""
        if self.one_hot is None:
            return actor
        start, stop = self.one_hot_block
        return actor.at[..., start:stop].set(self.one_hot)
