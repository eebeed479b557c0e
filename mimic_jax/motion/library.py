"""MotionLibrary: every clip of a motion set packed into flat float32 arrays with per-clip offsets.

Only what the environment reads is kept: joint positions/velocities and the 14 tracked bodies' world
poses and velocities (pelvis first, so the root pose is body 0). The library is a pytree passed to jitted
code as an argument: a set of another size costs a recompilation only through its array shapes.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from flax import struct

from mimic_jax.assets import g1
from mimic_jax.motion.clip import Clip

TRACKED = tuple(g1.BODY_NAMES.index(n) for n in g1.TRACKED_BODY_NAMES)
ANCHOR_INDEX = g1.TRACKED_BODY_NAMES.index(g1.ANCHOR_BODY)
ROOT_INDEX = g1.TRACKED_BODY_NAMES.index("pelvis")
END_EFFECTOR_INDEX = tuple(g1.TRACKED_BODY_NAMES.index(n) for n in g1.END_EFFECTOR_NAMES)


@struct.dataclass
class RefFrame:
    """The reference at one (motion, frame) per environment."""

    joint_pos: jnp.ndarray  # [..., 29]
    joint_vel: jnp.ndarray  # [..., 29]
    body_pos: jnp.ndarray  # [..., 14, 3] world
    body_quat: jnp.ndarray  # [..., 14, 4] world
    body_lin_vel: jnp.ndarray  # [..., 14, 3] world
    body_ang_vel: jnp.ndarray  # [..., 14, 3] world

    @property
    def anchor_pos(self):
        return self.body_pos[..., ANCHOR_INDEX, :]

    @property
    def anchor_quat(self):
        return self.body_quat[..., ANCHOR_INDEX, :]


@struct.dataclass
class MotionLibrary:
    joint_pos: jnp.ndarray  # [N, 29] all frames of all clips
    joint_vel: jnp.ndarray
    body_pos: jnp.ndarray  # [N, 14, 3]
    body_quat: jnp.ndarray  # [N, 14, 4]
    body_lin_vel: jnp.ndarray
    body_ang_vel: jnp.ndarray
    clip_start: jnp.ndarray  # [M] int32 offset of each clip's first frame
    clip_length: jnp.ndarray  # [M] int32 frames per clip
    names: tuple[str, ...] = struct.field(pytree_node=False, default=())
    fps: float = struct.field(pytree_node=False, default=50.0)

    @property
    def num_motions(self) -> int:
        return int(self.clip_start.shape[0])

    def frame(self, motion_id, frame) -> RefFrame:
        """Gathers the reference for a batch of (motion_id, frame); frames are clipped into the clip."""
        frame = jnp.clip(frame, 0, self.clip_length[motion_id] - 1)
        idx = self.clip_start[motion_id] + frame
        return RefFrame(joint_pos=self.joint_pos[idx], joint_vel=self.joint_vel[idx],
                        body_pos=self.body_pos[idx], body_quat=self.body_quat[idx],
                        body_lin_vel=self.body_lin_vel[idx], body_ang_vel=self.body_ang_vel[idx])


def build_library(clips: Sequence[Clip], names: Sequence[str]) -> MotionLibrary:
    if not clips:
        raise ValueError("a motion library needs at least one clip")
    tracked = np.array(TRACKED)
    cat = lambda f: jnp.asarray(np.concatenate([f(c) for c in clips]), dtype=jnp.float32)  # noqa: E731
    lengths = np.array([c.num_frames for c in clips], dtype=np.int32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32)
    return MotionLibrary(
        joint_pos=cat(lambda c: c.joint_pos), joint_vel=cat(lambda c: c.joint_vel),
        body_pos=cat(lambda c: c.body_pos_w[:, tracked]), body_quat=cat(lambda c: c.body_quat_w[:, tracked]),
        body_lin_vel=cat(lambda c: c.body_lin_vel_w[:, tracked]),
        body_ang_vel=cat(lambda c: c.body_ang_vel_w[:, tracked]),
        clip_start=jnp.asarray(starts), clip_length=jnp.asarray(lengths), names=tuple(names),
        fps=float(clips[0].fps))


def library_fingerprint(lib: MotionLibrary) -> str:
    """A short hash of the clip names and contents: checkpoints refuse a different library."""
    h = hashlib.sha256()
    h.update("|".join(lib.names).encode())
    for arr in (lib.clip_length, lib.joint_pos, lib.body_pos):
        h.update(np.asarray(arr).tobytes())
    return h.hexdigest()[:16]
