"""Training presets (``demo`` for a CPU, ``full`` for a GPU) and ``--set key=value`` config overrides.

Presets are ``dataclasses.replace`` of the published defaults; no logic lives in the configs. An override
names a dotted path into :class:`~mimic_jax.ppo.trainer.TrainConfig` (``ppo.learning_rate``,
``env.rewards.body_pos_sigma``) and its text is parsed by the field's type (``mimic_jax.configs``: tyro's
parser for that type, then the config's own checks of choices and ranges).
"""

from __future__ import annotations

import dataclasses
import typing

from mimic_jax import configs
from mimic_jax.configs import SettingError
from mimic_jax.envs.config import EnvConfig
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.trainer import TrainConfig

__all__ = ["DEMO", "FULL", "PRESETS", "Preset", "SettingError", "apply_setting", "apply_settings", "setting_types"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Preset:
    """A training configuration plus the run settings that go with it."""

    name: str
    train: TrainConfig
    iterations: int
    checkpoint_every: int
    summary: str


FULL = Preset(
    name="full",
    train=TrainConfig(env=EnvConfig(impl="warp")),
    iterations=30000,
    checkpoint_every=500,
    summary="the published PPO setup for a GPU",
)

# 8 envs: with jaxlib 0.10 on a CPU, larger env batches can hang in MJX's batched Cholesky (docs/training.md).
DEMO = Preset(
    name="demo",
    train=TrainConfig(
        env=EnvConfig(impl="jax"),
        ppo=PPOConfig(num_envs=8, unroll_length=24, num_epochs=2, num_minibatches=2, hidden_sizes=(64, 64)),
    ),
    iterations=12,
    checkpoint_every=4,
    summary="a quick DEMO of the pipeline on a CPU with few envs, small networks and a handful of "
            "iterations; it does not train a usable policy: use --preset full on a GPU",
)

PRESETS = {p.name: p for p in (DEMO, FULL)}


def setting_types() -> dict[str, typing.Any]:
    """Every settable dotted path of :class:`TrainConfig` (leaves only) -> its type."""
    return configs.setting_types(TrainConfig)


def apply_setting(cfg: TrainConfig, item: str) -> TrainConfig:
    """One ``key=value`` override; unknown keys raise :class:`SettingError` listing close matches."""
    return configs.apply_setting(cfg, item)


def apply_settings(cfg: TrainConfig, items) -> TrainConfig:
    """Applies ``key=value`` overrides in order (values parsed by the field's type, then checked by it)."""
    return configs.apply_settings(cfg, items)
