"""PPO building blocks (rsl_rl semantics, brax pieces): config, networks, losses, learner update."""

from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.losses import (
    Batch,
    adaptive_lr,
    clipped_surrogate_loss,
    clipped_value_loss,
    compute_gae,
    normalize_advantages,
    ppo_loss,
)
from mimic_jax.ppo.networks import (
    ACTOR_KEY,
    CRITIC_KEY,
    OBS_KEYS,
    ActOutput,
    NormalizerState,
    PPONetworks,
    PPOParams,
    make_networks,
    normal_entropy,
    normal_kl,
    normal_log_prob,
    update_normalizer,
)
from mimic_jax.ppo.policy import PPOPolicy
from mimic_jax.ppo.update import (
    Rollout,
    TrainState,
    init_train_state,
    learning_rate,
    make_optimizer,
    prepare_batch,
    sgd_update,
)

__all__ = [
    "ACTOR_KEY",
    "CRITIC_KEY",
    "OBS_KEYS",
    "ActOutput",
    "Batch",
    "NormalizerState",
    "PPOConfig",
    "PPONetworks",
    "PPOParams",
    "PPOPolicy",
    "Rollout",
    "TrainState",
    "adaptive_lr",
    "clipped_surrogate_loss",
    "clipped_value_loss",
    "compute_gae",
    "init_train_state",
    "learning_rate",
    "make_networks",
    "make_optimizer",
    "normal_entropy",
    "normal_kl",
    "normal_log_prob",
    "normalize_advantages",
    "ppo_loss",
    "prepare_batch",
    "sgd_update",
    "update_normalizer",
]
