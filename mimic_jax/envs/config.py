"""Environment configuration. Defaults equal the published figures (shared reference: tracking_mdp.md).

Field types say what a field accepts (``Literal`` choices, ``mimic_jax.configs`` ranges); every config
checks them when it is built (``check_fields``), whether from code, ``--set`` or a stored checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from mimic_jax.configs import (Ascending, FiniteFloat, NonNegativeFloat, NonNegativeInt, NonNegativeInterval,
                               PositiveFloat, PositiveInt, Range, check_fields)
from mimic_jax.envs.rewards import RewardConfig


PositiveInterval = Annotated[tuple[PositiveFloat, PositiveFloat], Ascending()]
Interval = Annotated[tuple[FiniteFloat, FiniteFloat], Ascending()]
StepInterval = Annotated[tuple[NonNegativeInt, NonNegativeInt], Ascending()]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TerminationConfig:
    anchor_height: NonNegativeFloat = 0.25
    anchor_tilt: NonNegativeFloat = 0.8
    end_effector_height: NonNegativeFloat = 0.25

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoiseConfig:
    """Actor observation noise U(-n, n) per term; the critic sees none."""

    enabled: bool = True
    anchor_pos: NonNegativeFloat = 0.25
    anchor_ori: NonNegativeFloat = 0.05
    base_lin_vel: NonNegativeFloat = 0.5
    base_ang_vel: NonNegativeFloat = 0.2
    joint_pos: NonNegativeFloat = 0.01
    joint_vel: NonNegativeFloat = 0.5

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResetConfig:
    pos_xy: NonNegativeFloat = 0.05
    pos_z: NonNegativeFloat = 0.01
    rot_roll_pitch: NonNegativeFloat = 0.1
    rot_yaw: NonNegativeFloat = 0.2
    lin_vel_xy: NonNegativeFloat = 0.5
    lin_vel_z: NonNegativeFloat = 0.2
    ang_vel_roll_pitch: NonNegativeFloat = 0.52
    ang_vel_yaw: NonNegativeFloat = 0.78
    joint_pos: NonNegativeFloat = 0.1

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PushConfig:
    """Pushes: every U(interval_s) seconds a root velocity change U(-v, v) per axis (world frame)."""

    enabled: bool = True
    interval_s: NonNegativeInterval = (1.0, 3.0)
    lin_vel_xy: NonNegativeFloat = 0.5
    lin_vel_z: NonNegativeFloat = 0.2
    ang_vel_roll_pitch: NonNegativeFloat = 0.52
    ang_vel_yaw: NonNegativeFloat = 0.78

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomizationConfig:
    """Model randomization (``enabled``: friction, torso centre of mass, default joint offsets) and pushes,
    which have their own switch."""

    enabled: bool = True
    foot_friction: NonNegativeInterval = (0.3, 1.2)
    joint_default_offset: NonNegativeFloat = 0.01
    torso_com_x: NonNegativeFloat = 0.025
    torso_com_yz: NonNegativeFloat = 0.05
    push: PushConfig = PushConfig()
    # Model-mismatch options (envs/randomize.py; not in the published problem: the defaults turn them off).
    # Ranges are U(lo, hi), drawn per environment (per episode for the delay and the tilt) and per link/motor/dof.
    link_mass_scale: PositiveInterval = (1.0, 1.0)  # every link's mass and inertia
    torso_added_mass: Interval = (0.0, 0.0)  # kg on torso_link, inertia scaled with its mass
    motor_strength_scale: PositiveInterval = (1.0, 1.0)  # kp and effort limit of each actuator
    armature_scale: PositiveInterval = (1.0, 1.0)  # reflected rotor inertia of each joint
    joint_damping: NonNegativeInterval = (0.0, 0.0)  # viscous damping of each joint, N m s / rad
    joint_frictionloss: NonNegativeInterval = (0.0, 0.0)  # dry friction of each joint, N m
    action_delay_steps: StepInterval = (0, 0)  # control steps between the policy's command and the motors
    imu_tilt_deg: Annotated[float, Range(ge=0, le=45)] = 0.0  # IMU roll and pitch U(-d, d) seen by the actor

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnvConfig:
    impl: Literal["jax", "warp"] = "jax"  # "jax" (CPU) or "warp" (GPU): the one switch (mimic_jax.backend)
    # MJX-Warp's CUDA-graph mode: "warp" (MJX's default on GPU: Warp captures and replays a graph from a Python
    # callback at every physics call) or "jax" (XLA captures the call). See docs/benchmarks.md.
    warp_graph_mode: Literal["warp", "jax", "none"] = "warp"
    physics_dt: PositiveFloat = 0.005
    decimation: PositiveInt = 4  # control at 50 Hz
    episode_seconds: PositiveFloat = 10.0  # time limit: a truncation
    on_clip_end: Literal["resample", "truncate"] = "resample"  # reset at a new sampled frame, or truncate
    soft_limit_factor: Annotated[float, Range(gt=0, le=1)] = 0.9
    state_estimation: bool = True  # False drops anchor position and pelvis linear velocity (actor 154 + M)
    # "self": robot-floor and self-collisions (the public setting), "floor": robot-floor only, "feet": only the
    # foot capsules, against the floor (see g1.load_model, docs/model.md)
    collisions: Literal["self", "floor", "feet"] = "self"
    joint_velocity_limits: bool = True  # clamp joint speeds to the motor classes' limits (20-37 rad/s)
    contacts_per_env: PositiveInt = 40  # contact buffer per environment (Warp); overflow is an error
    constraints_per_env: PositiveInt = 250  # njmax per environment (Warp); see docs/environment.md, contact buffers
    rewards: RewardConfig = RewardConfig()
    terminations: TerminationConfig = TerminationConfig()
    noise: NoiseConfig = NoiseConfig()
    reset: ResetConfig = ResetConfig()
    randomization: RandomizationConfig = RandomizationConfig()

    def __post_init__(self):
        check_fields(self)

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
