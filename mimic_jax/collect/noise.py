"""Ornstein-Uhlenbeck action noise (PDP / BeyondMimic v4): a Policy wrapper that records the clean label.

Per joint, in normalized action units, one process per episode::

    x_{k+1} = x_k + theta (mu - x_k) dt + sigma sqrt(dt) eps_k,    eps_k ~ N(0, I)

with the published theta 0.8, sigma 0.1, mu 0, dt 1. The executed action at control step k is the teacher's
action plus x_k; the teacher's action itself is kept in the carry as the *label*. x_0 is drawn from the
stationary distribution N(mu, sigma^2 dt / (1 - (1 - theta dt)^2)), so every step of an episode sees noise of
the same size. The whole sequence is a function of the episode's 32-bit seed: eps_k = normal(fold_in(key(seed),
k)), so :func:`ou_noise` regenerates it from a dataset's ``noise_seed`` alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct


@dataclasses.dataclass(frozen=True, kw_only=True)
class OUConfig:
    """The noise process; the defaults are BeyondMimic v4's. ``sigma = 0`` turns the noise off exactly."""

    theta: float = 0.8
    sigma: float = 0.1
    mu: float = 0.0
    dt: float = 1.0

    @property
    def decay(self) -> float:
        """1 - theta dt: the lag-1 autocorrelation of the stationary process."""
        return 1.0 - self.theta * self.dt

    @property
    def stationary_std(self) -> float:
        """sqrt(sigma^2 dt / (1 - (1 - theta dt)^2)), the standard deviation of the stationary process."""
        return float(self.sigma * self.dt ** 0.5 / (1.0 - self.decay ** 2) ** 0.5)

    def check(self) -> None:
        if not 0.0 < self.theta * self.dt < 2.0:
            raise ValueError(f"noise theta * dt must be in (0, 2) for a stable process, got {self.theta * self.dt}")
        if self.sigma < 0.0 or self.dt <= 0.0:
            raise ValueError(f"noise sigma must be >= 0 and dt > 0, got sigma {self.sigma}, dt {self.dt}")


def _eps(seed, k, size: int):
    """eps_k of the episode with ``seed`` (uint32 scalar): standard normal [size]."""
    return jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), k), (size,))


def ou_initial(cfg: OUConfig, seed, size: int):
    """x_0 ~ the stationary distribution, from the seed's draw number 0."""
    return cfg.mu + cfg.stationary_std * _eps(seed, 0, size)


def ou_next(cfg: OUConfig, x, seed, k):
    """x_{k+1} from x_k, with eps drawn as number ``k + 1`` of the seed."""
    eps = _eps(seed, k + 1, x.shape[-1])
    return x + cfg.theta * (cfg.mu - x) * cfg.dt + cfg.sigma * cfg.dt ** 0.5 * eps


def ou_noise(cfg: OUConfig, seed, steps: int, size: int):
    """[steps, size] x_0 .. x_{steps-1} of one episode's process (pure JAX, jittable)."""
    def body(x, k):
        return ou_next(cfg, x, seed, k), x

    _, xs = jax.lax.scan(body, ou_initial(cfg, seed, size), jnp.arange(steps))
    return xs


class NoiseCarry(NamedTuple):
    inner: Any  # the wrapped policy's carry
    x: jnp.ndarray  # [N, A] noise to add at the next step
    step: jnp.ndarray  # [N] int32 control steps taken
    label: jnp.ndarray  # [N, A] the clean action of the last step (the dataset's label)


@struct.dataclass
class OUNoisePolicy:
    """``inner``'s action plus per-episode OU noise; ``seed`` [N] uint32 names each env's noise sequence."""

    inner: Any
    seed: jnp.ndarray
    cfg: OUConfig = struct.field(pytree_node=False, default=OUConfig())
    action_size: int = struct.field(pytree_node=False, default=29)

    def init(self, num_envs: int, key) -> NoiseCarry:
        if self.seed.shape != (num_envs,):
            raise ValueError(f"OUNoisePolicy has {self.seed.shape} seeds for {num_envs} environments")
        x = jax.vmap(lambda s: ou_initial(self.cfg, s, self.action_size))(self.seed)
        return NoiseCarry(inner=self.inner.init(num_envs, key), x=x, step=jnp.zeros(num_envs, jnp.int32),
                          label=jnp.zeros((num_envs, self.action_size)))

    def step(self, carry: NoiseCarry, obs, key):
        clean, inner = self.inner.step(carry.inner, obs, key)
        executed = clean + carry.x.astype(clean.dtype)
        x = jax.vmap(lambda x, s, k: ou_next(self.cfg, x, s, k))(carry.x, self.seed, carry.step)
        return executed, NoiseCarry(inner=inner, x=x, step=carry.step + 1, label=clean)


def random_seeds(key, num_envs: int):
    """[N] uint32 noise seeds."""
    return jax.random.bits(key, (num_envs,), jnp.uint32)
