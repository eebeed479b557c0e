"""The denoiser: a transformer over interleaved state and action tokens with the Diffuse-CLoC attention mask.

A training sample or a plan covers the S = N + H + 1 control steps t-N .. t+H. Each step has a state token
and an action token; the sequence interleaves them in time order,

    s_{t-N}, a_{t-N}, s_{t-N+1}, ..., s_t, a_t, s_{t+1}, a_{t+1}, ..., s_{t+H}, a_{t+H}     (2S tokens),

the history s_{t-N} .. s_t, a_{t-N} .. a_{t-1} given clean (noise level 0), the rest noised. A token's
embedding is its own linear input map (one per type) plus a learned embedding of its own noise level (one
table per type) plus a learned position embedding; pre-LayerNorm blocks; one output head per type predicts
the token's clean value x_0.

Attention mask (query -> key), :func:`attention_mask`:

* a state token attends to every state token, past and future, and to no action token;
* an action token at time tau attends to every token at times <= tau: the states up to and including
  s_tau, the earlier actions and itself.

So no state output depends on any action input, and an action output never depends on a later action.
Through the layers an action at tau does see the planned future: the states it reads have, in the layers
below, attended to every state (this is the look-ahead the design wants).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mimic_jax import states as st
from mimic_jax.assets import g1
from mimic_jax.diffusion.config import Config, ModelConfig
from mimic_jax.diffusion.normalize import Normalizer
from mimic_jax.diffusion.schedule import Schedule

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def token_time(steps: int) -> np.ndarray:
    """[2S] time index (0 .. S-1) of each token of the interleaved sequence."""
    return np.arange(2 * steps) // 2


def token_is_state(steps: int) -> np.ndarray:
    """[2S] True for state tokens (even positions)."""
    return np.arange(2 * steps) % 2 == 0


def attention_mask(steps: int) -> np.ndarray:
    """[2S, 2S] bool, True where the query token (row) may attend to the key token (column)."""
    time, state = token_time(steps), token_is_state(steps)
    state_rows = state[:, None] & state[None, :]
    action_rows = ~state[:, None] & (time[None, :] <= time[:, None])
    return state_rows | action_rows


def interleave(states, actions):
    """[B, S, W] x 2 -> [B, 2S, W] in the order s_0, a_0, s_1, a_1, ..."""
    b, s, w = states.shape
    return jnp.stack([states, actions], axis=2).reshape(b, 2 * s, w)


class LevelEmbed(nn.Module):
    """A learned embedding of the noise level 0 .. K, looked up as one-hot @ table.

    The same parameter (``embedding`` [K + 1, width], ``nn.Embed``'s initializer) and the same values as
    ``nn.Embed``, but its gradient is a small matrix product instead of a scatter-add of every token's
    gradient into K + 1 rows: in bfloat16 that scatter accumulated thousands of updates per row in bf16
    (lossy) and made a training step on the H200 about 6x slower than in float32 (docs/phase2.md).
    """

    levels: int  # K: levels 0 .. K
    width: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, levels):
        table = self.param("embedding", nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0),
                           (self.levels + 1, self.width))
        one_hot = jax.nn.one_hot(levels, self.levels + 1, dtype=self.dtype)
        return jnp.dot(one_hot, table.astype(self.dtype), precision=jax.lax.Precision.HIGHEST)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: masked self-attention, then a GELU MLP."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x, mask, deterministic: bool):
        cfg, dtype = self.cfg, _DTYPES[self.cfg.compute_dtype]
        h = nn.LayerNorm(dtype=dtype, name="attention_norm")(x)
        h = nn.MultiHeadDotProductAttention(num_heads=cfg.heads, dtype=dtype, dropout_rate=cfg.attention_dropout,
                                            name="attention")(h, h, mask=mask, deterministic=deterministic)
        x = x + nn.Dropout(cfg.dropout)(h, deterministic=deterministic)
        h = nn.LayerNorm(dtype=dtype, name="mlp_norm")(x)
        h = nn.Dense(cfg.mlp_ratio * cfg.width, dtype=dtype, name="mlp_in")(h)
        h = nn.Dense(cfg.width, dtype=dtype, name="mlp_out")(nn.gelu(h))
        return x + nn.Dropout(cfg.dropout)(h, deterministic=deterministic)


class Denoiser(nn.Module):
    """(noisy state tokens, noisy action tokens, their levels) -> predicted clean tokens (float32)."""

    cfg: ModelConfig
    state_size: int  # D + G, the projected state
    action_size: int
    levels: int  # K

    @nn.compact
    def __call__(self, states, actions, state_levels, action_levels, *, train: bool = False):
        """states [B, S, D+G], actions [B, S, A], levels [B, S] int in 0 .. K."""
        cfg, dtype = self.cfg, _DTYPES[self.cfg.compute_dtype]
        steps = states.shape[1]
        dense = lambda n, name: nn.Dense(n, dtype=dtype, name=name)  # noqa: E731
        embed = lambda name: LevelEmbed(self.levels, cfg.width, dtype=dtype, name=name)  # noqa: E731
        s = dense(cfg.width, "state_in")(states) + embed("state_level")(state_levels)
        a = dense(cfg.width, "action_in")(actions) + embed("action_level")(action_levels)
        position = self.param("position", nn.initializers.normal(0.02), (2 * steps, cfg.width))
        x = interleave(s, a) + position.astype(dtype)
        mask = jnp.asarray(attention_mask(steps))[None, None]
        for i in range(cfg.layers):
            x = Block(cfg, name=f"block_{i}")(x, mask, not train)
        x = nn.LayerNorm(dtype=dtype, name="out_norm")(x)
        zeros = nn.initializers.zeros  # predictions start at the data mean (0 after normalization)
        s_out = nn.Dense(self.state_size, dtype=dtype, kernel_init=zeros, name="state_out")(x[:, 0::2])
        a_out = nn.Dense(self.action_size, dtype=dtype, kernel_init=zeros, name="action_out")(x[:, 1::2])
        return s_out.astype(jnp.float32), a_out.astype(jnp.float32)


def init_params(net: Denoiser, key, steps: int):
    """Parameters for sequences of ``steps`` time steps."""
    s = jnp.zeros((1, steps, net.state_size))
    a = jnp.zeros((1, steps, net.action_size))
    k = jnp.zeros((1, steps), jnp.int32)
    return net.init(key, s, a, k, k)["params"]


def count_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def make_network(cfg: Config) -> Denoiser:
    """The denoiser of a config: state tokens of D + G dims (``normalize.py``), action tokens of 29."""
    rep = st.layout(cfg.model.representation)
    return Denoiser(cfg.model, state_size=rep.size + int(rep.global_mask.sum()), action_size=g1.NUM_JOINTS,
                    levels=cfg.diffusion.levels)


def apply_fn(net: Denoiser):
    """``(params, states, actions, state_levels, action_levels, train, key) -> (x0 states, x0 actions)``."""
    def apply(params, states, actions, state_levels, action_levels, train: bool, key=None):
        rngs = {"dropout": key} if train else {}
        return net.apply({"params": params}, states, actions, state_levels, action_levels, train=train, rngs=rngs)

    return apply


@struct.dataclass
class DiffusionModel:
    """A trained model as sampling needs it: weights, normalizer and schedule as leaves, the config static."""

    params: Any
    normalizer: Normalizer
    schedule: Schedule
    cfg: Config = struct.field(pytree_node=False)

    @property
    def layout(self) -> st.StateLayout:
        return st.layout(self.cfg.model.representation)

    def denoise(self, states, actions, state_levels, action_levels):
        """Predicted clean tokens (no dropout)."""
        return apply_fn(make_network(self.cfg))(self.params, states, actions, state_levels, action_levels, False)
