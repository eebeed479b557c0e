"""Tracking-quality metrics: per-frame errors between the robot and the reference, and their summaries.

Per frame (one robot state against the reference frame of the same instant; ``frame_errors``):

* ``mpjpe_global_mm``: mean over the 14 tracked bodies of the world-position error, millimetres.
* ``mpjpe_local_mm``: the same after subtracting each side's anchor (torso_link) position.
* ``joint_pos_error_rad``: mean over the 29 joints of the absolute joint-angle error.
* ``joint_vel_error_rad_s``: mean over the 29 joints of the absolute joint-velocity error.
* ``ee_pos_error_mm``: mean over the 4 end effectors (ankle_roll and wrist_yaw links) of the world-position
  error, millimetres.
* ``anchor_pos_error_mm``: world-position error of the anchor, millimetres.
* ``anchor_ori_error_rad``: rotation angle between the robot's and the reference's anchor orientation.
* ``anchor_xy_error_mm``: horizontal (x, y) world-position error of the anchor, millimetres (the drift).

Per episode: ``success`` (the published criterion: the clip ends with no termination), its largest drift
``max_drift_m`` and ``tracked`` (success AND the anchor within ``max_drift_m`` = 0.5 m of the reference
horizontally at every frame: the terminations ignore horizontal position, so a policy that balances in
place "succeeds" on a walking clip, but is not tracked).

An episode's value of a metric is its mean over the frames the episode played (every frame after the
start, up to and including the one where it ended); a clip's value pools the frames of all its episodes;
the aggregate is the mean over clips (every clip counts once, whatever its length).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from mimic_jax import math as jm
from mimic_jax.envs.robot import RobotState
from mimic_jax.motion.library import ANCHOR_INDEX, END_EFFECTOR_INDEX, RefFrame

METRICS: tuple[str, ...] = ("mpjpe_global_mm", "mpjpe_local_mm", "joint_pos_error_rad", "joint_vel_error_rad_s",
                            "ee_pos_error_mm", "anchor_pos_error_mm", "anchor_ori_error_rad", "anchor_xy_error_mm")
SUMMARY_FIELDS: tuple[str, ...] = ("episodes", "success_rate", "tracked_rate", "max_drift_m", "mean_episode_length_s",
                                   "mean_episode_length_steps", "clip_length_s") + METRICS
TRACKED_MAX_DRIFT_M = 0.5  # the tracked criterion's horizontal anchor distance, metres


def rotation_angle(a, b):
    """Angle (rad, in [0, pi]) of the rotation between orientations a and b, accurate near 0."""
    rel = jm.quat_mul(jm.quat_conj(a), b)
    return 2.0 * jnp.arctan2(jnp.linalg.norm(rel[..., 1:], axis=-1), jnp.abs(rel[..., 0]))


def frame_errors(robot: RobotState, ref: RefFrame) -> dict[str, jnp.ndarray]:
    """Every metric of one frame (broadcasts over leading batch axes of both arguments)."""
    dist = lambda a, b: jnp.linalg.norm(a - b, axis=-1)  # noqa: E731
    body = dist(robot.body_pos, ref.body_pos)
    robot_local = robot.body_pos - robot.body_pos[..., ANCHOR_INDEX:ANCHOR_INDEX + 1, :]
    ref_local = ref.body_pos - ref.body_pos[..., ANCHOR_INDEX:ANCHOR_INDEX + 1, :]
    ee = jnp.array(END_EFFECTOR_INDEX)
    return {
        "mpjpe_global_mm": 1000.0 * jnp.mean(body, axis=-1),
        "mpjpe_local_mm": 1000.0 * jnp.mean(dist(robot_local, ref_local), axis=-1),
        "joint_pos_error_rad": jnp.mean(jnp.abs(robot.joint_pos - ref.joint_pos), axis=-1),
        "joint_vel_error_rad_s": jnp.mean(jnp.abs(robot.joint_vel - ref.joint_vel), axis=-1),
        "ee_pos_error_mm": 1000.0 * jnp.mean(body[..., ee], axis=-1),
        "anchor_pos_error_mm": 1000.0 * body[..., ANCHOR_INDEX],
        "anchor_ori_error_rad": rotation_angle(robot.body_quat[..., ANCHOR_INDEX, :],
                                               ref.body_quat[..., ANCHOR_INDEX, :]),
        "anchor_xy_error_mm": 1000.0 * dist(robot.body_pos[..., ANCHOR_INDEX, :2], ref.body_pos[..., ANCHOR_INDEX, :2]),
    }


@dataclasses.dataclass
class Episodes:
    """Per-episode results of one evaluation (numpy; N episodes, T the longest episode in control steps).

    ``errors[name][t, n]`` is the metric at the frame reached after step t + 1 of episode n; it is meaningful
    where ``t < length[n]`` (``valid``). ``qpos[t, n]`` is the robot's qpos at that same frame, and
    ``qpos0[n]`` the one at the start.
    """

    motion_id: np.ndarray  # [N] index into the evaluated library
    start_frame: np.ndarray  # [N]
    length: np.ndarray  # [N] control steps played
    success: np.ndarray  # [N] bool: reached the clip end with no termination
    termination: list  # [N] name of the first termination that fired, "" on success
    errors: dict  # name -> [T, N]
    qpos0: np.ndarray  # [N, 36]
    qpos: np.ndarray | None  # [T, N, 36], None where not recorded
    engine: str = "mjx"

    @property
    def valid(self) -> np.ndarray:
        """[T, N] bool: frames that belong to the episode."""
        steps = next(iter(self.errors.values())).shape[0]
        return np.arange(steps)[:, None] < self.length[None, :]

    @property
    def max_drift_m(self) -> np.ndarray:
        """[N] the largest horizontal anchor distance from the reference over the episode's frames, metres."""
        drift = np.where(self.valid, self.errors["anchor_xy_error_mm"], -np.inf).max(axis=0, initial=-np.inf)
        return np.where(self.length > 0, drift / 1000.0, np.nan)

    def tracked(self, max_drift_m: float = TRACKED_MAX_DRIFT_M) -> np.ndarray:
        """[N] bool: success and the anchor within ``max_drift_m`` of the reference horizontally throughout."""
        return self.success & (self.max_drift_m <= max_drift_m)


def pooled_mean(values: np.ndarray, valid: np.ndarray) -> float:
    """Mean of ``values`` where ``valid`` (NaN where nothing is valid); invalid entries may be NaN."""
    count = int(np.sum(valid))
    if count == 0:
        return float("nan")
    return float(np.sum(np.where(valid, values, 0.0)) / count)


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def summarize_clip(episodes: Episodes, motion_id: int, clip_length: int, control_dt: float,
                   max_drift_m: float = TRACKED_MAX_DRIFT_M) -> dict:
    """Success and tracked rates, mean largest drift, episode length and every metric (frames pooled) of one
    clip's episodes."""
    mask = episodes.motion_id == motion_id
    valid = episodes.valid[:, mask]
    steps = _mean(episodes.length[mask])
    out = {"episodes": int(np.sum(mask)), "success_rate": _mean(episodes.success[mask]),
           "tracked_rate": _mean(episodes.tracked(max_drift_m)[mask]),
           "max_drift_m": _mean(episodes.max_drift_m[mask]),
           "mean_episode_length_s": steps * control_dt, "mean_episode_length_steps": steps,
           "clip_length_s": (clip_length - 1) * control_dt}
    for name in METRICS:
        out[name] = pooled_mean(episodes.errors[name][:, mask], valid)
    reasons = [episodes.termination[i] for i in np.flatnonzero(mask) if episodes.termination[i]]
    out["terminations"] = {r: reasons.count(r) for r in sorted(set(reasons))}
    return out


def aggregate(per_clip: dict[str, dict]) -> dict:
    """Mean over clips of every summary field (episodes are summed; terminations counted)."""
    clips = list(per_clip.values())
    out = {"clips": len(clips), "episodes": int(sum(c["episodes"] for c in clips))}
    for name in SUMMARY_FIELDS[1:]:
        values = np.array([c[name] for c in clips], dtype=np.float64)
        out[name] = float(np.nanmean(values)) if np.any(np.isfinite(values)) else float("nan")
    reasons: dict[str, int] = {}
    for c in clips:
        for r, n in c["terminations"].items():
            reasons[r] = reasons.get(r, 0) + n
    out["terminations"] = dict(sorted(reasons.items()))
    return out


def summarize(episodes: Episodes, names, clip_lengths, control_dt: float,
              max_drift_m: float = TRACKED_MAX_DRIFT_M) -> tuple[dict, dict]:
    """(per-clip summaries keyed by clip name, aggregate) of one evaluation."""
    per_clip = {name: summarize_clip(episodes, i, int(clip_lengths[i]), control_dt, max_drift_m)
                for i, name in enumerate(names)}
    return per_clip, aggregate(per_clip)
