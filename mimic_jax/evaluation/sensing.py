"""What the mismatch suite changes between the policy and the robot: a tilted IMU and a delayed command.

**IMU tilt** (``envs/imu.py``): the actor's anchor- and pelvis-frame observations read in a frame rotated by
a fixed roll or pitch.

**Action delay** (``envs.randomize.delay_action``): the motors get the command of ``d`` control steps ago, the
first ``d`` steps the default pose (what the motors hold at a reset). The policy's ``last_action`` input is
its own last command, as on a robot whose controller feeds back what it sent.

Both are exactly what the environment's own options do for training (``env.randomization.imu_tilt_deg`` and
``action_delay_steps``). :class:`MismatchPolicy` applies them around a policy of the episode runner with a
value per episode (``delay`` [N], ``tilt`` [N, 3, 3]), so that one program runs many perturbations;
``evaluation/sim2sim.py`` applies the same functions on MuJoCo C. (The collector's ``collect.delay`` wrapper
differs on purpose: it holds the first command and reports the executed action as the last one.)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
from flax import struct

from mimic_jax.envs.imu import actor_layout, tilt_matrix, tilt_observation
from mimic_jax.envs.randomize import delay_action
from mimic_jax.ppo.networks import ACTOR_KEY

__all__ = ["MismatchCarry", "MismatchPolicy", "actor_layout", "tilt_matrix", "tilt_observation"]


class MismatchCarry(NamedTuple):
    inner: Any  # the wrapped policy's carry
    queue: jnp.ndarray  # [N, max_delay + 1, A] the last commands, newest first
    command: jnp.ndarray  # [N, A] the wrapped policy's last command


@struct.dataclass
class MismatchPolicy:
    """``inner`` behind a tilted IMU and a delayed command (module doc); ``layout`` from :func:`actor_layout`."""

    inner: Any
    delay: jnp.ndarray  # [N] int32 control steps
    tilt: jnp.ndarray  # [N, 3, 3]
    layout: tuple = struct.field(pytree_node=False)  # sorted (name, (start, stop)) items of actor_layout
    max_delay: int = struct.field(pytree_node=False, default=2)
    action_size: int = struct.field(pytree_node=False, default=29)

    def init(self, num_envs: int, key) -> MismatchCarry:
        if self.delay.shape != (num_envs,) or self.tilt.shape != (num_envs, 3, 3):
            raise ValueError(f"MismatchPolicy has delays {self.delay.shape} and tilts {self.tilt.shape} "
                             f"for {num_envs} environments")
        zeros = jnp.zeros((num_envs, self.action_size))
        return MismatchCarry(inner=self.inner.init(num_envs, key),
                             queue=jnp.zeros((num_envs, self.max_delay + 1, self.action_size)), command=zeros)

    def step(self, carry: MismatchCarry, obs: dict, key):
        layout = dict(self.layout)
        actor = tilt_observation(obs[ACTOR_KEY], layout, self.tilt)
        lo, hi = layout["last_action"]
        actor = actor.at[..., lo:hi].set(carry.command.astype(actor.dtype))
        command, inner = self.inner.step(carry.inner, {**obs, ACTOR_KEY: actor}, key)
        queue, executed = delay_action(carry.queue, command, jnp.clip(self.delay, 0, self.max_delay))
        return executed, MismatchCarry(inner=inner, queue=queue, command=command.astype(carry.command.dtype))
