"""Episodes and windows as BeyondMimic v4 collects them: run 5 s, keep the first 2.5 s, reject falls.

Every episode is one episode of the episode runner (no auto-reset) from a planned start, so a window never
crosses a reset. Window step t is control step ``WINDOW_START + t`` of its episode: s_t is the state after
the previous step's physics, paired with the actions taken at that step. The reset state itself (step 0's
state) is not kept: its body velocities are the reference's, not measured.

Starts: episode e plays clip ``e mod M`` (so every clip gets the same number of episodes), from a frame drawn
uniformly among those that leave room for the whole run (start <= length - 1 - run_steps). A clip shorter than
that starts at frame 0 and its episodes end at the clip's end; they are accepted when they ran at least one
window without a fall (the card counts them).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

WINDOW_START = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class WindowConfig:
    """Seconds kept and run per episode; the defaults are BeyondMimic v4's."""

    window_seconds: float = 2.5
    run_seconds: float = 5.0

    def steps(self, control_dt: float) -> tuple[int, int]:
        """(window steps, run steps) at ``control_dt``; refuses a run too short to hold the window."""
        window = int(round(self.window_seconds / control_dt))
        run = int(round(self.run_seconds / control_dt))
        if window < 1:
            raise ValueError(f"window of {self.window_seconds} s is shorter than one control step")
        if run < WINDOW_START + window:
            raise ValueError(f"run of {self.run_seconds} s ({run} steps) does not hold a window of "
                             f"{self.window_seconds} s ({window} steps) from step {WINDOW_START}")
        return window, run


class Starts(NamedTuple):
    motion_id: np.ndarray  # [N] int32
    frame: np.ndarray  # [N] int32


def plan_starts(clip_lengths, episode_ids, run_steps: int, rng: np.random.Generator) -> Starts:
    """Start (clip, frame) of each episode id (see the module doc)."""
    lengths = np.asarray(clip_lengths, np.int64)
    motion_id = (np.asarray(episode_ids, np.int64) % lengths.size).astype(np.int32)
    room = np.maximum(lengths[motion_id] - 1 - run_steps, 0)
    frame = np.floor(rng.uniform(size=motion_id.shape) * (room + 1)).astype(np.int32)
    return Starts(motion_id=motion_id, frame=np.minimum(frame, room).astype(np.int32))


class Outcome(NamedTuple):
    """Per episode of a run [T, N]."""

    steps: jnp.ndarray  # [N] int32 valid control steps
    fell: jnp.ndarray  # [N] bool a termination fired
    fall_step: jnp.ndarray  # [N] int32 its control step, -1 if none
    accepted: jnp.ndarray  # [N] bool no fall and at least one window of steps


def outcomes(valid, failed, window_steps: int) -> Outcome:
    """Acceptance from the runner's per-step ``valid`` and ``failed`` flags [T, N]."""
    fails = failed & valid
    fell = jnp.any(fails, axis=0)
    steps = jnp.sum(valid, axis=0).astype(jnp.int32)
    fall_step = jnp.where(fell, jnp.argmax(fails, axis=0), -1).astype(jnp.int32)
    return Outcome(steps=steps, fell=fell, fall_step=fall_step, accepted=~fell & (steps >= WINDOW_START + window_steps))


def state_steps(window_steps: int) -> slice:
    """Rows of a runner's post-step records [T, ...] that hold s_0 .. s_{T-1} of the window."""
    return slice(WINDOW_START - 1, WINDOW_START - 1 + window_steps)


def action_steps(window_steps: int) -> slice:
    """Rows of a runner's per-step records that hold the actions taken at the window's steps."""
    return slice(WINDOW_START, WINDOW_START + window_steps)


def cut(records, rows: slice):
    """Per-step records [T, N, ...] (a pytree) -> the window's rows, episode first: [N, T_window, ...]."""
    return jax.tree.map(lambda x: jnp.swapaxes(x[rows], 0, 1), records)


def keep_first(accepted: np.ndarray, room: int) -> np.ndarray:
    """[N] bool: the first ``room`` accepted episodes (in order) are kept."""
    accepted = np.asarray(accepted, bool)
    return accepted & (np.cumsum(accepted) <= room)
