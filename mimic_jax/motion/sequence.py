"""Long clips: built-in patterns chained one after another, each starting where the previous one ended.

Every built-in pattern (``locomotion.py``, ``skills.py``) starts standing still in the default pose with the
feet at their standing places around the origin, heading +x, and ends standing still the same way wherever
its steps took it. ``chain`` moves each pattern's targets onto the end pose of the one before it (the feet
midpoint and the mean foot heading) and drops the first ``lead_trim`` seconds of its standing lead-in: the
transition is a standing pause (the previous pattern's settling plus what is left of the next one's lead-in),
in which every target is the standing pose, so the targets are as smooth across a junction as inside a
pattern. One IK solve of the chained targets then gives a continuous clip.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from mimic_jax.motion.clip import CLIP_FPS
from mimic_jax.motion.ik import Targets
from mimic_jax.motion.locomotion import standing

LEAD_TRIM = 0.6  # s of each later pattern's standing lead-in dropped (they all stand still for 1 s first)


def _rotate(yaw: float, xy: np.ndarray) -> np.ndarray:
    """``xy`` [..., 2] rotated by ``yaw`` (element-wise, no BLAS: the same bits on every machine)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * xy[..., 0] - s * xy[..., 1], s * xy[..., 0] + c * xy[..., 1]], axis=-1)


def end_pose(tg: Targets) -> tuple[np.ndarray, float]:
    """Feet midpoint [2] and mean foot heading at the last frame."""
    return tg.foot_pos[-1, :, :2].mean(axis=0), float(tg.foot_yaw[-1].mean())


def placed(tg: Targets, xy: np.ndarray, yaw: float) -> Targets:
    """``tg`` moved so that its start (feet at the standing places, heading 0) is at ``xy`` heading ``yaw``."""
    centre = standing().centre
    foot_pos = tg.foot_pos.copy()
    foot_pos[..., :2] = _rotate(yaw, foot_pos[..., :2] - centre) + xy
    turn = np.array([0.0, 0.0, yaw])
    return dataclasses.replace(tg, foot_pos=foot_pos, foot_yaw=tg.foot_yaw + yaw,
                               com_xy=_rotate(yaw, tg.com_xy - centre) + xy, pelvis_rpy=tg.pelvis_rpy + turn,
                               torso_rpy=tg.torso_rpy + turn)


def _trimmed(tg: Targets, frames: int, name: str) -> Targets:
    """``tg`` without its first ``frames`` frames, which must all be the standing pose of frame 0 (to 1e-6)."""
    arrays = {f.name: getattr(tg, f.name) for f in dataclasses.fields(tg) if getattr(tg, f.name) is not None}
    for field, x in arrays.items():
        head = x[:frames + 1]
        if np.any(np.abs(np.nan_to_num(head - head[:1])) > 1e-6):
            raise ValueError(f"pattern {name}: {field} moves in the first {frames} frames, which chain drops")
    return dataclasses.replace(tg, **{field: x[frames:] for field, x in arrays.items()})


def _filled(tg: Targets) -> Targets:
    """Optional targets made explicit: flat feet (pitch 0); a COM height of NaN (the pelvis height is tracked)."""
    n = tg.num_frames
    return dataclasses.replace(
        tg, foot_pitch=np.zeros((n, 2)) if tg.foot_pitch is None else tg.foot_pitch,
        com_z=np.full(n, np.nan) if tg.com_z is None else tg.com_z)


def chain(patterns: Sequence[tuple[str, Callable[[], Targets]]], lead_trim: float = LEAD_TRIM) -> Targets:
    """The patterns' targets one after another, each placed at the end pose of the previous one."""
    trim = int(round(lead_trim * CLIP_FPS))
    parts, xy, yaw = [], standing().centre, 0.0
    for index, (name, make) in enumerate(patterns):
        tg = placed(_filled(make()), xy, yaw)
        parts.append(tg if index == 0 else _trimmed(tg, trim, name))
        xy, yaw = end_pose(tg)
    fields = [f.name for f in dataclasses.fields(Targets)]
    return Targets(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})
