"""Settings of the phase-2 diffusion model: network, diffusion process, training; presets ``full`` and ``demo``.

Defaults are the published figures (``docs/phase2.md``, "Model"); where a design leaves a choice open, the
field's comment says which value we picked and why. Configs are frozen keyword-only dataclasses: presets are
``dataclasses.replace`` of them, the resolved config is written next to every checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The trajectory and the transformer that denoises it."""

    representation: Literal["body_pos", "joint_pos"] = "body_pos"  # states.LAYOUTS; joint_pos is the ablation
    history: int = 4  # N: the model sees s_{t-N} .. s_t and a_{t-N} .. a_{t-1}, clean (inpainted at level 0)
    # H: predicted s_{t+1} .. s_{t+H} and a_t .. a_{t+H}. 16 steps = 0.32 s at our 50 Hz, BeyondMimic v3's
    # design (the direct state-action model at the tracker's rate); v4's 0.64 s is also 16 tokens, at 25 Hz.
    horizon: int = 16
    action_loss_steps: int = 8  # the loss covers a_t .. a_{t+L-1}; later actions are masked out (v3: 8, DC: 16)
    layers: int = 6
    width: int = 512
    heads: int = 8
    mlp_ratio: int = 4
    attention_dropout: float = 0.3  # Diffuse-CLoC
    dropout: float = 0.0  # residual dropout (not published; off)
    compute_dtype: Literal["float32", "bfloat16"] = "float32"  # activations; parameters stay float32

    @property
    def steps(self) -> int:
        """Time steps in a training sample: t-N .. t+H."""
        return self.history + self.horizon + 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiffusionConfig:
    """The forward process and the state normalization."""

    levels: int = 20  # K, in training and sampling
    # The cosine schedule (Nichol & Dhariwal 2021; Diffuser uses it with K = 20 too): with only 20 levels,
    # DDPM's linear betas (made for K = 1000) would jump from almost clean to almost pure noise in a few
    # levels; the cosine one spreads log-SNR evenly. schedule.py has the formulas.
    schedule: Literal["cosine", "linear"] = "cosine"
    cosine_offset: float = 0.008
    max_beta: float = 0.999
    emphasis: float = 6.0  # c of the emphasis projection of the global (root) dims (BeyondMimic v4)
    std_floor: float = 1e-2  # z-score: dims with a smaller standard deviation are divided by this instead


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    batch_size: int = 512
    learning_rate: float = 1e-4
    weight_decay: float = 1e-3
    warmup_steps: int = 10_000
    # Not published in steps; 80k steps is our guess for the "good enough in <= 15 minutes on an H200"
    # target at ~10 ms per bf16 step (phase2 reference; we measured 11.4 ms on an H200, docs/phase2.md).
    steps: int = 80_000
    grad_clip: float = 1.0  # global-norm clipping (not published; a common transformer default)
    ema_power: float = 0.75  # EMA decay 1 - (1 + step)^-power, capped (BeyondMimic v4)
    ema_max: float = 0.9999
    validation_fraction: float = 0.05  # of the episodes, held out for the validation loss
    validation_batches: int = 4
    stats_samples: int = 65_536  # training samples drawn to fit the normalizer
    steps_per_call: int = 200  # optimizer steps per jitted call; one log record each
    checkpoint_every: int = 5_000
    keep: int = 3
    seed: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    model: ModelConfig = ModelConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    train: TrainConfig = TrainConfig()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    config: Config
    summary: str


FULL = Preset(name="full", config=Config(),
              summary="the published model (6 layers, width 512, 8 heads, about 19M parameters) for a GPU")

DEMO = Preset(
    name="demo",
    config=Config(
        model=ModelConfig(layers=2, width=64, heads=4, attention_dropout=0.1),
        train=TrainConfig(batch_size=64, learning_rate=1e-3, warmup_steps=50, steps=800, steps_per_call=50,
                          checkpoint_every=400, stats_samples=4_096, validation_batches=2),
    ),
    summary="a DEMO on a CPU: a tiny model (2 layers, width 64) for about a minute; it shows the pipeline, "
            "it does not make a usable controller (use --preset full on a GPU)",
)

PRESETS = {p.name: p for p in (DEMO, FULL)}
