"""Collection settings; the defaults are BeyondMimic v4's where it states them (docs/phase2.md)."""

from __future__ import annotations

import dataclasses

from mimic_jax.collect.noise import OUConfig
from mimic_jax.collect.windows import WindowConfig

GPU_NUM_ENVS = 8192  # one chunk of 8192 five-second episodes covers 1M frames at >= 98% acceptance
CPU_NUM_ENVS = 4
CPU_FRAMES = 2000  # a CPU demo: 16 windows of 2.5 s


class CollectionError(RuntimeError):
    """The teacher could not make the dataset asked for (too many falls); one line, nothing written."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CollectConfig:
    frames: int = 1_000_000  # accepted frames to keep, mirror copies not counted (rounded up to whole windows)
    num_envs: int = GPU_NUM_ENVS  # episodes per chunk (one batched episode-runner call)
    windows: WindowConfig = WindowConfig()
    noise: OUConfig = OUConfig()
    max_delay: int = 0  # action delay drawn per episode from {0, ..., max_delay} control steps
    mirror: bool = False  # also keep each window's sagittal mirror copy
    teacher_obs: bool = False  # also keep the teacher's actor observation (not with mirror)
    seed: int = 0
    max_episodes_factor: float = 4.0  # give up after this many times the episodes the target needs

    def check(self) -> None:
        """Refuses settings that cannot work, one line each (ValueError)."""
        if self.frames < 1 or self.num_envs < 1:
            raise ValueError(f"frames and num_envs must be positive, got {self.frames}, {self.num_envs}")
        if not 0 <= self.max_delay <= 10:
            raise ValueError(f"max delay must be in 0..10 control steps, got {self.max_delay}")
        if self.mirror and self.teacher_obs:
            raise ValueError("--teacher-obs cannot be combined with --mirror (a mirror copy has no teacher "
                             "observation)")
        if self.max_episodes_factor < 1.0:
            raise ValueError(f"max_episodes_factor must be >= 1, got {self.max_episodes_factor}")
        self.noise.check()
