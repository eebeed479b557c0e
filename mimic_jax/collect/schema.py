"""The dataset contract: every field's name, shape, dtype and meaning (docs/phase2.md shows the same table).

A dataset holds W windows of T control steps. Per-window fields have shape [W, ...], per-step fields
[W, T, ...]. Step t of a window pairs the state s_t (the robot before acting at that step) with the actions
taken from it. ``episodes/`` holds one row per episode run, accepted or not.
"""

from __future__ import annotations

import dataclasses

from mimic_jax import states
from mimic_jax.assets import g1

FORMAT = "mimic_jax.demonstrations"
VERSION = 1
CARD_JSON = "card.json"
CARD_MD = "card.md"
EPISODES = "episodes"


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    shape: tuple[int, ...]  # after [W] (per window) or [W, T] (per step)
    dtype: str
    per_step: bool
    meaning: str


_B, _J = states.NUM_BODIES, g1.NUM_JOINTS
WORLD_FIELDS = ("body_pos_w", "body_quat_w", "body_lin_vel_w", "body_ang_vel_w", "joint_pos", "joint_vel")

_FIELDS = (
    Field("body_pos_w", (_B, 3), "float32", True, "tracked bodies' positions (g1.TRACKED_BODY_NAMES, pelvis "
          "first), world frame, m"),
    Field("body_quat_w", (_B, 4), "float32", True, "tracked bodies' orientations (w, x, y, z), world frame"),
    Field("body_lin_vel_w", (_B, 3), "float32", True, "tracked bodies' linear velocities at the body origins, "
          "world frame, m/s"),
    Field("body_ang_vel_w", (_B, 3), "float32", True, "tracked bodies' angular velocities, world frame, rad/s"),
    Field("joint_pos", (_J,), "float32", True, "joint positions (g1.JOINT_NAMES order), rad"),
    Field("joint_vel", (_J,), "float32", True, "joint velocities, rad/s"),
    Field("action", (_J,), "float32", True, "executed action in normalized units (joint target = default + "
          "action_scale * action): the teacher's plus noise, possibly delayed"),
    Field("label", (_J,), "float32", True, "the clean teacher action at s_t (what a model learns)"),
    Field("state_body_pos", (states.BODY_POS.size,), "float32", True, "Body-Pos state (mimic_jax.states), global "
          "dims in the frame of the window's first step"),
    Field("state_joint_pos", (states.JOINT_POS.size,), "float32", True, "Joint-Pos state, global dims likewise"),
    Field("frame", (), "int32", True, "reference frame index of s_t in its clip"),
    Field("motion_id", (), "int32", False, "clip index in the card's clips"),
    Field("episode", (), "int32", False, "episode id (row of episodes/)"),
    Field("window_start", (), "int32", False, "control step of the episode at which the window starts"),
    Field("delay", (), "int8", False, "action delay of the episode, control steps"),
    Field("noise_seed", (), "uint32", False, "seed of the episode's action noise (mimic_jax.collect.noise)"),
    Field("mirrored", (), "bool", False, "a sagittal mirror copy of the window of the same episode"),
)
FIELDS = {f.name: f for f in _FIELDS}
TEACHER_OBS = "teacher_obs"

EPISODE_FIELDS = {
    "motion_id": ("int32", "clip index"),
    "start_frame": ("int32", "reference frame the episode started at"),
    "delay": ("int8", "action delay, control steps"),
    "noise_seed": ("uint32", "noise seed"),
    "steps": ("int32", "control steps run (valid steps)"),
    "fell": ("bool", "a termination fired during the run"),
    "fall_step": ("int32", "control step of the first termination, -1 if none"),
    "accepted": ("bool", "ran the whole run without a fall (and at least one window long)"),
    "kept": ("bool", "its window is in the dataset (accepted episodes beyond the requested size are not)"),
}


def fields(teacher_obs_size: int | None = None) -> dict[str, Field]:
    """The dataset's fields; with ``teacher_obs_size`` also the teacher's actor observation at s_t."""
    out = dict(FIELDS)
    if teacher_obs_size:
        out[TEACHER_OBS] = Field(TEACHER_OBS, (int(teacher_obs_size),), "float32", True,
                                 "the teacher's actor observation at s_t (observation noise included), unnormalized")
    return out


def full_shape(field: Field, windows: int, window_steps: int) -> tuple[int, ...]:
    return (windows, window_steps, *field.shape) if field.per_step else (windows, *field.shape)


def statistics_fields(all_fields: dict[str, Field]) -> list[str]:
    """The fields whose normalization statistics the card holds (every float field)."""
    return [name for name, f in all_fields.items() if f.dtype.startswith("float")]
