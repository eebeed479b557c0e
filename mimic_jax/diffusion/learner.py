"""One jitted training call (``steps_per_call`` AdamW steps in a ``lax.scan``), the validation loss and the
normalizer fit, all drawing their windows on the device.

Optimizer: global-norm clipping, then AdamW (lr 1e-4, weight decay 1e-3) with a linear warmup to the peak
rate and a cosine decay to 0 at the last step. EMA of the weights with the power schedule of BeyondMimic
v4 (the one of ``diffusers.EMAModel``): decay(n) = min(max_decay, 1 - (1 + n)^-power), n the optimizer
step, so the average starts as the weights themselves (decay 0 at n = 0) and its memory grows with training.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from mimic_jax import states as st
from mimic_jax.diffusion.config import Config, TrainConfig
from mimic_jax.diffusion.data import WindowData, draw_batch
from mimic_jax.diffusion.model import apply_fn, init_params, make_network
from mimic_jax.diffusion.normalize import Normalizer, encode_actions, encode_states, fit_normalizer
from mimic_jax.diffusion.objective import LossParts, Tokens, diffusion_loss
from mimic_jax.diffusion.schedule import Schedule


@struct.dataclass
class TrainState:
    step: jnp.ndarray  # int32, optimizer steps taken
    params: Any
    opt_state: Any
    ema: Any  # EMA of params: the weights a checkpoint's model uses
    key: jnp.ndarray


class StepMetrics(NamedTuple):
    loss: jnp.ndarray
    loss_state: jnp.ndarray
    loss_action: jnp.ndarray
    grad_norm: jnp.ndarray
    learning_rate: jnp.ndarray
    ema_decay: jnp.ndarray


def learning_rate(cfg: TrainConfig) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, max(cfg.warmup_steps, 1),
                                              max(cfg.steps, cfg.warmup_steps + 1), 0.0)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip),
                       optax.adamw(learning_rate(cfg), weight_decay=cfg.weight_decay))


def ema_decay(step, power: float, max_decay: float):
    """decay(n) = min(max_decay, 1 - (1 + n)^-power) (module doc)."""
    return jnp.minimum(max_decay, 1.0 - (1.0 + jnp.asarray(step, jnp.float32)) ** -power)


def init_state(cfg: Config, key) -> TrainState:
    k_params, k_train = jax.random.split(key)
    params = init_params(make_network(cfg), k_params, cfg.model.steps)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=make_optimizer(cfg.train).init(params),
                      ema=params, key=k_train)


def tokens(norm: Normalizer, states, actions) -> Tokens:
    """A batch in metres -> normalized tokens."""
    return Tokens(encode_states(norm, states), encode_actions(norm, actions))


def _draw(cfg: Config, data: WindowData, windows, key, batch: int):
    m = cfg.model
    return draw_batch(data, windows, key, batch, m.history, m.horizon, st.layout(m.representation))


def _train_step(cfg: Config, sched: Schedule, norm: Normalizer, data: WindowData, state: TrainState, _):
    apply = apply_fn(make_network(cfg))
    key, k_batch, k_loss = jax.random.split(state.key, 3)
    batch = _draw(cfg, data, data.train, k_batch, cfg.train.batch_size)
    clean = tokens(norm, batch.states, batch.actions)

    def loss_fn(params):
        parts = diffusion_loss(apply, params, sched, clean, k_loss, cfg.model, train=True)
        return parts.loss, parts

    (_, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = make_optimizer(cfg.train).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    decay = ema_decay(state.step, cfg.train.ema_power, cfg.train.ema_max)
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, params)
    metrics = StepMetrics(parts.loss, parts.state, parts.action, optax.tree.norm(grads),
                          learning_rate(cfg.train)(state.step), decay)
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state, ema=ema, key=key), metrics


@functools.lru_cache(maxsize=4)
def train_fn(cfg: Config):
    """jitted ``(state, data, normalizer, schedule) -> (state, metrics averaged over the call)``."""
    def run(state: TrainState, data: WindowData, norm: Normalizer, sched: Schedule):
        step = functools.partial(_train_step, cfg, sched, norm, data)
        state, metrics = jax.lax.scan(step, state, None, length=cfg.train.steps_per_call)
        return state, jax.tree.map(jnp.mean, metrics)

    return jax.jit(run)


@functools.lru_cache(maxsize=4)
def validation_fn(cfg: Config):
    """jitted ``(params, data, normalizer, schedule, key) -> LossParts`` over ``validation_batches`` batches of
    held-out windows (no dropout; a fixed key gives comparable numbers across the run)."""
    apply = apply_fn(make_network(cfg))

    def one(params, data, norm, sched, key):
        k_batch, k_loss = jax.random.split(key)
        batch = _draw(cfg, data, data.val, k_batch, cfg.train.batch_size)
        return diffusion_loss(apply, params, sched, tokens(norm, *batch), k_loss, cfg.model, train=False)

    def run(params, data, norm, sched, key):
        keys = jax.random.split(key, cfg.train.validation_batches)
        parts = jax.vmap(one, in_axes=(None, None, None, None, 0))(params, data, norm, sched, keys)
        return LossParts(*(jnp.mean(x) for x in parts))

    return jax.jit(run)


def fit_to_data(cfg: Config, data: WindowData, key, chunk: int = 4096) -> Normalizer:
    """The normalizer of ``cfg.train.stats_samples`` training samples (re-anchored, as training sees them)."""
    draw = jax.jit(lambda d, k: _draw(cfg, d, d.train, k, chunk))
    batches = [jax.device_get(draw(data, k)) for k in jax.random.split(key, -(-cfg.train.stats_samples // chunk))]
    states = np.concatenate([b.states for b in batches])[: cfg.train.stats_samples]
    actions = np.concatenate([b.actions for b in batches])[: cfg.train.stats_samples]
    rep = st.layout(cfg.model.representation)
    return fit_normalizer(states, actions, rep.global_mask, emphasis=cfg.diffusion.emphasis,
                          std_floor=cfg.diffusion.std_floor)
