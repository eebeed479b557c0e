"""Environment configuration. Defaults equal the published figures (shared reference: tracking_mdp.md)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, kw_only=True)
class RewardConfig:
    anchor_pos_sigma: float = 0.3
    anchor_pos_weight: float = 0.5
    anchor_ori_sigma: float = 0.4
    anchor_ori_weight: float = 0.5
    body_pos_sigma: float = 0.3
    body_pos_weight: float = 1.0
    body_ori_sigma: float = 0.4
    body_ori_weight: float = 1.0
    body_lin_vel_sigma: float = 1.0
    body_lin_vel_weight: float = 1.0
    body_ang_vel_sigma: float = 3.14
    body_ang_vel_weight: float = 1.0
    action_rate_weight: float = -0.1
    joint_limit_weight: float = -10.0
    undesired_contact_weight: float = -0.1
    # Isaac Lab's reward manager multiplies every term by the control step (0.02 s).
    scale_by_dt: bool = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class TerminationConfig:
    anchor_height: float = 0.25
    anchor_tilt: float = 0.8
    end_effector_height: float = 0.25


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoiseConfig:
    """Actor observation noise U(-n, n) per term; the critic sees none."""

    enabled: bool = True
    anchor_pos: float = 0.25
    anchor_ori: float = 0.05
    base_lin_vel: float = 0.5
    base_ang_vel: float = 0.2
    joint_pos: float = 0.01
    joint_vel: float = 0.5


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResetConfig:
    pos_xy: float = 0.05
    pos_z: float = 0.01
    rot_roll_pitch: float = 0.1
    rot_yaw: float = 0.2
    lin_vel_xy: float = 0.5
    lin_vel_z: float = 0.2
    ang_vel_roll_pitch: float = 0.52
    ang_vel_yaw: float = 0.78
    joint_pos: float = 0.1


@dataclasses.dataclass(frozen=True, kw_only=True)
class PushConfig:
    """Pushes: every U(interval_s) seconds a root velocity change U(-v, v) per axis (world frame)."""

    enabled: bool = True
    interval_s: tuple[float, float] = (1.0, 3.0)
    lin_vel_xy: float = 0.5
    lin_vel_z: float = 0.2
    ang_vel_roll_pitch: float = 0.52
    ang_vel_yaw: float = 0.78


@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomizationConfig:
    """Model randomization (``enabled``: friction, torso centre of mass, default joint offsets) and pushes,
    which have their own switch."""

    enabled: bool = True
    foot_friction: tuple[float, float] = (0.3, 1.2)
    joint_default_offset: float = 0.01
    torso_com_x: float = 0.025
    torso_com_yz: float = 0.05
    push: PushConfig = PushConfig()


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnvConfig:
    impl: str = "jax"  # "jax" (CPU) or "warp" (GPU): the one switch
    # MJX-Warp's CUDA-graph mode: "warp" (MJX's default on GPU: Warp captures and replays a graph from a Python
    # callback at every physics call) or "jax" (XLA captures the call). See docs/benchmarks.md.
    warp_graph_mode: str = "warp"
    physics_dt: float = 0.005
    decimation: int = 4  # control at 50 Hz
    episode_seconds: float = 10.0  # time limit: a truncation
    on_clip_end: str = "resample"  # "resample" (reset at a new sampled frame) or "truncate"
    soft_limit_factor: float = 0.9
    state_estimation: bool = True  # False drops anchor position and pelvis linear velocity (actor 154 + M)
    feet_only_collisions: bool = False
    contacts_per_env: int = 40  # contact buffer per environment (Warp); overflow is an error
    constraints_per_env: int = 200  # njmax per environment (Warp)
    rewards: RewardConfig = RewardConfig()
    terminations: TerminationConfig = TerminationConfig()
    noise: NoiseConfig = NoiseConfig()
    reset: ResetConfig = ResetConfig()
    randomization: RandomizationConfig = RandomizationConfig()

    @property
    def control_dt(self) -> float:
        return self.physics_dt * self.decimation

    @property
    def episode_steps(self) -> int:
        return int(round(self.episode_seconds / self.control_dt))


def evaluation_config(cfg: EnvConfig) -> EnvConfig:
    """Clean evaluation: no observation noise, no randomization, no pushes, no reset noise."""
    zero_reset = ResetConfig(pos_xy=0.0, pos_z=0.0, rot_roll_pitch=0.0, rot_yaw=0.0, lin_vel_xy=0.0,
                             lin_vel_z=0.0, ang_vel_roll_pitch=0.0, ang_vel_yaw=0.0, joint_pos=0.0)
    return dataclasses.replace(
        cfg, noise=dataclasses.replace(cfg.noise, enabled=False), reset=zero_reset,
        randomization=dataclasses.replace(cfg.randomization, enabled=False,
                                          push=dataclasses.replace(cfg.randomization.push, enabled=False)))
