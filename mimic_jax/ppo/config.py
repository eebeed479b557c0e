"""PPO hyperparameters (BeyondMimic's rsl_rl defaults, see `shared/reference/tracking_mdp.md`, section PPO)."""

import dataclasses


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """Static PPO configuration; hashable, so it can be a `static_argnames` argument of `jax.jit`.

    Rollout / batch layout: one iteration collects `unroll_length` steps from each of `num_envs` envs
    (per device when the update runs SPMD); the flattened batch of `num_envs * unroll_length` samples
    is split into `num_minibatches` equal minibatches and swept `num_epochs` times.
    """

    num_envs: int = 4096
    unroll_length: int = 24
    num_epochs: int = 5
    num_minibatches: int = 4

    learning_rate: float = 1e-3
    schedule: str = "adaptive"  # 'adaptive' (rsl_rl KL rule) or 'fixed'
    desired_kl: float = 0.01
    min_learning_rate: float = 1e-5
    max_learning_rate: float = 1e-2
    max_grad_norm: float = 1.0

    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_param: float = 0.2
    clipped_value_loss: bool = True
    value_clip_param: float = 0.2  # rsl_rl reuses clip_param for the value clip
    value_loss_coef: float = 1.0
    entropy_coef: float = 0.005
    normalize_advantage: bool = True  # over the whole rollout batch, once per update (rsl_rl default)

    normalize_observations: bool = True
    obs_std_min: float = 1e-2  # running std is clamped to >= this (rsl_rl divides by std + 1e-2)
    init_std: float = 1.0
    hidden_sizes: tuple[int, ...] = (512, 256, 128)
    value_hidden_sizes: tuple[int, ...] | None = None  # None: same as hidden_sizes
    activation: str = "elu"
    network_dtype: str = "float32"  # compute dtype of the MLPs; params, losses and stats stay float32
