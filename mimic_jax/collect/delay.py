"""Action delay: a Policy wrapper that executes the wrapped policy's command of ``delay`` control steps ago.

Each environment has its own delay d (control steps, fixed for the episode). At control step k the executed
action is the inner policy's command of step max(k - d, 0): before a command of d steps ago exists, the first
command is held (the robot does not fall back to some other pose while the first command is in flight). With
d = 0 the wrapper is the identity. The collector draws d per episode (:func:`random_delays`); the control
benchmarks and the mismatch suite pass a fixed one (``jnp.full(n, d)``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct


class DelayCarry(NamedTuple):
    inner: Any  # the wrapped policy's carry
    history: jnp.ndarray  # [N, max_delay + 1, A] commands of the last steps, newest first
    step: jnp.ndarray  # [N] int32 control steps taken


@struct.dataclass
class DelayedPolicy:
    """Executes ``inner``'s command of ``delay`` [N] int32 steps ago (0 <= delay <= ``max_delay``)."""

    inner: Any
    delay: jnp.ndarray
    max_delay: int = struct.field(pytree_node=False, default=2)
    action_size: int = struct.field(pytree_node=False, default=29)

    def init(self, num_envs: int, key) -> DelayCarry:
        if self.delay.shape != (num_envs,):
            raise ValueError(f"DelayedPolicy has {self.delay.shape} delays for {num_envs} environments")
        history = jnp.zeros((num_envs, self.max_delay + 1, self.action_size))
        return DelayCarry(inner=self.inner.init(num_envs, key), history=history,
                          step=jnp.zeros(num_envs, jnp.int32))

    def step(self, carry: DelayCarry, obs, key):
        command, inner = self.inner.step(carry.inner, obs, key)
        shifted = jnp.concatenate([command[:, None], carry.history[:, :-1].astype(command.dtype)], axis=1)
        first = (carry.step == 0)[:, None, None]
        history = jnp.where(first, jnp.broadcast_to(command[:, None], shifted.shape), shifted)
        lag = jnp.clip(self.delay, 0, self.max_delay)
        executed = jnp.take_along_axis(history, lag[:, None, None], axis=1)[:, 0]
        return executed, DelayCarry(inner=inner, history=history, step=carry.step + 1)


def random_delays(key, num_envs: int, max_delay: int):
    """[N] int32 delays drawn uniformly from {0, ..., max_delay}."""
    return jax.random.randint(key, (num_envs,), 0, max_delay + 1, dtype=jnp.int32)
