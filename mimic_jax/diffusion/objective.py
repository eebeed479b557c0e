"""The training objective: per-token noise levels, x_0 prediction, masked MSE.

For a sample of S = N + H + 1 steps (normalized and projected tokens, ``normalize.py``):

* every token draws its own level k ~ U{0 .. K}, independently (states and actions alike); the history
  (s_{t-N} .. s_t and a_{t-N} .. a_{t-1}) is always at level 0, as it is when sampling. Clean tokens
  elsewhere teach the model to use clamped keyframes (inpainting);
* the network predicts every token's x_0; the loss is the mean squared error over the future states
  s_{t+1} .. s_{t+H} and the actions a_t .. a_{t+L-1} (L = ``action_loss_steps``), one mean over all those
  elements (a state element is one of D + G projected dims: the root dims count 1 + c^2 times).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mimic_jax.diffusion.config import ModelConfig
from mimic_jax.diffusion.schedule import Schedule, q_sample


class Tokens(NamedTuple):
    """Normalized tokens of S steps: states [B, S, D + G], actions [B, S, A]."""

    states: jnp.ndarray
    actions: jnp.ndarray


class Levels(NamedTuple):
    states: jnp.ndarray  # [B, S] int32
    actions: jnp.ndarray  # [B, S] int32


class LossParts(NamedTuple):
    loss: jnp.ndarray
    state: jnp.ndarray  # mean squared error per element of the future states
    action: jnp.ndarray  # ... of the loss-masked actions


def history_masks(cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """[S] bool each: the given (clean) states s_{t-N} .. s_t and actions a_{t-N} .. a_{t-1}."""
    time = np.arange(cfg.steps)
    return time <= cfg.history, time < cfg.history


def loss_masks(cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """[S] bool each: the states and actions the loss covers (module doc)."""
    time = np.arange(cfg.steps)
    actions = (time >= cfg.history) & (time < cfg.history + cfg.action_loss_steps)
    return time > cfg.history, actions


def corrupt(sched: Schedule, clean: Tokens, key, cfg: ModelConfig) -> tuple[Tokens, Levels]:
    """Noisy tokens at per-token levels (history at level 0)."""
    k_ls, k_la, k_es, k_ea = jax.random.split(key, 4)
    hist_s, hist_a = history_masks(cfg)
    shape = clean.states.shape[:2]
    levels = Levels(jnp.where(hist_s, 0, jax.random.randint(k_ls, shape, 0, sched.levels + 1)),
                    jnp.where(hist_a, 0, jax.random.randint(k_la, shape, 0, sched.levels + 1)))
    noisy = Tokens(q_sample(sched, clean.states, levels.states, jax.random.normal(k_es, clean.states.shape)),
                   q_sample(sched, clean.actions, levels.actions, jax.random.normal(k_ea, clean.actions.shape)))
    return noisy, levels


def masked_mse(pred: Tokens, clean: Tokens, cfg: ModelConfig) -> LossParts:
    state_mask, action_mask = (jnp.asarray(m, jnp.float32) for m in loss_masks(cfg))
    se_s = jnp.sum(jnp.square(pred.states - clean.states), axis=-1) @ state_mask  # [B]
    se_a = jnp.sum(jnp.square(pred.actions - clean.actions), axis=-1) @ action_mask
    n_s = clean.states.shape[-1] * state_mask.sum()
    n_a = clean.actions.shape[-1] * action_mask.sum()
    batch = clean.states.shape[0]
    return LossParts(loss=(se_s.sum() + se_a.sum()) / (batch * (n_s + n_a)), state=se_s.mean() / n_s,
                     action=se_a.mean() / n_a)


def diffusion_loss(apply_fn, params, sched: Schedule, clean: Tokens, key, cfg: ModelConfig,
                   train: bool) -> LossParts:
    """``apply_fn(params, states, actions, state_levels, action_levels, rngs) -> (x0 states, x0 actions)``."""
    k_noise, k_drop = jax.random.split(key)
    noisy, levels = corrupt(sched, clean, k_noise, cfg)
    pred = apply_fn(params, noisy.states, noisy.actions, levels.states, levels.actions, train, k_drop)
    return masked_mse(Tokens(*pred), clean, cfg)
