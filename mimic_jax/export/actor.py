"""What an export reads from a trained policy, in one place: the actor's layers, its observation
normalizer, the environment config it was trained with and its training clips' names (numpy only).

:func:`trained_actor` is the only function of ``mimic_jax.export`` that looks inside the policy object
(today ``mimic_jax.evaluation.rollout.Policy``); everything else works on :class:`TrainedActor`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mimic_jax.envs.config import EnvConfig


class ExportError(ValueError):
    """A policy that cannot be exported as asked, or a destination that cannot be written; one line."""


@dataclasses.dataclass(frozen=True)
class TrainedActor:
    """The actor's mean as plain arrays, with what it was trained on."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (kernel [in, out], bias [out]) per Dense, input first
    obs_mean: np.ndarray  # [A] the observation normalizer
    obs_std: np.ndarray  # [A]
    env_cfg: EnvConfig
    motion_names: tuple[str, ...]

    @property
    def obs_size(self) -> int:
        return int(self.layers[0][0].shape[0])

    @property
    def action_size(self) -> int:
        return int(self.layers[-1][0].shape[1])


def trained_actor(policy) -> TrainedActor:
    """The :class:`TrainedActor` of a trained policy; refuses a network that does not compute in float32."""
    from mimic_jax.ppo.networks import ACTOR_KEY

    if policy.nets.dtype != np.float32:
        raise ExportError(f"the actor computes in {policy.nets.dtype}; export needs network_dtype float32")
    params = policy.params.policy["params"]
    mlp = params.get("MLP_0", {})
    dense = [mlp[f"hidden_{i}"] for i in range(len(mlp))] + [params["Dense_0"]]
    layers = tuple((np.asarray(p["kernel"], np.float32), np.asarray(p["bias"], np.float32)) for p in dense)
    return TrainedActor(layers=layers, obs_mean=np.asarray(policy.normalizer.mean[ACTOR_KEY], np.float32),
                        obs_std=np.asarray(policy.normalizer.std[ACTOR_KEY], np.float32), env_cfg=policy.env_cfg,
                        motion_names=tuple(policy.motion_names))
