"""Training presets (``demo`` for a CPU, ``full`` for a GPU) and ``--set key=value`` config overrides.

Presets are ``dataclasses.replace`` of the published defaults; no logic lives in the configs. An override
names a dotted path into :class:`~mimic_jax.ppo.trainer.TrainConfig` (``ppo.learning_rate``,
``env.rewards.body_pos_sigma``) and its text is parsed by the field's type.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing

from mimic_jax.checkpoint import CheckpointError, coerce_value
from mimic_jax.envs.config import EnvConfig
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.trainer import TrainConfig


class SettingError(ValueError):
    """A ``--set`` override that cannot be applied; one line naming the key and the problem."""


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


def setting_types(cls=TrainConfig, prefix: str = "") -> dict[str, typing.Any]:
    """Every settable dotted path of ``cls`` (leaves only) -> its type."""
    out = {}
    for name, tp in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(tp):
            out.update(setting_types(tp, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = tp
    return out


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _from_text(text: str, tp, key: str):
    """Text -> a JSON-like value of type ``tp`` (then checked by ``coerce_value``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null") and type(None) in args:
            return None
        return _from_text(text, next(a for a in args if a is not type(None)), key)
    if origin is tuple:
        inner = text.strip().strip("()[]").strip()
        items = [s.strip() for s in inner.split(",") if s.strip()] if inner else []
        kinds = [args[0]] * len(items) if args[-1] is Ellipsis else list(args)
        if len(kinds) != len(items):
            raise SettingError(f"{key}: expected {len(kinds)} comma-separated values, got '{text}'")
        return [_from_text(s, t, key) for s, t in zip(items, kinds)]
    try:
        if tp is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        if tp in (int, float):
            return tp(text)
    except ValueError:
        raise SettingError(f"{key}: '{text}' is not a valid {tp.__name__}") from None
    return text


def _replace(cfg, parts: list[str], value):
    if len(parts) == 1:
        return dataclasses.replace(cfg, **{parts[0]: value})
    return dataclasses.replace(cfg, **{parts[0]: _replace(getattr(cfg, parts[0]), parts[1:], value)})


def apply_setting(cfg: TrainConfig, item: str) -> TrainConfig:
    """One ``key=value`` override; unknown keys raise :class:`SettingError` listing close matches."""
    key, sep, text = item.partition("=")
    key = key.strip()
    kinds = setting_types()
    if not sep or not key:
        raise SettingError(f"--set expects key=value (e.g. ppo.learning_rate=3e-4), got '{item}'")
    if key not in kinds:
        close = difflib.get_close_matches(key, list(kinds), n=3, cutoff=0.6)
        if not close:
            close = [k for k in kinds if k.endswith("." + key.split(".")[-1])][:3]
        hint = f" (did you mean {', '.join(close)}?)" if close else " (settings are dotted paths such as ppo.num_envs)"
        raise SettingError(f"unknown setting '{key}'{hint}")
    try:
        value = coerce_value(_from_text(text.strip(), kinds[key], key), kinds[key], key)
        return _replace(cfg, key.split("."), value)
    except SettingError:
        raise
    except CheckpointError as exc:
        raise SettingError(str(exc).removeprefix("config ")) from None
    except (ValueError, TypeError) as exc:
        raise SettingError(f"{key}={text}: {exc}") from None


def apply_settings(cfg: TrainConfig, items) -> TrainConfig:
    """Applies ``key=value`` overrides in order."""
    for item in items or ():
        cfg = apply_setting(cfg, item)
    return cfg
