"""PPO hyperparameters (BeyondMimic's rsl_rl defaults, see `shared/reference/tracking_mdp.md`, section PPO)."""

import dataclasses
from typing import Literal

from mimic_jax.configs import NonNegativeFloat, PositiveFloat, PositiveInt, UnitFloat, check_fields

# Brax's elementwise activations (brax.training.networks.ACTIVATION) that make sense between MLP layers.
Activation = Literal["celu", "elu", "gelu", "leaky_relu", "relu", "relu6", "selu", "sigmoid", "silu", "softplus",
                     "swish", "tanh"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """Static PPO configuration; hashable, so it can be a `static_argnames` argument of `jax.jit`.

    Rollout / batch layout: one iteration collects `unroll_length` steps from each of `num_envs` envs
    (per device when the update runs SPMD); the flattened batch of `num_envs * unroll_length` samples
    is split into `num_minibatches` equal minibatches and swept `num_epochs` times.
    """

    num_envs: PositiveInt = 4096
    unroll_length: PositiveInt = 24
    num_epochs: PositiveInt = 5
    num_minibatches: PositiveInt = 4

    learning_rate: PositiveFloat = 1e-3
    schedule: Literal["adaptive", "fixed"] = "adaptive"  # 'adaptive' (rsl_rl KL rule) or 'fixed'
    desired_kl: PositiveFloat = 0.01
    min_learning_rate: PositiveFloat = 1e-5
    max_learning_rate: PositiveFloat = 1e-2
    max_grad_norm: PositiveFloat = 1.0

    gamma: UnitFloat = 0.99
    gae_lambda: UnitFloat = 0.95
    clip_param: PositiveFloat = 0.2
    clipped_value_loss: bool = True
    value_clip_param: PositiveFloat = 0.2  # rsl_rl reuses clip_param for the value clip
    value_loss_coef: NonNegativeFloat = 1.0
    entropy_coef: NonNegativeFloat = 0.005
    normalize_advantage: bool = True  # over the whole rollout batch, once per update (rsl_rl default)

    normalize_observations: bool = True
    obs_std_min: PositiveFloat = 1e-2  # running std is clamped to >= this (rsl_rl divides by std + 1e-2)
    init_std: PositiveFloat = 1.0
    hidden_sizes: tuple[PositiveInt, ...] = (512, 256, 128)
    value_hidden_sizes: tuple[PositiveInt, ...] | None = None  # None: same as hidden_sizes
    activation: Activation = "elu"
    # compute dtype of the MLPs; params, losses and stats stay float32
    network_dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    def __post_init__(self):
        check_fields(self)
