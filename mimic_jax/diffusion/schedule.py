"""The DDPM forward process and its posterior, on K discrete noise levels k = 0 .. K.

Level 0 is clean data (alpha_bar_0 = 1); level k adds noise with

    x_k = sqrt(alpha_bar_k) x_0 + sqrt(1 - alpha_bar_k) eps,        eps ~ N(0, I),
    alpha_bar_k = prod_{j <= k} alpha_j,    alpha_j = 1 - beta_j.

The network predicts x_0 (trained with an MSE). Sampling uses the epsilon that this x_0 implies,

    eps(x_k, x_0) = (x_k - sqrt(alpha_bar_k) x_0) / sqrt(1 - alpha_bar_k),

in the DDPM update (Ho et al. 2020, eq. 11)

    x_{k-1} = (x_k - beta_k / sqrt(1 - alpha_bar_k) eps) / sqrt(alpha_k) + sigma_k z,
    sigma_k^2 = beta_k (1 - alpha_bar_{k-1}) / (1 - alpha_bar_k),

which is the mean and variance of the posterior q(x_{k-1} | x_k, x_0):

    mean = beta_k sqrt(alpha_bar_{k-1}) / (1 - alpha_bar_k) x_0
           + (1 - alpha_bar_{k-1}) sqrt(alpha_k) / (1 - alpha_bar_k) x_k.

At k = 1 the variance is 0 and the mean is x_0 itself, so a sample ends on the last (guided) prediction.

Schedules: ``cosine`` (Nichol & Dhariwal 2021): alpha_bar_k = f(k) / f(0), f(k) = cos^2(pi/2 (k/K + s)/(1 + s)),
s = 0.008, with each beta capped at ``max_beta`` (only the last level reaches the cap at K = 20, leaving
alpha_bar_K ~ 6e-6: pure noise, but eps stays defined); ``linear``: DDPM's betas from 1e-4 to 0.02,
rescaled to K levels (for comparison).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct

from mimic_jax.diffusion.config import DiffusionConfig


@struct.dataclass
class Schedule:
    """Per-level constants, index k = 0 .. K (index 0: beta = 0, alpha_bar = 1)."""

    betas: jnp.ndarray  # [K + 1]
    alpha_bar: jnp.ndarray  # [K + 1]

    @property
    def levels(self) -> int:
        return self.betas.shape[0] - 1

    @property
    def alphas(self):
        return 1.0 - self.betas


def from_betas(betas) -> Schedule:
    """A schedule from beta_1 .. beta_K."""
    betas = np.concatenate([[0.0], np.asarray(betas, np.float64)])
    return Schedule(betas=jnp.asarray(betas, jnp.float32), alpha_bar=jnp.asarray(np.cumprod(1.0 - betas), jnp.float32))


def cosine_betas(levels: int, offset: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """beta_1 .. beta_K of the cosine schedule (float64)."""
    k = np.arange(levels + 1, dtype=np.float64)
    f = np.cos((k / levels + offset) / (1.0 + offset) * np.pi / 2) ** 2
    alpha_bar = f / f[0]
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)


def linear_betas(levels: int) -> np.ndarray:
    """DDPM's linear betas (1e-4 .. 0.02 over 1000 levels), rescaled to ``levels`` levels."""
    scale = 1000.0 / levels
    return np.linspace(scale * 1e-4, scale * 0.02, levels)


def make_schedule(cfg: DiffusionConfig) -> Schedule:
    if cfg.schedule == "cosine":
        return from_betas(cosine_betas(cfg.levels, cfg.cosine_offset, cfg.max_beta))
    if cfg.schedule == "linear":
        return from_betas(linear_betas(cfg.levels))
    raise ValueError(f"unknown noise schedule {cfg.schedule!r} (known: cosine, linear)")


def _fit(v, like):
    """A per-token value ``v`` (shape of k) broadcast against ``like`` [..., n]."""
    v = jnp.asarray(v)
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


def q_sample(sched: Schedule, x0, k, eps):
    """x_k given x_0 and the noise (``k``: an int or one level per token, broadcast over the last axis)."""
    ab = sched.alpha_bar[k]
    return _fit(jnp.sqrt(ab), x0) * x0 + _fit(jnp.sqrt(1.0 - ab), x0) * eps


def eps_from_x0(sched: Schedule, x_k, x0, k):
    """The noise implied by a prediction of x_0 (k >= 1)."""
    ab = sched.alpha_bar[k]
    return (x_k - _fit(jnp.sqrt(ab), x_k) * x0) / _fit(jnp.sqrt(1.0 - ab), x_k)


def x0_from_eps(sched: Schedule, x_k, eps, k):
    """The x_0 implied by a noise estimate (the inverse of :func:`eps_from_x0`)."""
    ab = sched.alpha_bar[k]
    return (x_k - _fit(jnp.sqrt(1.0 - ab), x_k) * eps) / _fit(jnp.sqrt(ab), x_k)


def posterior_variance(sched: Schedule, k):
    """sigma_k^2 = beta_k (1 - alpha_bar_{k-1}) / (1 - alpha_bar_k) (k >= 1)."""
    return sched.betas[k] * (1.0 - sched.alpha_bar[k - 1]) / (1.0 - sched.alpha_bar[k])


def posterior(sched: Schedule, x0, x_k, k):
    """Mean and variance of q(x_{k-1} | x_k, x_0) (k >= 1), in the x_0 form of the module doc."""
    beta, ab, ab_prev = sched.betas[k], sched.alpha_bar[k], sched.alpha_bar[k - 1]
    c0 = beta * jnp.sqrt(ab_prev) / (1.0 - ab)
    ck = (1.0 - ab_prev) * jnp.sqrt(1.0 - beta) / (1.0 - ab)
    return _fit(c0, x0) * x0 + _fit(ck, x_k) * x_k, _fit(posterior_variance(sched, k), x_k)


def ddpm_step(sched: Schedule, x_k, x0, k, z):
    """One reverse step x_k -> x_{k-1} from a prediction of x_0, through the epsilon it implies."""
    eps = eps_from_x0(sched, x_k, x0, k)
    beta = _fit(sched.betas[k], x_k)
    mean = (x_k - beta / _fit(jnp.sqrt(1.0 - sched.alpha_bar[k]), x_k) * eps) / jnp.sqrt(1.0 - beta)
    return mean + _fit(jnp.sqrt(posterior_variance(sched, k)), x_k) * z
